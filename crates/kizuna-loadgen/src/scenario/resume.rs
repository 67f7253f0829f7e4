//! Resume: one member goes offline, K posts arrive, it reconnects with its
//! access token and subscribes from its last `seq`. Measured per round: the
//! time until it has all K (from the start of the reconnection, and from the
//! `subscribe`), and that it got exactly those K, in order. The other members
//! stay online and check their live deliveries as usual.

use super::{
    Outcome, Probe, SeedInfo, Target, finish_receivers, fmt_latency, fmt_mib, fmt_ms, merge_stored,
    open_receivers,
};
use crate::check::{Stored, TimelineCheck};
use crate::cli::{Common, ResumeArgs};
use crate::receiver::{self, error_kind};
use crate::seed::{SeedSpec, seed};
use crate::sender::{self, Pace, SenderSpec};
use crate::server::Server;
use crate::stats::Latency;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Posts made before the first round, while everyone is online.
const WARMUP_POSTS: u64 = 10;

/// One offline → resume round.
#[derive(Debug, Clone, Serialize)]
struct Round {
    /// Posts stored while the member was away.
    missed: u64,
    /// Events the member got on resuming.
    received: u64,
    /// Events not in `seq` order, duplicated or missing in this round.
    anomalies: u64,
    /// TLS + upgrade + `hello`, ms.
    connect_ms: f64,
    /// From sending `subscribe` to the last of the K events, ms.
    subscribe_to_all_ms: f64,
    /// From starting the reconnection to the last of the K events, ms.
    reconnect_to_all_ms: f64,
    /// From sending `subscribe` to its `ok`, ms.
    subscribe_to_ok_ms: f64,
}

/// Runs the scenario against a started server.
pub async fn run(server: &mut Server, common: &Common, a: &ResumeArgs) -> Result<Outcome> {
    if a.members < 2 || a.missed == 0 || a.rounds == 0 {
        bail!("resume needs at least 2 members, 1 missed post and 1 round");
    }
    let world = seed(
        server,
        SeedSpec {
            groups: 1,
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
    let timeline = world.groups[0].timeline;
    // Member 0 resumes, member 1 sends, the others stay online.
    let online: Vec<_> = (2..a.members).map(|u| (u, timeline)).collect();
    let receivers = open_receivers(&world, &online, common.setup_concurrency, None, None).await?;
    let (resumer, poster) = (&world.users[0], &world.users[1]);
    let (mut conn, mut check, _) = receiver::start(
        &resumer.client,
        &resumer.tokens.access_token,
        0,
        timeline,
        0,
        Duration::from_secs(30),
    )
    .await?;
    let mut sender_conn = poster
        .client
        .connect_ws(&poster.tokens.access_token)
        .await
        .context("sender socket")?;
    let mut stored = Stored::default();
    let mut next_post = 0u64;
    let post = async |conn: kizuna_client::WsConnection, n: u64, first: u64| {
        let spec = SenderSpec {
            index: 0,
            timeline,
            first,
            posts: n,
            pace: Pace::Open {
                start: Instant::now(),
                interval: Duration::ZERO,
                window: a.window,
            },
            body_bytes: common.body_bytes,
            deadline: Instant::now() + Duration::from_secs(120 + n / 20),
        };
        sender::run(conn, spec).await
    };
    // Warm-up while online: the resumer must see these live.
    let (out, c) = post(sender_conn, WARMUP_POSTS, next_post).await;
    sender_conn = c;
    next_post += WARMUP_POSTS;
    stored.merge(&out.stored);
    let mut post_errors = out.errors;
    read_until(&mut conn, &mut check, stored.newest()).await?;

    let before = probe.read();
    probe.sampler.reset_peak(before.server_rss_kib);
    let mut rounds = Vec::new();
    let mut ok_latency = Latency::new();
    let mut to_all = Latency::new();
    for _ in 0..a.rounds {
        let _ = conn.close().await;
        let (out, c) = post(sender_conn, a.missed, next_post).await;
        sender_conn = c;
        next_post += a.missed;
        stored.merge(&out.stored);
        ok_latency.merge(&out.ok_latency);
        for (k, v) in out.errors {
            *post_errors.entry(k).or_default() += v;
        }
        let from = check.complete_up_to();
        let anomalies_before = anomalies(&check, &stored);
        let received_before = check.received();
        let t0 = Instant::now();
        conn = resumer
            .client
            .connect_ws(&resumer.tokens.access_token)
            .await
            .map_err(|e| anyhow::anyhow!("resumer reconnect: {}", error_kind(&e)))?;
        let t_conn = Instant::now();
        let s = receiver::subscribe(&mut conn, timeline, from, &mut check)
            .await
            .map_err(|e| anyhow::anyhow!("resumer subscribe: {e}"))?;
        let last = s.last_event_at.unwrap_or(s.ok_at);
        let round = Round {
            missed: out.accepted,
            received: check.received() - received_before,
            anomalies: anomalies(&check, &stored) - anomalies_before,
            connect_ms: (t_conn - t0).as_secs_f64() * 1e3,
            subscribe_to_all_ms: (last - t_conn).as_secs_f64() * 1e3,
            reconnect_to_all_ms: (last - t0).as_secs_f64() * 1e3,
            subscribe_to_ok_ms: (s.ok_at - t_conn).as_secs_f64() * 1e3,
        };
        to_all.record(last - t0);
        rounds.push(round);
    }
    let after_rounds = probe.read();
    let peak = probe.sampler.peak_kib();
    let _ = conn.close().await;
    let _ = sender_conn.close().await;
    let mut verdict = check.verdict(&stored);
    let mut by_timeline = HashMap::new();
    merge_stored(&mut by_timeline, timeline, &stored);
    let online_received = finish_receivers(receivers, &by_timeline, Duration::from_secs(30)).await;
    verdict.add(&online_received.verdict);

    let mut failures = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        if r.received != r.missed || r.anomalies != 0 || r.missed != a.missed {
            failures.push(format!(
                "round {i}: {} missed, {} received, {} anomalies",
                r.missed, r.received, r.anomalies
            ));
        }
    }
    if !post_errors.is_empty() {
        failures.push(format!("post errors: {post_errors:?}"));
    }
    if !online_received.errors.is_empty() {
        failures.push(format!("receiver errors: {:?}", online_received.errors));
    }
    let s = to_all.summary();
    let median_sub = median(rounds.iter().map(|r| r.subscribe_to_all_ms));
    let rows = vec![
        (
            "posts missed per round".into(),
            format!("{} × {} rounds", a.missed, a.rounds),
        ),
        (
            "reconnect → all K (per round)".into(),
            rounds
                .iter()
                .map(|r| fmt_ms(r.reconnect_to_all_ms))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "median: connect / subscribe → all K".into(),
            format!(
                "{} / {}",
                fmt_ms(median(rounds.iter().map(|r| r.connect_ms))),
                fmt_ms(median_sub)
            ),
        ),
        (
            "received exactly K, in order".into(),
            (failures.is_empty() && verdict.is_clean()).to_string(),
        ),
        ("ok latency while posting".into(), fmt_latency(&ok_latency)),
        (
            "server CPU during the rounds".into(),
            format!("{:.1} s", after_rounds.server_cpu_s - before.server_cpu_s),
        ),
        (
            "server RSS before / peak".into(),
            format!("{} / {}", fmt_mib(before.server_rss_kib), fmt_mib(peak)),
        ),
    ];
    let targets = if a.missed == 2000 {
        vec![Target {
            what: "resume of 2,000 missed posts".into(),
            target: "≤ 100 ms".into(),
            measured: format!(
                "median {} (reconnect → all K), worst {}",
                fmt_ms(s.p50_ms),
                fmt_ms(s.max_ms)
            ),
            met: Some(s.p50_ms <= 100.0),
        }]
    } else {
        Vec::new()
    };
    let results = json!({
        "rounds": rounds,
        "reconnect_to_all": s,
        "median_subscribe_to_all_ms": median_sub,
        "ok_latency": ok_latency.summary(),
        "post_errors": post_errors,
        "online_members_verdict": online_received.verdict,
        "server_cpu_seconds": after_rounds.server_cpu_s - before.server_cpu_s,
        "server_rss_kib": {"before": before.server_rss_kib, "peak": peak},
    });
    Ok(Outcome {
        results,
        rows,
        verdict,
        failures,
        curves: vec![("post → ok (while member offline)".into(), ok_latency)],
        targets,
        seed: SeedInfo::of(&world),
    })
}

fn anomalies(check: &TimelineCheck, stored: &Stored) -> u64 {
    let v = check.verdict(stored);
    v.duplicated + v.out_of_order + v.wrong_content
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Reads live events into `check` until it has everything up to `seq`.
async fn read_until(
    conn: &mut kizuna_client::WsConnection,
    check: &mut TimelineCheck,
    seq: i64,
) -> Result<()> {
    while check.complete_up_to() < seq {
        let e = conn
            .next_event(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("waiting for live events: {e}"))?;
        let content = e
            .body
            .as_ref()
            .and_then(|b| crate::tag::Tag::parse(b.expose()))
            .map(|t| t.content_id());
        check.on_event(e.seq, content);
    }
    Ok(())
}
