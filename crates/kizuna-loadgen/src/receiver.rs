//! A simulated member's receiving socket: subscribes to one timeline, checks
//! every event ([`TimelineCheck`]), timestamps live deliveries against the
//! send instant in the body, follows `resync` by re-subscribing, and — in the
//! reconnect storm — drops its socket on command and reconnects with the same
//! access token, resuming from its last `seq`.
//!
//! Everything a receiver learns stays in its own task and comes back once as
//! a [`ReceiverOutcome`]; nothing is shared while measuring.

use crate::check::TimelineCheck;
use crate::stats::Latency;
use crate::tag::{Tag, now_ns};
use anyhow::{Result, anyhow};
use kizuna_client::{Client, ClientError, WsConnection};
use kizuna_domain::protocol::{ClientCommand, Event, ServerFrame, SubscribeTo, cmd};
use kizuna_domain::{Seq, TimelineId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// When receivers may stop: once they have every `seq` up to `finals[t]`, or
/// at `deadline` (whatever is missing then is lost).
#[derive(Debug, Clone)]
pub struct Finish {
    /// Newest stored `seq` per timeline, from the senders' `ok`s.
    pub finals: Arc<HashMap<TimelineId, Seq>>,
    /// Give up waiting here.
    pub deadline: Instant,
}

/// Control channels shared by a scenario's receivers.
#[derive(Debug, Clone)]
pub struct Control {
    /// `None` while the senders are running.
    pub finish: watch::Receiver<Option<Finish>>,
    /// Reconnect storm: every change of the generation number means "drop
    /// your socket now and reconnect".
    pub storm: Option<watch::Receiver<u64>>,
    /// Where each receiver reports a finished reconnection.
    pub reconnected: Option<mpsc::UnboundedSender<Reconnection>>,
}

/// One reconnection of one receiver.
#[derive(Debug, Clone)]
pub struct Reconnection {
    /// Storm generation, or 0 for an unplanned reconnection.
    pub generation: u64,
    /// When the socket was dropped.
    pub dropped_at: Instant,
    /// When the new socket had its `hello` (`None`: gave up).
    pub connected_at: Option<Instant>,
    /// When the re-subscribe was answered `ok`.
    pub subscribed_at: Option<Instant>,
    /// Connection attempts made.
    pub attempts: u32,
    /// Errors seen on the way, by kind.
    pub errors: Vec<String>,
}

/// What one receiver saw.
#[derive(Debug)]
pub struct ReceiverOutcome {
    /// The timeline.
    pub timeline: TimelineId,
    /// The record checked against the stored posts.
    pub check: TimelineCheck,
    /// Post → delivery latency of live events.
    pub latency: Latency,
    /// Live deliveries.
    pub live: u64,
    /// Events received as catch-up (inside a subscribe exchange).
    pub catch_up: u64,
    /// `resync` frames received.
    pub resyncs: u64,
    /// Unplanned disconnections (and other errors).
    pub errors: Vec<String>,
    /// When the last live delivery arrived.
    pub last_delivery: Option<Instant>,
}

/// Short, stable names for errors (report keys).
pub fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Server { code, .. } => format!("server:{}", code.as_str()),
        ClientError::Closed { code, .. } => format!("closed:{code}"),
        ClientError::Tls(_) => "tls".into(),
        ClientError::Http(_) => "http".into(),
        ClientError::Ws(_) => "websocket".into(),
        ClientError::Io(e) => format!("io:{:?}", e.kind()),
        ClientError::Protocol(_) => "protocol".into(),
        ClientError::Timeout => "timeout".into(),
        _ => "other".into(),
    }
}

/// The answer to a subscribe exchange.
#[derive(Debug)]
pub struct Subscribed {
    /// Events received before the `ok` (catch-up).
    pub events: u64,
    /// When the last of them arrived.
    pub last_event_at: Option<Instant>,
    /// When the `ok` arrived.
    pub ok_at: Instant,
}

fn content_of(event: &Event) -> Option<u64> {
    event
        .body
        .as_ref()
        .and_then(|b| Tag::parse(b.expose()))
        .map(|t| t.content_id())
}

/// Sends `subscribe {timeline, after_seq}` and feeds every event that
/// arrives before its answer into `check`.
pub async fn subscribe(
    conn: &mut WsConnection,
    timeline: TimelineId,
    after_seq: Seq,
    check: &mut TimelineCheck,
) -> Result<Subscribed, ClientError> {
    let id = conn.next_id();
    let command = ClientCommand::Subscribe(cmd::Subscribe {
        id: id.clone(),
        timelines: vec![SubscribeTo {
            timeline_id: timeline,
            after_seq,
        }],
    });
    let text = serde_json::to_string(&command).map_err(|e| ClientError::Protocol(e.to_string()))?;
    conn.send_text(text).await?;
    let mut events = 0;
    let mut last_event_at = None;
    loop {
        match conn.next_frame(ANSWER_TIMEOUT).await? {
            ServerFrame::Event { event } if event.timeline_id == timeline => {
                check.on_event(event.seq, content_of(&event));
                events += 1;
                last_event_at = Some(Instant::now());
            }
            ServerFrame::Ok { id: got, .. } if got == id => {
                return Ok(Subscribed {
                    events,
                    last_event_at,
                    ok_at: Instant::now(),
                });
            }
            ServerFrame::Error {
                id: got,
                code,
                message,
            } if got.as_deref() == Some(&id) || got.is_none() => {
                return Err(ClientError::Server {
                    status: None,
                    code,
                    message,
                });
            }
            _ => {}
        }
    }
}

/// Opens a socket with retries (exponential backoff from 20 ms to 1 s, with
/// jitter) until `give_up`. Returns the socket, the attempts and the errors.
pub async fn connect_with_retry(
    client: &Client,
    token: &str,
    give_up: Instant,
    jitter_seed: u64,
) -> (Option<WsConnection>, u32, Vec<String>) {
    let mut errors = Vec::new();
    let mut backoff = Duration::from_millis(20);
    let mut attempts = 0;
    let mut rnd = jitter_seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1);
    loop {
        attempts += 1;
        match client.connect_ws(token).await {
            Ok(c) => return (Some(c), attempts, errors),
            Err(e) => errors.push(error_kind(&e)),
        }
        rnd = rnd
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = Duration::from_millis((rnd >> 33) % (backoff.as_millis() as u64 + 1));
        if Instant::now() + backoff > give_up {
            return (None, attempts, errors);
        }
        tokio::time::sleep(backoff / 2 + jitter / 2).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

enum Step {
    Frame(Result<ServerFrame, ClientError>),
    FinishChanged,
    Storm(u64),
    Deadline,
}

/// How long a command's answer may take.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reconnecting receiver keeps trying.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Opens a socket and subscribes to `timeline` from `after_seq`: a receiver
/// ready for [`run`]. Retries the connection for up to `for_`.
pub async fn start(
    client: &Client,
    token: &str,
    index: usize,
    timeline: TimelineId,
    after_seq: Seq,
    for_: Duration,
) -> Result<(WsConnection, TimelineCheck, u64)> {
    let (conn, attempts, errors) =
        connect_with_retry(client, token, Instant::now() + for_, index as u64).await;
    let mut conn = conn.ok_or_else(|| {
        anyhow!("receiver {index}: no socket after {attempts} attempts: {errors:?}")
    })?;
    let mut check = TimelineCheck::new(after_seq);
    let s = subscribe(&mut conn, timeline, after_seq, &mut check)
        .await
        .map_err(|e| anyhow!("receiver {index}: subscribe: {e}"))?;
    Ok((conn, check, s.events))
}

/// Runs a receiver on a subscribed socket (from [`start`]) until [`Finish`]
/// says it has everything (or the deadline passes). `index` seeds the
/// reconnect jitter.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    index: usize,
    client: Client,
    token: String,
    conn: WsConnection,
    timeline: TimelineId,
    check: TimelineCheck,
    catch_up: u64,
    mut ctl: Control,
) -> ReceiverOutcome {
    let mut out = ReceiverOutcome {
        timeline,
        check,
        latency: Latency::new(),
        live: 0,
        catch_up,
        resyncs: 0,
        errors: Vec::new(),
        last_delivery: None,
    };
    let mut connected = true;
    let mut conn = Some(conn);
    loop {
        let finish = ctl.finish.borrow().clone();
        if let Some(f) = &finish {
            let want = f.finals.get(&timeline).copied().unwrap_or(0);
            if out.check.complete_up_to() >= want || Instant::now() >= f.deadline {
                break;
            }
        }
        if !connected {
            // An unplanned loss (or a failed subscribe): reconnect like a client.
            let (rec, c) = reconnect(index, &client, &token, timeline, &mut out, 0).await;
            connected = rec.subscribed_at.is_some();
            conn = c;
            if !connected {
                out.errors.push("gave up reconnecting".into());
                break;
            }
            continue;
        }
        let Some(c) = conn.as_mut() else { break };
        let deadline = finish.as_ref().map(|f| f.deadline);
        let step = tokio::select! {
            f = c.next_frame(Duration::from_secs(3600)) => Step::Frame(f),
            _ = ctl.finish.changed() => Step::FinishChanged,
            g = async {
                match ctl.storm.as_mut() {
                    Some(rx) => match rx.changed().await {
                        Ok(()) => *rx.borrow_and_update(),
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            } => Step::Storm(g),
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => Step::Deadline,
        };
        match step {
            Step::FinishChanged => {}
            Step::Deadline => break,
            Step::Frame(Ok(ServerFrame::Event { event })) if event.timeline_id == timeline => {
                let now = now_ns();
                let content = event.body.as_ref().and_then(|b| Tag::parse(b.expose()));
                if let Some(tag) = content {
                    out.latency.record_ns(now.saturating_sub(tag.t_ns));
                }
                out.check
                    .on_event(event.seq, content.map(|t| t.content_id()));
                out.live += 1;
                out.last_delivery = Some(Instant::now());
            }
            Step::Frame(Ok(ServerFrame::Resync { timeline_id, .. })) if timeline_id == timeline => {
                out.resyncs += 1;
                let from = out.check.complete_up_to();
                match subscribe(c, timeline, from, &mut out.check).await {
                    Ok(s) => out.catch_up += s.events,
                    Err(e) => {
                        out.errors.push(format!("resubscribe {}", error_kind(&e)));
                        connected = false;
                    }
                }
            }
            Step::Frame(Ok(_)) => {}
            Step::Frame(Err(e)) => {
                out.errors.push(format!("socket {}", error_kind(&e)));
                connected = false;
                conn = None;
            }
            Step::Storm(generation) => {
                drop(conn.take());
                let (rec, c) =
                    reconnect(index, &client, &token, timeline, &mut out, generation).await;
                connected = rec.subscribed_at.is_some();
                conn = c;
                if let Some(tx) = &ctl.reconnected {
                    let _ = tx.send(rec);
                }
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
    out
}

async fn reconnect(
    index: usize,
    client: &Client,
    token: &str,
    timeline: TimelineId,
    out: &mut ReceiverOutcome,
    generation: u64,
) -> (Reconnection, Option<WsConnection>) {
    let dropped_at = Instant::now();
    let (conn, attempts, mut errors) =
        connect_with_retry(client, token, dropped_at + RECONNECT_FOR, index as u64).await;
    let mut rec = Reconnection {
        generation,
        dropped_at,
        connected_at: None,
        subscribed_at: None,
        attempts,
        errors: Vec::new(),
    };
    let Some(mut conn) = conn else {
        rec.errors = errors;
        return (rec, None);
    };
    rec.connected_at = Some(Instant::now());
    let from = out.check.complete_up_to();
    match subscribe(&mut conn, timeline, from, &mut out.check).await {
        Ok(s) => {
            out.catch_up += s.events;
            rec.subscribed_at = Some(s.ok_at);
        }
        Err(e) => errors.push(format!("subscribe {}", error_kind(&e))),
    }
    rec.errors = errors;
    (rec, Some(conn))
}
