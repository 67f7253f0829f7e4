//! Idle sockets: C authenticated sockets, each subscribed to its user's group
//! timeline, held open while the server pings them (the client answers every
//! ping). Measured: server RSS per socket, and the CPU the heartbeats cost.
//! At the end one post per group checks that every socket is still served.

use super::{
    Outcome, Probe, SeedInfo, Target, finish_receivers, fmt_latency, fmt_mib, merge_stored,
    open_receivers,
};
use crate::cli::{Common, SocketArgs};
use crate::seed::{SeedSpec, World, seed};
use crate::sender::{self, Pace, SenderSpec};
use crate::server::Server;
use anyhow::{Context, Result, bail};
use kizuna_domain::TimelineId;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The server settings this scenario needs.
pub fn server_env(sockets_per_user: usize, heartbeat_secs: u64) -> Vec<(String, String)> {
    vec![
        (
            "KIZUNA__SERVER__HEARTBEAT_SECS".into(),
            heartbeat_secs.to_string(),
        ),
        (
            "KIZUNA__SERVER__MAX_SOCKETS_PER_USER".into(),
            (sockets_per_user + 1).max(20).to_string(),
        ),
    ]
}

/// Seeds users for `sockets` sockets and lists `(user, timeline)` per socket.
pub async fn seed_sockets(
    server: &Server,
    common: &Common,
    sockets: usize,
    per_user: usize,
    group_size: usize,
) -> Result<(World, Vec<(usize, TimelineId)>)> {
    if sockets == 0 || per_user == 0 || group_size == 0 {
        bail!("sockets, sockets per user and group size must be at least 1");
    }
    let users = sockets.div_ceil(per_user);
    let group_size = group_size.min(users);
    let groups = users.div_ceil(group_size);
    // Seeding makes whole groups: users = groups × group_size ≥ what is needed.
    let world = seed(
        server,
        SeedSpec {
            groups,
            members: group_size,
            concurrency: common.setup_concurrency,
        },
    )
    .await?;
    let list = (0..sockets)
        .map(|s| {
            let user = s / per_user;
            (user, world.groups[world.users[user].group].timeline)
        })
        .collect();
    Ok((world, list))
}

/// Posts `posts` posts on every group's timeline from its first member,
/// closed loop; returns what was stored per timeline.
pub async fn post_to_every_group(
    world: &World,
    posts: u64,
    body_bytes: usize,
    first: u64,
) -> Result<HashMap<TimelineId, crate::check::Stored>> {
    let mut stored = HashMap::new();
    for (g, group) in world.groups.iter().enumerate() {
        let u = &world.users[group.members[0]];
        let conn = u
            .client
            .connect_ws(&u.tokens.access_token)
            .await
            .context("probe sender socket")?;
        let spec = SenderSpec {
            index: g as u32,
            timeline: group.timeline,
            first,
            posts,
            pace: Pace::Closed,
            body_bytes,
            deadline: Instant::now() + Duration::from_secs(60),
        };
        let (out, conn) = sender::run(conn, spec).await;
        let _ = conn.close().await;
        if out.accepted != posts {
            bail!("probe posts failed: {:?}", out.errors);
        }
        merge_stored(&mut stored, group.timeline, &out.stored);
    }
    Ok(stored)
}

/// Runs the scenario against a started server.
pub async fn run(server: &mut Server, common: &Common, a: &SocketArgs) -> Result<Outcome> {
    let (world, sockets) =
        seed_sockets(server, common, a.sockets, a.sockets_per_user, a.group_size).await?;
    // Seeding hashes passwords (argon2id, 19 MiB each, several at once on the
    // blocking pool); the allocator keeps that memory (hundreds of MiB) and
    // later reuses it for sockets, which would hide their cost. Measure on a
    // fresh process instead: same data, same address, and the users'
    // sessions and tokens stay valid.
    server
        .restart()
        .context("restarting the server after seeding")?;
    let probe = Probe::new(server.pid);
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    let before = probe.read();
    probe.sampler.reset_peak(before.server_rss_kib);
    let t0 = Instant::now();
    let receivers = open_receivers(&world, &sockets, common.setup_concurrency, None, None).await?;
    let connect_secs = t0.elapsed().as_secs_f64();
    let connected = probe.read();
    // Hold: sample once a second; the median of the hold is the figure.
    let mut samples = Vec::new();
    let hold_start = probe.read();
    let hold_until = Instant::now() + Duration::from_secs(a.hold_secs);
    while Instant::now() < hold_until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(probe.read().server_rss_kib);
    }
    let hold_end = probe.read();
    samples.sort_unstable();
    let held_kib = samples
        .get(samples.len() / 2)
        .copied()
        .unwrap_or(hold_end.server_rss_kib);
    let peak = probe.sampler.peak_kib();
    // Still served? One post per group, checked by every socket.
    let stored = post_to_every_group(&world, 1, common.body_bytes, 0).await?;
    let received = finish_receivers(receivers, &stored, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = probe.read();

    let c = a.sockets as f64;
    let per_socket_kib = held_kib.saturating_sub(before.server_rss_kib) as f64 / c;
    let loadgen_per_socket_kib = hold_end
        .loadgen_rss_kib
        .saturating_sub(before.loadgen_rss_kib) as f64
        / c;
    let hold_cpu = hold_end.server_cpu_s - hold_start.server_cpu_s;
    let hold_secs = (a.hold_secs as f64).max(1e-9);
    let mut failures = Vec::new();
    if !received.errors.is_empty() {
        failures.push(format!("receiver errors: {:?}", received.errors));
    }
    let rows = vec![
        (
            "method".into(),
            "server restarted after seeding; RSS per socket = (median RSS while held − RSS before opening) / C".into(),
        ),
        (
            "sockets".into(),
            format!(
                "{} ({} users with their own certificates, {} groups)",
                a.sockets,
                world.users.len(),
                world.groups.len()
            ),
        ),
        (
            "opening and subscribing them".into(),
            format!("{connect_secs:.1} s"),
        ),
        (
            "server RSS before / held (median) / peak / after close".into(),
            format!(
                "{} / {} / {} / {}",
                fmt_mib(before.server_rss_kib),
                fmt_mib(held_kib),
                fmt_mib(peak),
                fmt_mib(after.server_rss_kib)
            ),
        ),
        (
            "server RSS per socket".into(),
            format!("{per_socket_kib:.1} KiB"),
        ),
        (
            "server CPU while idle".into(),
            format!(
                "{:.1} % of one core (heartbeat every {} s)",
                hold_cpu / hold_secs * 100.0,
                a.heartbeat_secs
            ),
        ),
        (
            "load generator RSS per socket".into(),
            format!("{loadgen_per_socket_kib:.1} KiB"),
        ),
        ("probe post delivery".into(), fmt_latency(&received.latency)),
    ];
    let targets = vec![Target {
        what: format!("{} idle mutual-TLS sockets", a.sockets),
        target: "≤ 40 KiB server RSS per socket (target stated at C = 10,000)".into(),
        measured: format!("{per_socket_kib:.1} KiB"),
        met: (a.sockets >= 1000).then_some(per_socket_kib <= 40.0),
    }];
    let results = json!({
        "sockets": a.sockets,
        "users": world.users.len(),
        "groups": world.groups.len(),
        "connect_seconds": connect_secs,
        "server_rss_kib": {
            "before": before.server_rss_kib,
            "connected": connected.server_rss_kib,
            "held_median": held_kib,
            "peak": peak,
            "after_close": after.server_rss_kib,
        },
        "server_rss_per_socket_kib": per_socket_kib,
        "server_cpu_seconds_during_hold": hold_cpu,
        "server_cpu_share_during_hold": hold_cpu / hold_secs,
        "loadgen_rss_kib": {"before": before.loadgen_rss_kib, "held": hold_end.loadgen_rss_kib},
        "loadgen_rss_per_socket_kib": loadgen_per_socket_kib,
        "probe_latency": received.latency.summary(),
        "resyncs": received.resyncs,
        "receiver_errors": received.errors,
    });
    Ok(Outcome {
        results,
        rows,
        verdict: received.verdict,
        failures,
        curves: vec![("probe post → delivery".into(), received.latency)],
        targets,
        seed: SeedInfo::of(&world),
    })
}
