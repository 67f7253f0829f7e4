//! The WebSocket connection: commands with correlation ids, pushed frames
//! buffered in arrival order.

use crate::{Client, ClientError, Result};
use futures_util::{SinkExt, StreamExt};
use kizuna_domain::protocol::{
    Acknowledgement, ClientCommand, Event, OkResult, ServerFrame, SubscribeTo, SubscribedTimeline,
    TimelineSummary, cmd,
};
use kizuna_domain::text::Body;
use kizuna_domain::{Seq, TimelineId};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long [`WsConnection::request`] waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An open WebSocket.
pub struct WsConnection {
    stream: WebSocketStream<TlsStream<TcpStream>>,
    next_id: u64,
    /// Frames that arrived while waiting for an answer (events, acks, resyncs).
    pushed: VecDeque<ServerFrame>,
    hello: ServerFrame,
    /// Every text frame received since [`WsConnection::record_raw`], as sent
    /// (for tests that check what is on the wire, not what parses).
    raw: Option<Vec<String>>,
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection")
            .field("pushed", &self.pushed.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens `/v1/ws` with an access token (and, when given, an `Origin`).
    pub async fn connect_ws_with_origin(
        &self,
        access_token: &str,
        origin: Option<&str>,
    ) -> Result<WsConnection> {
        let tcp = TcpStream::connect(self.config.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(self.server_name()?, tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let url = format!(
            "wss://{}:{}/v1/ws",
            self.config.server_name,
            self.config.addr.port()
        );
        let mut request = url.into_client_request()?;
        let bearer = format!("Bearer {access_token}")
            .parse()
            .map_err(|_| ClientError::Protocol("token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        if let Some(o) = origin {
            request.headers_mut().insert(
                "origin",
                o.parse()
                    .map_err(|_| ClientError::Protocol("bad origin".into()))?,
            );
        }
        // tungstenite zero-fills its whole read buffer before every read
        // (128 KiB by default); server frames are at most 64 KiB and usually
        // a few hundred bytes, so a small buffer saves that work (it was 13 %
        // of the load generator's CPU) and memory. Larger frames still
        // arrive whole: the buffer grows as needed.
        let config = WebSocketConfig::default()
            .max_message_size(Some(16 << 20))
            .read_buffer_size(8 * 1024);
        let (mut stream, _) =
            match tokio_tungstenite::client_async_with_config(request, tls, Some(config)).await {
                Ok(ok) => ok,
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    let status = resp.status().as_u16();
                    let body = resp.body().as_deref().unwrap_or_default();
                    #[derive(serde::Deserialize)]
                    struct E {
                        code: kizuna_domain::protocol::ErrorCode,
                        message: String,
                    }
                    return Err(match serde_json::from_slice::<E>(body) {
                        Ok(e) => ClientError::Server {
                            status: Some(status),
                            code: e.code,
                            message: e.message,
                        },
                        Err(_) => {
                            ClientError::Protocol(format!("upgrade refused with HTTP {status}"))
                        }
                    });
                }
                Err(e) => return Err(e.into()),
            };
        let hello = loop {
            match tokio::time::timeout(REQUEST_TIMEOUT, stream.next()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => {
                    return Err(ClientError::Closed {
                        code: 1006,
                        reason: "closed before hello".into(),
                    });
                }
                Ok(Some(msg)) => match msg? {
                    Message::Text(t) => break parse_frame(&t)?,
                    Message::Close(c) => {
                        let (code, reason) = c
                            .map(|c| (u16::from(c.code), c.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        return Err(ClientError::Closed { code, reason });
                    }
                    _ => continue,
                },
            }
        };
        if !matches!(hello, ServerFrame::Hello { .. }) {
            return Err(ClientError::Protocol("first frame was not hello".into()));
        }
        Ok(WsConnection {
            stream,
            next_id: 1,
            pushed: VecDeque::new(),
            hello,
            raw: None,
        })
    }

    /// Opens `/v1/ws` with an access token.
    pub async fn connect_ws(&self, access_token: &str) -> Result<WsConnection> {
        self.connect_ws_with_origin(access_token, None).await
    }
}

fn parse_frame(text: &str) -> Result<ServerFrame> {
    serde_json::from_str(text)
        .map_err(|e| ClientError::Protocol(format!("unparseable server frame: {e}")))
}

impl WsConnection {
    /// The server's `hello`.
    pub fn hello(&self) -> &ServerFrame {
        &self.hello
    }

    /// A fresh command id.
    pub fn next_id(&mut self) -> String {
        let id = format!("c{}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Sends a raw text frame (for tests of malformed input).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.stream.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// Sends a raw WebSocket message (binary, ping, …).
    pub async fn send_message(&mut self, msg: Message) -> Result<()> {
        self.stream.send(msg).await?;
        Ok(())
    }

    /// The next frame from the server: buffered pushes first. Close frames
    /// become `ClientError::Closed`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame> {
        if let Some(f) = self.pushed.pop_front() {
            return Ok(f);
        }
        self.read_frame(timeout).await
    }

    async fn read_frame(&mut self, timeout: Duration) -> Result<ServerFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => {
                    return Err(ClientError::Closed {
                        code: 1006,
                        reason: "stream ended".into(),
                    });
                }
                Ok(Some(m)) => m?,
            };
            match msg {
                Message::Text(t) => {
                    if let Some(raw) = &mut self.raw {
                        raw.push(t.to_string());
                    }
                    return parse_frame(&t);
                }
                Message::Close(c) => {
                    let (code, reason) = c
                        .map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(ClientError::Closed { code, reason });
                }
                Message::Binary(_) => {
                    return Err(ClientError::Protocol("binary frame from server".into()));
                }
                // Pings are answered by tungstenite on the next read/write.
                _ => continue,
            }
        }
    }

    /// Starts keeping the text of every frame received from now on.
    pub fn record_raw(&mut self) {
        self.raw.get_or_insert_with(Vec::new);
    }

    /// The text of the frames received since [`WsConnection::record_raw`]
    /// (or the last call), oldest first.
    pub fn take_raw(&mut self) -> Vec<String> {
        self.raw.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Frames pushed so far and not yet taken.
    pub fn take_pushed(&mut self) -> Vec<ServerFrame> {
        self.pushed.drain(..).collect()
    }

    /// Sends a command and waits for its `ok` (or `error`), buffering pushed
    /// frames that arrive meanwhile.
    pub async fn request(&mut self, command: ClientCommand) -> Result<OkResult> {
        let id = command.id().to_owned();
        let text =
            serde_json::to_string(&command).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.send(Message::text(text)).await?;
        self.wait_answer(&id, REQUEST_TIMEOUT).await
    }

    /// Waits for the answer to command `id`.
    pub async fn wait_answer(&mut self, id: &str, timeout: Duration) -> Result<OkResult> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(remaining).await? {
                ServerFrame::Ok { id: got, result } if got == id => return Ok(result),
                ServerFrame::Error {
                    id: Some(got),
                    code,
                    message,
                } if got == id => {
                    return Err(ClientError::Server {
                        status: None,
                        code,
                        message,
                    });
                }
                ServerFrame::Error {
                    id: None,
                    code,
                    message,
                } => {
                    return Err(ClientError::Server {
                        status: None,
                        code,
                        message,
                    });
                }
                other => self.pushed.push_back(other),
            }
        }
    }

    /// Subscribes; returns the catch-up events (in order) and the positions.
    pub async fn subscribe(
        &mut self,
        timelines: &[(TimelineId, Seq)],
    ) -> Result<(Vec<Event>, Vec<SubscribedTimeline>)> {
        let id = self.next_id();
        let timelines = timelines
            .iter()
            .map(|&(timeline_id, after_seq)| SubscribeTo {
                timeline_id,
                after_seq,
            })
            .collect();
        let before = self.pushed.len();
        let result = self
            .request(ClientCommand::Subscribe(cmd::Subscribe { id, timelines }))
            .await?;
        let OkResult::Subscribed { subscribed } = result else {
            return Err(ClientError::Protocol(
                "unexpected answer to subscribe".into(),
            ));
        };
        // Catch-up events arrive before the answer: take them out of the buffer.
        let mut events = Vec::new();
        let mut rest = VecDeque::new();
        for (i, f) in self.pushed.drain(..).enumerate() {
            match f {
                ServerFrame::Event { event } if i >= before => events.push(event),
                other => rest.push_back(other),
            }
        }
        self.pushed = rest;
        Ok((events, subscribed))
    }

    /// Posts; returns the stored event and whether it was a duplicate.
    pub async fn post(
        &mut self,
        timeline_id: TimelineId,
        client_msg_id: &str,
        body: &str,
    ) -> Result<(Event, bool)> {
        let id = self.next_id();
        let body = Body::parse(body).map_err(|e| ClientError::Protocol(format!("body: {e}")))?;
        match self
            .request(ClientCommand::Post(cmd::Post {
                id,
                timeline_id,
                client_msg_id: client_msg_id.into(),
                body,
            }))
            .await?
        {
            OkResult::Stored { event, duplicate } => Ok((event, duplicate)),
            _ => Err(ClientError::Protocol("unexpected answer to post".into())),
        }
    }

    /// Edits a post.
    pub async fn edit(
        &mut self,
        timeline_id: TimelineId,
        target_seq: Seq,
        body: &str,
    ) -> Result<Event> {
        let id = self.next_id();
        let body = Body::parse(body).map_err(|e| ClientError::Protocol(format!("body: {e}")))?;
        match self
            .request(ClientCommand::Edit(cmd::Edit {
                id,
                timeline_id,
                target_seq,
                body,
            }))
            .await?
        {
            OkResult::Stored { event, .. } => Ok(event),
            _ => Err(ClientError::Protocol("unexpected answer to edit".into())),
        }
    }

    /// Deletes a post.
    pub async fn delete(&mut self, timeline_id: TimelineId, target_seq: Seq) -> Result<Event> {
        let id = self.next_id();
        match self
            .request(ClientCommand::Delete(cmd::Delete {
                id,
                timeline_id,
                target_seq,
            }))
            .await?
        {
            OkResult::Stored { event, .. } => Ok(event),
            _ => Err(ClientError::Protocol("unexpected answer to delete".into())),
        }
    }

    /// 了解.
    pub async fn ack(
        &mut self,
        timeline_id: TimelineId,
        target_seq: Seq,
    ) -> Result<Acknowledgement> {
        let id = self.next_id();
        match self
            .request(ClientCommand::Ack(cmd::Ack {
                id,
                timeline_id,
                target_seq,
            }))
            .await?
        {
            OkResult::Acked { ack } => Ok(ack),
            _ => Err(ClientError::Protocol("unexpected answer to ack".into())),
        }
    }

    /// Who acknowledged a post.
    pub async fn acks(
        &mut self,
        timeline_id: TimelineId,
        target_seq: Seq,
    ) -> Result<Vec<Acknowledgement>> {
        let id = self.next_id();
        match self
            .request(ClientCommand::Acks(cmd::Acks {
                id,
                timeline_id,
                target_seq,
            }))
            .await?
        {
            OkResult::Acks { acks } => Ok(acks),
            _ => Err(ClientError::Protocol("unexpected answer to acks".into())),
        }
    }

    /// Moves the read marker.
    pub async fn read(&mut self, timeline_id: TimelineId, seq: Seq) -> Result<Seq> {
        let id = self.next_id();
        match self
            .request(ClientCommand::Read(cmd::Read {
                id,
                timeline_id,
                seq,
            }))
            .await?
        {
            OkResult::ReadMarker { read_seq, .. } => Ok(read_seq),
            _ => Err(ClientError::Protocol("unexpected answer to read".into())),
        }
    }

    /// A page of history, newest first.
    pub async fn history(
        &mut self,
        timeline_id: TimelineId,
        before_seq: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<(Vec<Event>, bool)> {
        let id = self.next_id();
        match self
            .request(ClientCommand::History(cmd::History {
                id,
                timeline_id,
                before_seq,
                limit,
            }))
            .await?
        {
            OkResult::History { events, more } => Ok((events, more)),
            _ => Err(ClientError::Protocol("unexpected answer to history".into())),
        }
    }

    /// The timelines one may read, with unread counts.
    pub async fn timelines(&mut self) -> Result<Vec<TimelineSummary>> {
        let id = self.next_id();
        match self
            .request(ClientCommand::Timelines(cmd::Timelines { id }))
            .await?
        {
            OkResult::Timelines { timelines } => Ok(timelines),
            _ => Err(ClientError::Protocol(
                "unexpected answer to timelines".into(),
            )),
        }
    }

    /// Application-level ping.
    pub async fn ping(&mut self) -> Result<()> {
        let id = self.next_id();
        self.request(ClientCommand::Ping(cmd::Ping { id }))
            .await
            .map(|_| ())
    }

    /// Waits for the next pushed `event` on any timeline.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(remaining).await? {
                ServerFrame::Event { event } => return Ok(event),
                _ => continue,
            }
        }
    }

    /// Closes the socket politely.
    pub async fn close(mut self) -> Result<()> {
        self.stream.close(None).await?;
        Ok(())
    }
}
