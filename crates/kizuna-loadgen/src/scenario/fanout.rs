//! Fan-out: G groups × N members, every member on its own socket; S senders
//! (members too, each posting on a second socket) post M posts each, closed
//! loop or open loop at R posts/s in total.

use super::{
    Outcome, Probe, SeedInfo, Target, finish_receivers, fmt_latency, fmt_mib, fmt_ms, merge_stored,
    open_receivers,
};
use crate::cli::{Common, FanoutArgs};
use crate::seed::{SeedSpec, seed};
use crate::sender::{self, Pace, SenderOutcome, SenderSpec};
use crate::server::Server;
use crate::stats::Latency;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Runs the scenario against a started server.
pub async fn run(server: &mut Server, common: &Common, a: &FanoutArgs) -> Result<Outcome> {
    if a.groups == 0 || a.members == 0 || a.senders == 0 || a.posts == 0 {
        bail!("groups, members, senders and posts must be at least 1");
    }
    if a.senders > a.groups * a.members {
        bail!("more senders than members");
    }
    let world = seed(
        server,
        SeedSpec {
            groups: a.groups,
            members: a.members,
            concurrency: common.setup_concurrency,
        },
    )
    .await?;
    // A fresh process, so RSS reflects the load and not seeding (see `idle`).
    server
        .restart()
        .context("restarting the server after seeding")?;
    let probe = Probe::new(server.pid);
    let sockets: Vec<_> = world
        .users
        .iter()
        .map(|u| (u.index, world.groups[u.group].timeline))
        .collect();
    let receivers = open_receivers(&world, &sockets, common.setup_concurrency, None, None).await?;

    // Senders: spread over the groups, member k of group g for sender g + k·G.
    let mut sender_conns = Vec::with_capacity(a.senders);
    for i in 0..a.senders {
        let g = i % a.groups;
        let user = world.groups[g].members[(i / a.groups) % a.members];
        let u = &world.users[user];
        let conn = u
            .client
            .connect_ws(&u.tokens.access_token)
            .await
            .with_context(|| format!("sender {i}: socket"))?;
        sender_conns.push((i, world.groups[g].timeline, conn));
    }

    let before = probe.read();
    probe.sampler.reset_peak(before.server_rss_kib);
    let started = Instant::now() + Duration::from_millis(100);
    // A generous bound on the sending phase: the schedule plus a minute.
    let schedule = a.rate.map_or(Duration::ZERO, |r| {
        Duration::from_secs_f64((a.senders as f64 * a.posts as f64) / r.max(0.001))
    });
    let deadline = started + schedule + Duration::from_secs(60 + a.posts / 10);
    let mut senders = JoinSet::new();
    for (i, timeline, conn) in sender_conns {
        let pace = match a.rate {
            None => Pace::Closed,
            Some(rate) => {
                // Each sender at rate/S, phase-shifted so posts are evenly spread.
                let total_gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
                Pace::Open {
                    start: started + total_gap.saturating_mul(i as u32),
                    interval: total_gap.saturating_mul(a.senders as u32),
                    window: a.window,
                }
            }
        };
        let spec = SenderSpec {
            index: i as u32,
            timeline,
            first: 0,
            posts: a.posts,
            pace,
            body_bytes: common.body_bytes,
            deadline,
        };
        senders.spawn(async move {
            tokio::time::sleep_until(started.into()).await;
            let (out, conn) = sender::run(conn, spec).await;
            let _ = conn.close().await;
            (spec.timeline, out)
        });
    }
    let mut sent = SenderTotals::default();
    let mut stored = HashMap::new();
    while let Some(r) = senders.join_next().await {
        let (timeline, out) = r.context("sender task")?;
        merge_stored(&mut stored, timeline, &out.stored);
        sent.add(out);
    }
    let received = finish_receivers(receivers, &stored, Duration::from_secs(a.drain_secs)).await;
    let after_drain = probe.read();
    let peak = probe.sampler.peak_kib();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = probe.read();

    let first = sent.first_send.unwrap_or(started);
    let send_secs = sent
        .last_answer
        .map_or(0.0, |l| (l - first).as_secs_f64())
        .max(1e-9);
    let deliver_secs = received
        .last_delivery
        .map_or(0.0, |l| (l - first).as_secs_f64())
        .max(1e-9);
    let accepted_per_s = sent.accepted as f64 / send_secs;
    let deliveries_per_s = received.live as f64 / deliver_secs;
    let server_cpu = after_drain.server_cpu_s - before.server_cpu_s;
    let loadgen_cpu = after_drain.loadgen_cpu_s - before.loadgen_cpu_s;
    let cpu_per_post_ms = server_cpu / (sent.accepted.max(1) as f64) * 1e3;
    let expected_deliveries = sent.accepted * a.members as u64;
    let mut failures = Vec::new();
    if sent.accepted < sent.sent || !sent.errors.is_empty() {
        failures.push(format!(
            "{} of {} posts were not accepted: {:?}",
            sent.sent - sent.accepted,
            sent.sent,
            sent.errors
        ));
    }
    if sent.sent < a.posts * a.senders as u64 {
        failures.push(format!(
            "only {} of {} posts were sent",
            sent.sent,
            a.posts * a.senders as u64
        ));
    }
    if !received.errors.is_empty() {
        failures.push(format!("receiver errors: {:?}", received.errors));
    }
    let mode = match a.rate {
        Some(r) => format!("open loop at {r} posts/s"),
        None => "closed loop".into(),
    };
    let rows = vec![
        ("mode".into(), mode.clone()),
        (
            "posts accepted".into(),
            format!("{} of {} sent", sent.accepted, sent.sent),
        ),
        ("accepted posts/s".into(), format!("{accepted_per_s:.0}")),
        (
            "deliveries".into(),
            format!(
                "{} live + {} catch-up (expected {expected_deliveries})",
                received.live, received.catch_up
            ),
        ),
        ("deliveries/s".into(), format!("{deliveries_per_s:.0}")),
        ("ok latency".into(), fmt_latency(&sent.ok_latency)),
        (
            "post→delivery latency".into(),
            fmt_latency(&received.latency),
        ),
        (
            "server CPU per accepted post".into(),
            format!("{cpu_per_post_ms:.3} ms ({server_cpu:.1} s in total)"),
        ),
        (
            "load generator CPU".into(),
            format!("{loadgen_cpu:.1} s over the same window"),
        ),
        (
            "server RSS before / peak / after".into(),
            format!(
                "{} / {} / {}",
                fmt_mib(before.server_rss_kib),
                fmt_mib(peak),
                fmt_mib(after.server_rss_kib)
            ),
        ),
        ("resyncs".into(), received.resyncs.to_string()),
    ];
    let targets = targets(a, accepted_per_s, &received.latency, &received.verdict);
    let results = json!({
        "mode": mode,
        "posts_sent": sent.sent,
        "posts_accepted": sent.accepted,
        "duplicate_oks": sent.duplicates,
        "post_errors": sent.errors,
        "send_seconds": send_secs,
        "accepted_posts_per_s": accepted_per_s,
        "deliveries_live": received.live,
        "deliveries_catch_up": received.catch_up,
        "deliveries_expected": expected_deliveries,
        "delivery_seconds": deliver_secs,
        "deliveries_per_s": deliveries_per_s,
        "ok_latency": sent.ok_latency.summary(),
        "post_to_delivery_latency": received.latency.summary(),
        "schedule_lag": sent.schedule_lag.summary(),
        "resyncs": received.resyncs,
        "receiver_errors": received.errors,
        "server_cpu_seconds": server_cpu,
        "server_cpu_ms_per_accepted_post": cpu_per_post_ms,
        "loadgen_cpu_seconds": loadgen_cpu,
        "server_rss_kib": {"before": before.server_rss_kib, "peak": peak, "after": after.server_rss_kib},
        "loadgen_rss_kib": {"before": before.loadgen_rss_kib, "after": after_drain.loadgen_rss_kib},
    });
    Ok(Outcome {
        results,
        rows,
        verdict: received.verdict,
        failures,
        curves: vec![
            ("post → delivery".into(), received.latency),
            ("post → ok".into(), sent.ok_latency),
        ],
        targets,
        seed: SeedInfo::of(&world),
    })
}

/// The fan-out targets that match this run's shape.
fn targets(
    a: &FanoutArgs,
    accepted_per_s: f64,
    latency: &Latency,
    v: &crate::check::Verdict,
) -> Vec<Target> {
    let p99 = latency.summary().p99_ms;
    let mut t = Vec::new();
    match (a.groups, a.members, a.rate) {
        (20, 50, Some(r)) if (r - 1000.0).abs() < 1.0 => t.push(Target {
            what: "fan-out 20 × 50, open loop 1,000 posts/s".into(),
            target: "p99 post→delivery ≤ 50 ms, 0 lost/dup".into(),
            measured: format!("p99 {}, lost {} dup {}", fmt_ms(p99), v.lost, v.duplicated),
            met: Some(p99 <= 50.0 && v.is_clean()),
        }),
        (1, 800, Some(r)) if (r - 100.0).abs() < 1.0 => t.push(Target {
            what: "fan-out 1 × 800, open loop 100 posts/s".into(),
            target: "p99 post→delivery ≤ 100 ms".into(),
            measured: format!("p99 {}", fmt_ms(p99)),
            met: Some(p99 <= 100.0),
        }),
        (1, 50, None) if a.senders == 10 => t.push(Target {
            what: "fan-out 1 × 50, 10 closed-loop senders".into(),
            target: "≥ 1,500 accepted posts/s".into(),
            measured: format!("{accepted_per_s:.0} posts/s"),
            met: Some(accepted_per_s >= 1500.0),
        }),
        _ => {}
    }
    t
}

/// Sender outcomes added up.
#[derive(Debug, Default)]
struct SenderTotals {
    sent: u64,
    accepted: u64,
    duplicates: u64,
    ok_latency: Latency,
    schedule_lag: Latency,
    errors: BTreeMap<String, u64>,
    first_send: Option<Instant>,
    last_answer: Option<Instant>,
}

impl SenderTotals {
    fn add(&mut self, o: SenderOutcome) {
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.ok_latency.merge(&o.ok_latency);
        self.schedule_lag.merge(&o.schedule_lag);
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.first_send = match (self.first_send, o.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_answer = self.last_answer.max(o.last_answer);
    }
}
