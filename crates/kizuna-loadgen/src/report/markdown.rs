//! The Markdown summary of a [`Report`].

use super::Report;
use std::fmt::Write;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders the summary.
pub fn render(r: &Report) -> String {
    let mut md = String::new();
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(md, "# kizuna-loadgen: {} — {verdict}\n", r.scenario);
    let _ = writeln!(md, "```text\n{}\n```\n", r.command.join(" "));
    let m = &r.machine;
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| machine | {} cores ({}), {} MiB, Linux {}, RLIMIT_NOFILE {}; load average {} at the start, {} at the end |",
        m.cores,
        cell(&m.cpu_model),
        m.memory_mib,
        cell(&m.kernel),
        m.nofile_limit,
        r.loadavg_at_start,
        m.loadavg_at_end
    );
    let commit = r.commit.head.as_deref().unwrap_or("unknown");
    let dirty = match r.commit.dirty {
        Some(true) => " (working tree has uncommitted changes)",
        _ => "",
    };
    let _ = writeln!(md, "| commit | `{commit}`{dirty} |");
    let built = r
        .server
        .bin_modified_unix
        .map_or_else(String::new, |t| format!(", built at Unix time {t}"));
    let _ = writeln!(md, "| server | `{}`{built} |", r.server.bin.display());
    let _ = writeln!(md, "| database | {} |", cell(&r.server.database));
    let settings: Vec<String> = r
        .server
        .settings
        .iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect();
    let _ = writeln!(md, "| server settings | {} |", settings.join(" "));
    let _ = writeln!(
        md,
        "| seeded | {} users (each with its own client certificate), {} groups, in {:.1} s |",
        r.seed.users, r.seed.groups, r.seed.seconds
    );
    let _ = writeln!(
        md,
        "| run | {:.1} s in total, started at Unix time {} |\n",
        r.duration_seconds, r.started_at_unix
    );

    let _ = writeln!(md, "## Results\n\n| figure | value |\n|---|---|");
    for (k, v) in &r.summary {
        let _ = writeln!(md, "| {} | {} |", cell(k), cell(v));
    }
    let c = &r.correctness;
    let _ = writeln!(
        md,
        "\n## Correctness\n\n| received | lost | duplicated | out of order | wrong content | unverified |\n|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} |\n",
        c.received, c.lost, c.duplicated, c.out_of_order, c.wrong_content, c.unverified
    );
    if !r.failures.is_empty() {
        let _ = writeln!(md, "Failures:\n");
        for f in &r.failures {
            let _ = writeln!(md, "- {}", cell(f));
        }
        md.push('\n');
    }
    if !r.targets.is_empty() {
        let _ = writeln!(
            md,
            "## Targets (issue 5)\n\n| scenario | target | measured | met |\n|---|---|---|---|"
        );
        for t in &r.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a (other parameters)",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {met} |",
                cell(&t.what),
                cell(&t.target),
                cell(&t.measured)
            );
        }
        md.push('\n');
    }
    if let Some(p) = &r.plot {
        let _ = writeln!(md, "![latency distribution]({p})\n");
    }
    let _ = writeln!(md, "Every figure is in `report.json`.");
    md
}
