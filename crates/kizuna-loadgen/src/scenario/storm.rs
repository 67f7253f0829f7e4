//! Reconnect storm: C clients subscribed (one socket each) while posts keep
//! arriving; at one instant every client drops its socket and reconnects at
//! once with its access token, re-subscribing from its last `seq`. Measured:
//! the time until all are connected and all are subscribed again, and the
//! errors seen on the way; every client then checks it missed nothing.

use super::idle::seed_sockets;
use super::{
    Outcome, Probe, SeedInfo, Target, finish_receivers, fmt_latency, fmt_mib, fmt_ms, merge_stored,
    open_receivers,
};
use crate::cli::{Common, StormArgs};
use crate::receiver::Reconnection;
use crate::sender::{self, Pace, SenderSpec};
use crate::server::Server;
use crate::stats::Latency;
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Runs the scenario against a started server.
pub async fn run(server: &mut Server, common: &Common, a: &StormArgs) -> Result<Outcome> {
    let (world, sockets) =
        seed_sockets(server, common, a.clients, a.sockets_per_user, a.group_size).await?;
    // A fresh process for the storm (see `idle`): same data, address, sessions.
    server
        .restart()
        .context("restarting the server after seeding")?;
    let probe = Probe::new(server.pid);
    let (storm_tx, storm_rx) = watch::channel(0u64);
    let (rec_tx, mut rec_rx) = mpsc::unbounded_channel::<Reconnection>();
    let receivers = open_receivers(
        &world,
        &sockets,
        common.setup_concurrency,
        Some(storm_rx),
        Some(rec_tx),
    )
    .await?;

    // One sender per group, together at `post_rate` posts/s, for the whole run.
    let groups = world.groups.len();
    let total_secs = (a.before_secs + a.after_secs) as f64;
    let per_sender_rate = a.post_rate / groups as f64;
    let posts = (per_sender_rate * total_secs).ceil().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let gap = Duration::from_secs_f64(1.0 / a.post_rate.max(0.001));
    let mut senders = JoinSet::new();
    for (g, group) in world.groups.iter().enumerate() {
        let u = &world.users[group.members[0]];
        let conn = u
            .client
            .connect_ws(&u.tokens.access_token)
            .await
            .context("sender socket")?;
        let spec = SenderSpec {
            index: g as u32,
            timeline: group.timeline,
            first: 0,
            posts,
            pace: Pace::Open {
                start: start + gap.saturating_mul(g as u32),
                interval: Duration::from_secs_f64(total_secs / posts as f64),
                window: 1000,
            },
            body_bytes: common.body_bytes,
            deadline: start + Duration::from_secs_f64(total_secs) + Duration::from_secs(120),
        };
        senders.spawn(async move {
            let (out, conn) = sender::run(conn, spec).await;
            let _ = conn.close().await;
            (spec.timeline, out)
        });
    }

    tokio::time::sleep_until((start + Duration::from_secs(a.before_secs)).into()).await;
    let before = probe.read();
    probe.sampler.reset_peak(before.server_rss_kib);
    let storm_at = Instant::now();
    storm_tx.send_replace(1);
    // Collect every client's reconnection.
    let give_up = storm_at + Duration::from_secs(a.give_up_secs);
    let mut recs = Vec::with_capacity(a.clients);
    while recs.len() < a.clients {
        match tokio::time::timeout_at(give_up.into(), rec_rx.recv()).await {
            Ok(Some(r)) => recs.push(r),
            _ => break,
        }
    }
    let after_storm = probe.read();
    let peak = probe.sampler.peak_kib();

    let mut stored = HashMap::new();
    let mut post_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut accepted = 0;
    while let Some(r) = senders.join_next().await {
        let (timeline, out) = r.context("sender task")?;
        merge_stored(&mut stored, timeline, &out.stored);
        accepted += out.accepted;
        for (k, v) in out.errors {
            *post_errors.entry(k).or_default() += v;
        }
    }
    let received = finish_receivers(receivers, &stored, Duration::from_secs(60)).await;

    let mut to_connected = Latency::new();
    let mut to_subscribed = Latency::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_connected = storm_at;
    let mut last_subscribed = storm_at;
    let mut resubscribed = 0;
    let mut attempts = 0u64;
    for r in &recs {
        attempts += u64::from(r.attempts);
        for e in &r.errors {
            *errors.entry(e.clone()).or_default() += 1;
        }
        if let Some(c) = r.connected_at {
            to_connected.record(c - storm_at);
            last_connected = last_connected.max(c);
        }
        if let Some(s) = r.subscribed_at {
            to_subscribed.record(s - storm_at);
            last_subscribed = last_subscribed.max(s);
            resubscribed += 1;
        }
    }
    let all_secs = (last_subscribed - storm_at).as_secs_f64();
    let mut failures = Vec::new();
    if resubscribed < a.clients {
        failures.push(format!(
            "{} of {} clients did not resubscribe within {} s",
            a.clients - resubscribed,
            a.clients,
            a.give_up_secs
        ));
    }
    if !post_errors.is_empty() {
        failures.push(format!("post errors: {post_errors:?}"));
    }
    if !received.errors.is_empty() {
        failures.push(format!("receiver errors: {:?}", received.errors));
    }
    let rows = vec![
        (
            "clients".into(),
            format!(
                "{} ({} users with their own certificates, {} groups)",
                a.clients,
                world.users.len(),
                groups
            ),
        ),
        (
            "resubscribed".into(),
            format!("{resubscribed} of {}", a.clients),
        ),
        (
            "storm → all connected / all resubscribed".into(),
            format!(
                "{} / {}",
                fmt_ms((last_connected - storm_at).as_secs_f64() * 1e3),
                fmt_ms(all_secs * 1e3)
            ),
        ),
        (
            "per client: storm → resubscribed".into(),
            fmt_latency(&to_subscribed),
        ),
        (
            "connection attempts".into(),
            format!("{attempts} for {} clients", recs.len()),
        ),
        (
            "errors seen while reconnecting".into(),
            format!("{errors:?}"),
        ),
        (
            "posts during the run".into(),
            format!(
                "{accepted} accepted, {} caught up after the storm",
                received.catch_up
            ),
        ),
        (
            "server CPU during the storm".into(),
            format!("{:.1} s", after_storm.server_cpu_s - before.server_cpu_s),
        ),
        (
            "server RSS before / peak".into(),
            format!("{} / {}", fmt_mib(before.server_rss_kib), fmt_mib(peak)),
        ),
    ];
    let targets = vec![Target {
        what: format!("reconnect storm of {} clients", a.clients),
        target: "all resubscribed ≤ 10 s (target stated at C = 10,000)".into(),
        measured: format!("{all_secs:.2} s, {resubscribed} of {}", a.clients),
        met: (a.clients >= 1000).then_some(all_secs <= 10.0 && resubscribed == a.clients),
    }];
    let results = json!({
        "clients": a.clients,
        "users": world.users.len(),
        "groups": groups,
        "resubscribed": resubscribed,
        "seconds_to_all_connected": (last_connected - storm_at).as_secs_f64(),
        "seconds_to_all_resubscribed": all_secs,
        "storm_to_connected": to_connected.summary(),
        "storm_to_resubscribed": to_subscribed.summary(),
        "connection_attempts": attempts,
        "reconnect_errors": errors,
        "posts_accepted": accepted,
        "post_errors": post_errors,
        "deliveries_live": received.live,
        "deliveries_catch_up": received.catch_up,
        "post_to_delivery_latency": received.latency.summary(),
        "resyncs": received.resyncs,
        "receiver_errors": received.errors,
        "server_cpu_seconds_during_storm": after_storm.server_cpu_s - before.server_cpu_s,
        "loadgen_cpu_seconds_during_storm": after_storm.loadgen_cpu_s - before.loadgen_cpu_s,
        "server_rss_kib": {"before": before.server_rss_kib, "peak": peak},
    });
    Ok(Outcome {
        results,
        rows,
        verdict: received.verdict,
        failures,
        curves: vec![
            ("storm → resubscribed".into(), to_subscribed),
            ("live post → delivery".into(), received.latency),
        ],
        targets,
        seed: SeedInfo::of(&world),
    })
}
