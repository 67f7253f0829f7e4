//! `kizuna-loadgen`: Kizuna's load generator and benchmark report.
//!
//! One command starts the real `kizuna` binary on `127.0.0.1:0` with a fresh
//! data directory (embedded SQLite unless `--database postgres://…`), seeds
//! it like an operator would (CLI for the operator and the facility, REST for
//! the rest), gives every simulated user its own client certificate (a CSR
//! made here, issued by the server's CA) and logs each in with certificate and
//! password, then drives one scenario over mutual TLS + WebSocket:
//!
//! * [`scenario::fanout`] — G groups × N members, S senders, closed or open loop;
//! * [`scenario::resume`] — a member misses K posts and catches up;
//! * [`scenario::idle`] — C subscribed sockets held open: memory per socket;
//! * [`scenario::storm`] — C clients drop and reconnect at once.
//!
//! Every scenario checks correctness while it measures ([`check`]): each
//! receiver verifies every post arrived exactly once, in `seq` order, with the
//! content its sender's `ok` reported; any lost, duplicated, out-of-order or
//! altered delivery fails the run (non-zero exit).
//!
//! It talks only the public protocol (`kizuna-client`, `kizuna-domain`), so
//! it measures what clients feel. Loads stay on loopback and are bounded in
//! count and time (`--max-seconds`); the command stops by itself.

pub mod check;
pub mod cli;
pub mod procfs;
pub mod receiver;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod sender;
pub mod server;
pub mod stats;
pub mod tag;

use anyhow::{Context, Result, bail};
use cli::{Cli, Scenario};
use report::{Report, ServerInfo, redact_url};
use server::{Server, ServerOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace this binary was built in (for the default server binary).
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `target/release/kizuna`, else `target/debug/kizuna` (honouring
/// `CARGO_TARGET_DIR`).
pub fn default_server_bin() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    for profile in ["release", "debug"] {
        let bin = target.join(profile).join("kizuna");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    bail!(
        "no kizuna binary under {}; build it (`cargo build --release -p kizuna`) or pass --server-bin",
        target.display()
    )
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (the server started
/// later inherits it). Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .unwrap_or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft))
}

/// Server settings every run uses, then the scenario's, then `--server-env`.
fn server_settings(cli: &Cli) -> Result<Vec<(String, String)>> {
    let mut env = vec![
        // Every simulated user logs in from 127.0.0.1.
        (
            "KIZUNA__AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE".to_owned(),
            "1000000".to_owned(),
        ),
        // Seeding thousands of users takes minutes; tokens must outlive it.
        (
            "KIZUNA__TOKENS__ACCESS_TTL_SECS".to_owned(),
            "900".to_owned(),
        ),
    ];
    match &cli.scenario {
        Scenario::Idle(a) => env.extend(scenario::idle::server_env(
            a.sockets_per_user,
            a.heartbeat_secs,
        )),
        Scenario::Storm(a) => env.extend(scenario::idle::server_env(a.sockets_per_user, 20)),
        _ => {}
    }
    for kv in &cli.common.server_env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--server-env wants KIZUNA__SECTION__KEY=value, got {kv}");
        };
        if !k.starts_with("KIZUNA") {
            bail!("--server-env takes only KIZUNA… settings, got {k}");
        }
        env.retain(|(name, _)| name != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    Ok(env)
}

/// Runs one scenario end to end and writes the report. Returns the report
/// (its `passed` says whether the run should exit 0).
pub async fn run(cli: Cli, command: Vec<String>) -> Result<Report> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tag::epoch();
    let loadavg_at_start = procfs::loadavg();
    let nofile = raise_fd_limit();
    let bin = match &cli.common.server_bin {
        Some(b) => b.clone(),
        None => default_server_bin()?,
    };
    let settings = server_settings(&cli)?;
    let opts = ServerOptions {
        bin: bin.clone(),
        database: cli.common.database.clone(),
        sqlite_sync: cli.common.sqlite_sync.clone(),
        log_filter: cli.common.server_log.clone(),
        env: settings.clone(),
        keep_data: cli.common.keep_data,
    };
    let mut server = Server::start(opts).context("starting the server")?;
    let limit = Duration::from_secs(cli.common.max_seconds);
    let common = &cli.common;
    let outcome = tokio::time::timeout(limit, async {
        match &cli.scenario {
            Scenario::Fanout(a) => scenario::fanout::run(&mut server, common, a).await,
            Scenario::Resume(a) => scenario::resume::run(&mut server, common, a).await,
            Scenario::Idle(a) => scenario::idle::run(&mut server, common, a).await,
            Scenario::Storm(a) => scenario::storm::run(&mut server, common, a).await,
        }
    })
    .await;
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let tail = server.log_tail(3000);
            let _ = server.stop();
            return Err(e.context(format!("server log (tail):\n{tail}")));
        }
        Err(_) => {
            let _ = server.stop();
            bail!("the run took longer than --max-seconds {}", limit.as_secs());
        }
    };
    let still_running = server.is_running();
    server.stop()?;

    let out_dir = &cli.common.out;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let plot = if outcome.curves.iter().any(|(_, l)| l.count() > 0) {
        let title = format!(
            "kizuna-loadgen {} — latency distribution",
            cli.scenario.name()
        );
        report::plot_percentiles(&out_dir.join("latency.png"), &title, &outcome.curves)?;
        Some("latency.png".to_owned())
    } else {
        None
    };
    let mut failures = outcome.failures;
    if !outcome.verdict.is_clean() {
        failures.insert(
            0,
            format!(
                "incorrect deliveries: {} lost, {} duplicated, {} out of order, {} wrong content",
                outcome.verdict.lost,
                outcome.verdict.duplicated,
                outcome.verdict.out_of_order,
                outcome.verdict.wrong_content
            ),
        );
    }
    if !still_running {
        failures.push("the server was not running at the end of the run".into());
    }
    let mut parameters = serde_json::to_value(&cli.scenario)?;
    parameters["common"] = serde_json::to_value(&cli.common)?;
    if let Some(db) = &cli.common.database {
        parameters["common"]["database"] = redact_url(db).into();
    }
    let report = Report {
        tool: "kizuna-loadgen",
        version: env!("CARGO_PKG_VERSION"),
        scenario: cli.scenario.name().to_owned(),
        started_at_unix: started_unix,
        duration_seconds: started.elapsed().as_secs_f64(),
        command,
        parameters,
        machine: procfs::machine(nofile),
        loadavg_at_start,
        commit: procfs::commit(&workspace_dir()),
        server: ServerInfo {
            bin_modified_unix: std::fs::metadata(&bin)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            bin,
            database: cli
                .common
                .database
                .as_deref()
                .map_or_else(|| "sqlite (embedded)".to_owned(), redact_url),
            settings: std::iter::once((
                "KIZUNA__DATABASE__SQLITE_SYNC".to_owned(),
                cli.common.sqlite_sync.clone(),
            ))
            .chain(settings)
            .collect(),
        },
        seed: outcome.seed,
        results: outcome.results,
        correctness: outcome.verdict,
        targets: outcome.targets,
        passed: failures.is_empty(),
        failures,
        plot,
        summary: outcome.rows,
    };
    report.write(out_dir)?;
    Ok(report)
}
