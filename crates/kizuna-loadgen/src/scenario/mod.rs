//! The four scenarios and what they share: the probe on the server process,
//! opening receivers, telling them when to stop, and adding up their checks.

pub mod fanout;
pub mod idle;
pub mod resume;
pub mod storm;

use crate::check::{Stored, Verdict};
use crate::procfs::{RssSampler, clock_ticks, cpu_seconds, rss_kib};
use crate::receiver::{self, Control, Finish, ReceiverOutcome};
use crate::seed::World;
use crate::stats::Latency;
use anyhow::{Context, Result};
use kizuna_domain::{Seq, TimelineId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// CPU time and memory of the server and of this process.
#[derive(Debug)]
pub struct Probe {
    /// Server pid.
    pub pid: u32,
    ticks: u64,
    /// Samples the server's RSS every 50 ms for the peak.
    pub sampler: RssSampler,
}

/// One reading of the probe.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Reading {
    /// Server CPU seconds (user + system) so far.
    pub server_cpu_s: f64,
    /// Server resident memory, KiB.
    pub server_rss_kib: u64,
    /// Load generator CPU seconds so far.
    pub loadgen_cpu_s: f64,
    /// Load generator resident memory, KiB.
    pub loadgen_rss_kib: u64,
}

impl Probe {
    /// Starts probing `pid`.
    pub fn new(pid: u32) -> Probe {
        Probe {
            pid,
            ticks: clock_ticks(),
            sampler: RssSampler::start(pid, Duration::from_millis(50)),
        }
    }

    /// Reads both processes now.
    pub fn read(&self) -> Reading {
        let me = std::process::id();
        Reading {
            server_cpu_s: cpu_seconds(self.pid, self.ticks).unwrap_or(0.0),
            server_rss_kib: rss_kib(self.pid).unwrap_or(0),
            loadgen_cpu_s: cpu_seconds(me, self.ticks).unwrap_or(0.0),
            loadgen_rss_kib: rss_kib(me).unwrap_or(0),
        }
    }
}

/// A target from the issue and how this run compares.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The target.
    pub target: String,
    /// The measured figure.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` when this run's
    /// parameters differ from the target's.
    pub met: Option<bool>,
}

/// What a scenario hands to the report.
#[derive(Debug)]
pub struct Outcome {
    /// Every figure, as JSON.
    pub results: serde_json::Value,
    /// The headline figures (label, value) for the Markdown summary.
    pub rows: Vec<(String, String)>,
    /// Correctness over every receiver.
    pub verdict: Verdict,
    /// Other reasons the run failed.
    pub failures: Vec<String>,
    /// Latency distributions to plot (label, distribution).
    pub curves: Vec<(String, Latency)>,
    /// Comparison with the targets.
    pub targets: Vec<Target>,
    /// Users and groups seeded, and how long that took.
    pub seed: SeedInfo,
}

/// The seeded world's size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeedInfo {
    /// Users (each with its own client certificate).
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Seconds seeding took.
    pub seconds: f64,
    /// Certificate + password logins whose TLS handshake was refused and
    /// retried (a new facility CA's CRL reaches the server's verifier only at
    /// its next revocation poll).
    pub login_handshake_retries: u64,
}

impl SeedInfo {
    /// From a seeded world.
    pub fn of(w: &World) -> SeedInfo {
        SeedInfo {
            users: w.users.len(),
            groups: w.groups.len(),
            seconds: w.seed_seconds,
            login_handshake_retries: w.login_handshake_retries,
        }
    }
}

/// Receivers running, and the handle to stop them.
#[derive(Debug)]
pub struct Receivers {
    /// The running tasks.
    pub tasks: JoinSet<ReceiverOutcome>,
    /// Sends [`Finish`].
    pub finish: watch::Sender<Option<Finish>>,
    /// How many were started.
    pub count: usize,
}

/// Opens one subscribed socket per `(user, timeline)` (at most `concurrency`
/// openings at a time) and starts a receiver on each.
pub async fn open_receivers(
    world: &World,
    sockets: &[(usize, TimelineId)],
    concurrency: usize,
    storm: Option<watch::Receiver<u64>>,
    reconnected: Option<tokio::sync::mpsc::UnboundedSender<receiver::Reconnection>>,
) -> Result<Receivers> {
    let (finish, finish_rx) = watch::channel(None);
    let ctl = Control {
        finish: finish_rx,
        storm,
        reconnected,
    };
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut opening = JoinSet::new();
    for (index, &(user, timeline)) in sockets.iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let u = &world.users[user];
        let (client, token) = (u.client.clone(), u.tokens.access_token.clone());
        opening.spawn(async move {
            let _permit = permit;
            receiver::start(&client, &token, index, timeline, 0, Duration::from_secs(60))
                .await
                .map(|(conn, check, catch_up)| {
                    (index, client, token, conn, timeline, check, catch_up)
                })
        });
    }
    let mut tasks = JoinSet::new();
    while let Some(r) = opening.join_next().await {
        let (index, client, token, conn, timeline, check, catch_up) =
            r.context("opening a receiver")??;
        tasks.spawn(receiver::run(
            index,
            client,
            token,
            conn,
            timeline,
            check,
            catch_up,
            ctl.clone(),
        ));
    }
    Ok(Receivers {
        tasks,
        finish,
        count: sockets.len(),
    })
}

/// Merges per-timeline records.
pub fn merge_stored(into: &mut HashMap<TimelineId, Stored>, timeline: TimelineId, s: &Stored) {
    into.entry(timeline).or_default().merge(s);
}

/// What the receivers add up to.
#[derive(Debug, Default)]
pub struct Received {
    /// Correctness over all receivers.
    pub verdict: Verdict,
    /// Post → delivery latency (live deliveries).
    pub latency: Latency,
    /// Live deliveries.
    pub live: u64,
    /// Catch-up deliveries.
    pub catch_up: u64,
    /// `resync`s.
    pub resyncs: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Last live delivery.
    pub last_delivery: Option<Instant>,
}

/// Tells the receivers what the newest stored `seq`s are and waits (at most
/// `drain`) for them to get everything; then checks each against `stored`.
pub async fn finish_receivers(
    mut r: Receivers,
    stored: &HashMap<TimelineId, Stored>,
    drain: Duration,
) -> Received {
    let finals: HashMap<TimelineId, Seq> = stored.iter().map(|(t, s)| (*t, s.newest())).collect();
    let _ = r.finish.send(Some(Finish {
        finals: Arc::new(finals),
        deadline: Instant::now() + drain,
    }));
    let empty = Stored::default();
    let mut total = Received::default();
    while let Some(res) = r.tasks.join_next().await {
        let Ok(o) = res else {
            *total
                .errors
                .entry("receiver task panicked".into())
                .or_default() += 1;
            continue;
        };
        let v = o.check.verdict(stored.get(&o.timeline).unwrap_or(&empty));
        total.verdict.add(&v);
        total.latency.merge(&o.latency);
        total.live += o.live;
        total.catch_up += o.catch_up;
        total.resyncs += o.resyncs;
        for e in o.errors {
            *total.errors.entry(e).or_default() += 1;
        }
        total.last_delivery = total.last_delivery.max(o.last_delivery);
    }
    total
}

/// Milliseconds, rounded for display.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A latency summary as "p50 / p90 / p99 / max".
pub fn fmt_latency(l: &Latency) -> String {
    let s = l.summary();
    format!(
        "p50 {} · p90 {} · p99 {} · max {} (n = {})",
        fmt_ms(s.p50_ms),
        fmt_ms(s.p90_ms),
        fmt_ms(s.p99_ms),
        fmt_ms(s.max_ms),
        s.count
    )
}

/// KiB as MiB for display.
pub fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
