//! The report of one run: `report.json` (every figure), `report.md` (a
//! summary for people) and `latency.png` (the latency distributions).

mod markdown;
mod plot;

use crate::check::Verdict;
use crate::procfs::{Commit, Machine};
use crate::scenario::{SeedInfo, Target};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use plot::plot_percentiles;

/// Everything about one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `kizuna-loadgen`.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The scenario.
    pub scenario: String,
    /// Unix seconds when the run started.
    pub started_at_unix: u64,
    /// Seconds the whole run took (server start, seeding, scenario).
    pub duration_seconds: f64,
    /// The command line.
    pub command: Vec<String>,
    /// Every parameter (the scenario's and the shared ones).
    pub parameters: serde_json::Value,
    /// The machine.
    pub machine: Machine,
    /// /proc/loadavg when the run started.
    pub loadavg_at_start: String,
    /// The commit.
    pub commit: Commit,
    /// The server: binary, database, settings.
    pub server: ServerInfo,
    /// What was seeded.
    pub seed: SeedInfo,
    /// The scenario's figures.
    pub results: serde_json::Value,
    /// Correctness over every receiver.
    pub correctness: Verdict,
    /// The targets that apply.
    pub targets: Vec<Target>,
    /// Why the run failed (empty when it passed).
    pub failures: Vec<String>,
    /// True when every delivery was correct and nothing else failed.
    pub passed: bool,
    /// The plot, relative to the report directory.
    pub plot: Option<String>,
    /// Headline figures, as shown in the Markdown.
    pub summary: Vec<(String, String)>,
}

/// The server under test.
#[derive(Debug, Serialize)]
pub struct ServerInfo {
    /// The binary.
    pub bin: PathBuf,
    /// When the binary was built (its modification time, Unix seconds): the
    /// commit above is the working tree's at run time, which may be newer.
    pub bin_modified_unix: Option<u64>,
    /// `sqlite (embedded)` or the database URL without its password.
    pub database: String,
    /// Settings given as environment variables (data directory omitted).
    pub settings: Vec<(String, String)>,
}

/// A database URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Report {
    /// Writes report.json and report.md into `dir` (the plot is written
    /// separately, before, by [`plot_percentiles`]).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("report.md"), markdown::render(self))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_reach_the_report() {
        assert_eq!(
            redact_url("postgres://kizuna:s3cret@127.0.0.1:5432/bench"),
            "postgres://kizuna:***@127.0.0.1:5432/bench"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1/x"),
            "postgres://root@127.0.0.1/x"
        );
    }
}
