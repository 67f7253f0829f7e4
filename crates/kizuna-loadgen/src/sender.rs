//! A simulated member posting on a socket of its own (not subscribed, so its
//! answers are not queued behind deliveries): closed loop (the next post when
//! the previous `ok` is back) or open loop (posts on a fixed schedule,
//! pipelined, whatever the answers do). Each body carries the send instant.

use crate::check::Stored;
use crate::receiver::error_kind;
use crate::stats::Latency;
use crate::tag::{Tag, now_ns};
use kizuna_client::{ClientError, WsConnection};
use kizuna_domain::TimelineId;
use kizuna_domain::protocol::{ClientCommand, OkResult, ServerFrame, cmd};
use kizuna_domain::text::Body;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How a sender paces its posts.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// One post in flight at a time.
    Closed,
    /// Post `n` is due at `start + n × interval`; at most `window` unanswered.
    Open {
        /// First post's due time.
        start: Instant,
        /// Time between posts.
        interval: Duration,
        /// Most posts in flight.
        window: usize,
    },
}

/// One sender's job.
#[derive(Debug, Clone, Copy)]
pub struct SenderSpec {
    /// Sender index (in the body).
    pub index: u32,
    /// Where it posts.
    pub timeline: TimelineId,
    /// Number of its first post (posts are numbered on from it, so a sender
    /// used again keeps its `client_msg_id`s unique).
    pub first: u64,
    /// How many posts.
    pub posts: u64,
    /// Pace.
    pub pace: Pace,
    /// Body length in bytes (the tag, then padding).
    pub body_bytes: usize,
    /// Stop waiting for answers here.
    pub deadline: Instant,
}

/// What one sender did.
#[derive(Debug, Default)]
pub struct SenderOutcome {
    /// Posts sent.
    pub sent: u64,
    /// Posts answered `ok` (stored).
    pub accepted: u64,
    /// `ok`s marked `duplicate` (should not happen: every key is fresh).
    pub duplicates: u64,
    /// Send → `ok` latency.
    pub ok_latency: Latency,
    /// Open loop: how late each post was sent compared with its schedule.
    pub schedule_lag: Latency,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// What the `ok`s say was stored, per `seq`.
    pub stored: Stored,
    /// First send and last answer.
    pub first_send: Option<Instant>,
    /// Last answer.
    pub last_answer: Option<Instant>,
}

/// Posts `spec.posts` posts on `conn`; returns what happened and the socket.
pub async fn run(mut conn: WsConnection, spec: SenderSpec) -> (SenderOutcome, WsConnection) {
    let mut out = SenderOutcome::default();
    // command id → (post number, send instant in ns)
    let mut in_flight: HashMap<String, (u64, u64)> = HashMap::new();
    let mut next = 0u64;
    let window = match spec.pace {
        Pace::Closed => 1,
        Pace::Open { window, .. } => window.max(1),
    };
    loop {
        if next == spec.posts && in_flight.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= spec.deadline {
            *out.errors
                .entry("no answer by the deadline".into())
                .or_default() += in_flight.len() as u64;
            break;
        }
        let due = match spec.pace {
            Pace::Closed => now,
            Pace::Open {
                start, interval, ..
            } => start + interval.saturating_mul(u32::try_from(next).unwrap_or(u32::MAX)),
        };
        if next < spec.posts && in_flight.len() < window && due <= now {
            if let Pace::Open { .. } = spec.pace {
                out.schedule_lag.record(now - due);
            }
            let n = spec.first + next;
            match send_post(&mut conn, &spec, n).await {
                Ok((id, t_ns)) => {
                    in_flight.insert(id, (n, t_ns));
                    out.sent += 1;
                    out.first_send.get_or_insert(now);
                }
                Err(e) => {
                    *out.errors
                        .entry(format!("send {}", error_kind(&e)))
                        .or_default() += 1;
                    break;
                }
            }
            next += 1;
            continue;
        }
        let wake = if next < spec.posts && in_flight.len() < window {
            due.min(spec.deadline)
        } else {
            spec.deadline
        };
        let frame = tokio::select! {
            f = conn.next_frame(Duration::from_secs(3600)) => Some(f),
            _ = tokio::time::sleep_until(wake.into()) => None,
        };
        match frame {
            None => {}
            Some(Ok(ServerFrame::Ok { id, result })) => {
                let Some((n, t_ns)) = in_flight.remove(&id) else {
                    continue;
                };
                out.ok_latency.record_ns(now_ns().saturating_sub(t_ns));
                out.last_answer = Some(Instant::now());
                if let OkResult::Stored { event, duplicate } = result {
                    out.accepted += 1;
                    if duplicate {
                        out.duplicates += 1;
                    }
                    out.stored
                        .insert(event.seq, crate::tag::content_id(spec.index, n));
                }
            }
            Some(Ok(ServerFrame::Error { id, code, .. })) => {
                if let Some(id) = id {
                    in_flight.remove(&id);
                }
                *out.errors
                    .entry(format!("post {}", code.as_str()))
                    .or_default() += 1;
                out.last_answer = Some(Instant::now());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                *out.errors
                    .entry(format!("socket {}", error_kind(&e)))
                    .or_default() += 1 + in_flight.len() as u64;
                break;
            }
        }
    }
    (out, conn)
}

async fn send_post(
    conn: &mut WsConnection,
    spec: &SenderSpec,
    n: u64,
) -> Result<(String, u64), ClientError> {
    let t_ns = now_ns();
    let tag = Tag {
        sender: spec.index,
        n,
        t_ns,
    };
    let body = Body::parse(tag.body(spec.body_bytes))
        .map_err(|e| ClientError::Protocol(format!("body: {e}")))?;
    let id = conn.next_id();
    let command = ClientCommand::Post(cmd::Post {
        id: id.clone(),
        timeline_id: spec.timeline,
        client_msg_id: format!("lg-{}-{n}", spec.index),
        body,
    });
    let text = serde_json::to_string(&command).map_err(|e| ClientError::Protocol(e.to_string()))?;
    conn.send_text(text).await?;
    Ok((id, t_ns))
}
