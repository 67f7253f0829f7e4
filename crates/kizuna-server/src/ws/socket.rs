//! One WebSocket: the connection loop.
//!
//! State per socket: `subs` maps each subscribed timeline to the last `seq`
//! sent on it. Live events with a `seq` at or below it are duplicates and are
//! skipped; an event further ahead means others were published out of order
//! or lost, and the gap is filled from the store before it is sent. So each
//! subscribed timeline reaches the client complete, in order, once.

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use kizuna_domain::protocol::{
    ClientCommand, ErrorCode, Limits, MAX_FRAME_BYTES, MAX_HISTORY_LIMIT, MAX_SUBSCRIPTIONS,
    OkResult, ServerFrame, SubscribedTimeline, close_code, cmd, parse_command,
};
use kizuna_domain::text::MAX_BODY_BYTES;
use kizuna_domain::{Seq, TimelineId};
use kizuna_realtime::{ConnectionEvent, ConnectionInfo, Outbound, SharedFrame};
use kizuna_service::{Principal, Service, ServiceError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ServerSettings;

mod subscriptions;

/// Consecutive unparseable frames tolerated before the socket is closed.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 20;

/// Why the loop stops.
enum Stop {
    /// The client is gone (stream ended or a send failed): nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

impl From<actix_ws::Closed> for Stop {
    fn from(_: actix_ws::Closed) -> Self {
        Stop::Gone
    }
}

pub(crate) struct Socket {
    service: Service,
    principal: Principal,
    session: Session,
    conn: kizuna_realtime::Connection,
    /// timeline → last `seq` sent on this socket.
    subs: HashMap<TimelineId, Seq>,
    settings: Arc<ServerSettings>,
    bad_frames: u32,
}

fn close_for(reason: kizuna_realtime::CloseReason) -> u16 {
    use kizuna_realtime::CloseReason as R;
    match reason {
        R::SessionEnded => close_code::SESSION_ENDED,
        R::AccountDisabled => close_code::ACCOUNT_DISABLED,
        R::CertificateRevoked => close_code::CERTIFICATE_REVOKED,
        R::ServerShutdown => close_code::GOING_AWAY,
        // Membership changes: reconnect and re-subscribe; access is re-checked.
        _ => close_code::GOING_AWAY,
    }
}

fn protocol_close(e: &actix_ws::ProtocolError) -> Stop {
    use actix_ws::ProtocolError as P;
    match e {
        P::Overflow => Stop::Close(
            close_code::MESSAGE_TOO_BIG,
            format!("frame larger than {MAX_FRAME_BYTES} bytes"),
        ),
        P::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Stop::Close(
            close_code::INVALID_PAYLOAD,
            "text frame is not valid UTF-8".into(),
        ),
        P::Io(io) if io.to_string().contains("size") => Stop::Close(
            close_code::MESSAGE_TOO_BIG,
            format!("message larger than {MAX_FRAME_BYTES} bytes"),
        ),
        P::Io(_) => Stop::Gone,
        _ => Stop::Close(
            close_code::PROTOCOL_ERROR,
            "WebSocket protocol error".into(),
        ),
    }
}

impl Socket {
    pub(crate) fn new(
        service: Service,
        principal: Principal,
        session: Session,
        settings: Arc<ServerSettings>,
    ) -> Socket {
        let conn = service.hub().connect(ConnectionInfo {
            user_id: principal.user_id,
            session_id: principal.session_id,
            cert_serial: principal.ctx.peer.as_ref().map(|p| p.serial.clone()),
        });
        Socket {
            service,
            principal,
            session,
            conn,
            subs: HashMap::new(),
            settings,
            bad_frames: 0,
        }
    }

    pub(crate) async fn run(mut self, mut stream: AggregatedMessageStream) {
        let stop = self.serve(&mut stream).await;
        if let Stop::Close(code, reason) = stop {
            let session = self.session.clone();
            // Bounded like every write: a client that stopped reading must not
            // keep this task (and its socket slot) alive.
            let limit = Duration::from_secs(self.settings.client_timeout_secs.max(1));
            let close = session.close(Some(CloseReason {
                code: CloseCode::from(code),
                description: Some(reason),
            }));
            let _ = tokio::time::timeout(limit, close).await;
        }
        tracing::debug!(user = %self.principal.user_id, "websocket closed");
    }

    async fn serve(&mut self, stream: &mut AggregatedMessageStream) -> Stop {
        let hello = ServerFrame::Hello {
            user_id: self.principal.user_id,
            server_time: now_ms(),
            limits: Limits {
                max_frame_bytes: MAX_FRAME_BYTES,
                max_body_bytes: MAX_BODY_BYTES,
                max_subscriptions: MAX_SUBSCRIPTIONS,
                max_history_limit: MAX_HISTORY_LIMIT,
                heartbeat_seconds: self.settings.heartbeat_secs,
            },
        };
        if let Err(s) = self.send(&hello).await {
            return s;
        }
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(self.settings.heartbeat_secs.max(1)));
        heartbeat.tick().await;
        let timeout = Duration::from_secs(self.settings.client_timeout_secs.max(1));
        let mut last_seen = Instant::now();
        loop {
            let step = tokio::select! {
                msg = stream.recv() => {
                    last_seen = Instant::now();
                    self.on_client(msg).await
                }
                ev = self.conn.next_event() => self.on_hub(ev).await,
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > timeout {
                        Err(Stop::Close(close_code::HEARTBEAT_TIMEOUT, "no frame or pong within the timeout".into()))
                    } else {
                        match self.check_session().await {
                            Ok(()) => self.control(true, b"kizuna").await,
                            Err(stop) => Err(stop),
                        }
                    }
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Closes the socket when its session ended or its account was disabled
    /// by something that did not reach this node's hub, and stops timelines
    /// the user may no longer read (a `resync` makes the client re-subscribe,
    /// which then reports why).
    async fn check_session(&mut self) -> Result<(), Stop> {
        let reason = match self.service.session_check(&self.principal).await {
            Ok(readable) => {
                let lost: Vec<TimelineId> = self
                    .subs
                    .keys()
                    .filter(|t| !readable.contains(t))
                    .copied()
                    .collect();
                for timeline in lost {
                    self.service.hub().unsubscribe(self.conn.id(), timeline);
                    if let Some(after_seq) = self.subs.remove(&timeline) {
                        self.send(&ServerFrame::Resync {
                            timeline_id: timeline,
                            after_seq,
                        })
                        .await?;
                    }
                }
                return Ok(());
            }
            Err(ServiceError::AccountDisabled) => kizuna_realtime::CloseReason::AccountDisabled,
            Err(ServiceError::CertificateRejected(_)) => {
                kizuna_realtime::CloseReason::CertificateRevoked
            }
            Err(ServiceError::Unauthorized(_) | ServiceError::NotFound) => {
                kizuna_realtime::CloseReason::SessionEnded
            }
            // The database is briefly unavailable: keep the socket.
            Err(_) => return Ok(()),
        };
        let _ = self
            .send(&ServerFrame::SessionEnded {
                reason: reason.code().to_owned(),
            })
            .await;
        Err(Stop::Close(close_for(reason), reason.code().to_owned()))
    }

    async fn on_client(
        &mut self,
        msg: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Result<(), Stop> {
        match msg {
            None => Err(Stop::Gone),
            Some(Ok(AggregatedMessage::Text(text))) => self.on_text(&text).await,
            Some(Ok(AggregatedMessage::Binary(_))) => Err(Stop::Close(
                close_code::UNSUPPORTED_DATA,
                "only JSON text frames are accepted".into(),
            )),
            Some(Ok(AggregatedMessage::Ping(bytes))) => self.control(false, &bytes).await,
            Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
            Some(Ok(AggregatedMessage::Close(_))) => {
                Err(Stop::Close(close_code::NORMAL, "bye".into()))
            }
            Some(Err(e)) => Err(protocol_close(&e)),
        }
    }

    async fn on_hub(&mut self, ev: ConnectionEvent) -> Result<(), Stop> {
        match ev {
            ConnectionEvent::Outbound(Outbound::Event {
                timeline,
                seq,
                frame,
            }) => self.on_live_event(timeline, seq, frame).await,
            ConnectionEvent::Outbound(Outbound::Notice { timeline, frame }) => {
                if self.subs.contains_key(&timeline) {
                    self.write(frame.to_string()).await?;
                }
                Ok(())
            }
            ConnectionEvent::Lagged(timelines) => {
                for timeline in timelines {
                    if let Some(after_seq) = self.subs.remove(&timeline) {
                        self.send(&ServerFrame::Resync {
                            timeline_id: timeline,
                            after_seq,
                        })
                        .await?;
                    }
                }
                Ok(())
            }
            ConnectionEvent::Closed(reason) => {
                let _ = self
                    .send(&ServerFrame::SessionEnded {
                        reason: reason.code().to_owned(),
                    })
                    .await;
                Err(Stop::Close(close_for(reason), reason.code().to_owned()))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Stop> {
        let command = match parse_command(text) {
            Ok(c) => c,
            Err(fe) => {
                self.bad_frames += 1;
                self.send(&ServerFrame::Error {
                    id: fe.id,
                    code: fe.code,
                    message: fe.message,
                })
                .await?;
                if self.bad_frames >= MAX_BAD_FRAMES_IN_A_ROW {
                    return Err(Stop::Close(
                        close_code::POLICY_VIOLATION,
                        "too many invalid frames in a row".into(),
                    ));
                }
                return Ok(());
            }
        };
        self.bad_frames = 0;
        let id = command.id().to_owned();
        let name = command.name();
        match self.dispatch(command).await {
            Ok(result) => self.send(&ServerFrame::Ok { id, result }).await,
            Err(CommandError::Stop(s)) => Err(s),
            Err(CommandError::Service(e)) => {
                if e.is_server_fault() {
                    tracing::error!(command = name, error = %e, "command failed");
                }
                self.send(&ServerFrame::Error {
                    id: Some(id),
                    code: e.code(),
                    message: e.public_message(),
                })
                .await
            }
            Err(CommandError::Refused(code, message)) => {
                self.send(&ServerFrame::Error {
                    id: Some(id),
                    code,
                    message,
                })
                .await
            }
        }
    }

    async fn dispatch(&mut self, command: ClientCommand) -> Result<OkResult, CommandError> {
        let s = &self.service;
        let p = &self.principal;
        Ok(match command {
            ClientCommand::Subscribe(c) => return self.subscribe(c).await,
            ClientCommand::Unsubscribe(c) => {
                for t in c.timeline_ids {
                    self.subs.remove(&t);
                    self.service.hub().unsubscribe(self.conn.id(), t);
                }
                OkResult::Empty {}
            }
            ClientCommand::Post(c) => {
                let stored = s.post(p, c).await?;
                OkResult::Stored {
                    event: stored.event,
                    duplicate: stored.duplicate,
                }
            }
            ClientCommand::Edit(c) => {
                let stored = s.edit(p, c).await?;
                OkResult::Stored {
                    event: stored.event,
                    duplicate: false,
                }
            }
            ClientCommand::Delete(c) => {
                let stored = s.delete(p, c).await?;
                OkResult::Stored {
                    event: stored.event,
                    duplicate: false,
                }
            }
            ClientCommand::Ack(c) => OkResult::Acked {
                ack: s.ack(p, c).await?,
            },
            ClientCommand::Acks(c) => OkResult::Acks {
                acks: s.acks(p, c).await?,
            },
            ClientCommand::Read(c) => {
                let timeline_id = c.timeline_id;
                OkResult::ReadMarker {
                    timeline_id,
                    read_seq: s.mark_read(p, c).await?,
                }
            }
            ClientCommand::History(c) => {
                let (events, more) = s.history(p, c).await?;
                OkResult::History { events, more }
            }
            ClientCommand::Timelines(_) => OkResult::Timelines {
                timelines: s.timelines(p).await?,
            },
            ClientCommand::Ping(_) => OkResult::Empty {},
        })
    }

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Stop> {
        let text = serde_json::to_string(frame).map_err(|_| {
            Stop::Close(
                close_code::INTERNAL_ERROR,
                "could not encode a frame".into(),
            )
        })?;
        self.write(text).await
    }

    /// Sends a ping (`true`) or pong, with the same timeout as [`Self::write`].
    async fn control(&mut self, ping: bool, payload: &[u8]) -> Result<(), Stop> {
        let limit = Duration::from_secs(self.settings.client_timeout_secs.max(1));
        let sent = if ping {
            tokio::time::timeout(limit, self.session.ping(payload)).await
        } else {
            tokio::time::timeout(limit, self.session.pong(payload)).await
        };
        match sent {
            Ok(r) => Ok(r?),
            Err(_) => Err(Stop::Gone),
        }
    }

    /// Writes a text frame, giving up on a client that has not taken anything
    /// for the whole client timeout (it stopped reading; its TCP window is
    /// full). Without this the socket task would wait forever and never run
    /// its heartbeat.
    async fn write(&mut self, text: String) -> Result<(), Stop> {
        let limit = Duration::from_secs(self.settings.client_timeout_secs.max(1));
        match tokio::time::timeout(limit, self.session.text(text)).await {
            Ok(sent) => Ok(sent?),
            Err(_) => Err(Stop::Gone),
        }
    }
}

enum CatchUpError {
    Stop(Stop),
    Service(ServiceError),
}

enum CommandError {
    Stop(Stop),
    Service(ServiceError),
    Refused(ErrorCode, String),
}

impl From<ServiceError> for CommandError {
    fn from(e: ServiceError) -> Self {
        CommandError::Service(e)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
