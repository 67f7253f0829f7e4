//! What `/proc` says about the machine and the server process: cores, memory,
//! CPU time (utime + stime) and resident memory (VmRSS), sampled in the
//! background for the peak.

use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The machine a run was made on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal from /proc/meminfo, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// RLIMIT_NOFILE (soft) after raising it.
    pub nofile_limit: u64,
    /// /proc/loadavg when the report was written (other work on the machine
    /// competes with the server and the load generator).
    pub loadavg_at_end: String,
}

/// The source a run was built from.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    /// `git rev-parse HEAD`, if git and a repository are there.
    pub head: Option<String>,
    /// True when `git status --porcelain` lists changes (tracked or not).
    pub dirty: Option<bool>,
}

/// Reads the machine description.
pub fn machine(nofile_limit: u64) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = kib_field(&meminfo, "MemTotal:").unwrap_or(0) / 1024;
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_mib,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        nofile_limit,
        loadavg_at_end: loadavg(),
    }
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Reads the commit of the working tree at `dir` (read-only git commands).
pub fn commit(dir: &Path) -> Commit {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    Commit {
        head: run(&["rev-parse", "HEAD"]),
        dirty: run(&["status", "--porcelain"]).map(|s| !s.is_empty()),
    }
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100, the
/// Linux value on every common architecture, if that cannot run).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32, ticks: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' : state is field 3, so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks as f64)
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// Samples a process's RSS every `period` on a thread of its own, keeping
/// the peak since the last [`RssSampler::reset_peak`].
#[derive(Debug)]
pub struct RssSampler {
    /// Highest RSS seen since the last reset, KiB (written by the thread).
    peak: Arc<AtomicU64>,
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32, period: Duration) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib(pid) {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(period);
                }
            })
            .ok();
        RssSampler { peak, stop, thread }
    }

    /// The peak since the last reset, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from `now_kib`.
    pub fn reset_peak(&self, now_kib: u64) {
        self.peak.store(now_kib, Ordering::Relaxed);
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid, clock_ticks()).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        let m = machine(1024);
        assert!(m.cores >= 1 && m.memory_mib > 0);
    }
}
