//! The WebSocket protocol: every frame a client may send and every frame the
//! server pushes, as serde types shared by the server and the Rust client.
//! `docs/protocol.md` is the prose version of this module; keep them in step.
//!
//! All frames are JSON text frames, objects tagged by `"type"`. Commands carry a
//! client-chosen `id` (1–64 characters) which the server echoes in the `ok` or
//! `error` answer. Times are Unix milliseconds (UTC).

use crate::ids::{EventId, FacilityId, GroupId, Seq, TimelineId, UserId};
use crate::kinds::{EventKind, GroupKind, GroupRole, Profession, TimelineKind, UserKind};
use crate::text::{Body, Name};
use serde::{Deserialize, Serialize};

/// Largest WebSocket text frame the server accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest `id` of a command, in bytes.
pub const MAX_COMMAND_ID_BYTES: usize = 64;
/// Largest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Most timelines in one `subscribe` command, and subscribed on one connection.
pub const MAX_SUBSCRIPTIONS: usize = 1_000;
/// Most events returned by one `history` command or one catch-up page.
pub const MAX_HISTORY_LIMIT: u32 = 200;
/// Default `limit` of `history`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;

/// Commands a client sends, one payload struct per command. On the wire each is
/// a JSON object whose `"type"` names the command (see [`ClientCommand::NAMES`]);
/// [`parse_command`] is the only way in from text.
pub mod cmd {
    use super::*;

    macro_rules! command {
        ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $name {
                /// Client-chosen correlation id (1–64 bytes), echoed in the answer.
                pub id: String,
                $($(#[$fattr])* pub $field: $ty,)*
            }
        };
    }

    command!(
        /// Start receiving a set of timelines' events, each from `after_seq` on.
        Subscribe {
            /// The timelines and where to resume each.
            timelines: Vec<SubscribeTo>,
        }
    );
    command!(
        /// Stop receiving timelines' events.
        Unsubscribe {
            /// The timelines.
            timeline_ids: Vec<TimelineId>,
        }
    );
    command!(
        /// Post a new message.
        Post {
            /// Where to post.
            timeline_id: TimelineId,
            /// Idempotency key: a retry with the same key returns the stored event.
            client_msg_id: String,
            /// The text.
            body: Body,
        }
    );
    command!(
        /// Replace the body of one's own post.
        Edit {
            /// The post's timeline.
            timeline_id: TimelineId,
            /// The post's `seq`.
            target_seq: Seq,
            /// The new text.
            body: Body,
        }
    );
    command!(
        /// Delete one's own post (owners and moderators: any post); leaves a tombstone.
        Delete {
            /// The post's timeline.
            timeline_id: TimelineId,
            /// The post's `seq`.
            target_seq: Seq,
        }
    );
    command!(
        /// 了解: acknowledge a post ("got it").
        Ack {
            /// The post's timeline.
            timeline_id: TimelineId,
            /// The post's `seq`.
            target_seq: Seq,
        }
    );
    command!(
        /// List who acknowledged a post.
        Acks {
            /// The post's timeline.
            timeline_id: TimelineId,
            /// The post's `seq`.
            target_seq: Seq,
        }
    );
    command!(
        /// Move one's read marker forward (never backward).
        Read {
            /// The timeline.
            timeline_id: TimelineId,
            /// Everything up to and including this `seq` has been read.
            seq: Seq,
        }
    );
    command!(
        /// Page backwards through a timeline.
        History {
            /// The timeline.
            timeline_id: TimelineId,
            /// Return events with `seq` below this; absent = from the newest.
            #[serde(default)]
            before_seq: Option<Seq>,
            /// How many (1–200, default 50).
            #[serde(default)]
            limit: Option<u32>,
        }
    );
    command!(
        /// List the timelines one may see, with unread counts.
        Timelines {}
    );
    command!(
        /// Application-level liveness check (WebSocket ping frames also work).
        Ping {}
    );
}

/// A parsed command from a client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientCommand {
    /// See [`cmd::Subscribe`].
    Subscribe(cmd::Subscribe),
    /// See [`cmd::Unsubscribe`].
    Unsubscribe(cmd::Unsubscribe),
    /// See [`cmd::Post`].
    Post(cmd::Post),
    /// See [`cmd::Edit`].
    Edit(cmd::Edit),
    /// See [`cmd::Delete`].
    Delete(cmd::Delete),
    /// See [`cmd::Ack`].
    Ack(cmd::Ack),
    /// See [`cmd::Acks`].
    Acks(cmd::Acks),
    /// See [`cmd::Read`].
    Read(cmd::Read),
    /// See [`cmd::History`].
    History(cmd::History),
    /// See [`cmd::Timelines`].
    Timelines(cmd::Timelines),
    /// See [`cmd::Ping`].
    Ping(cmd::Ping),
}

impl ClientCommand {
    /// Every command name, as spelled in `"type"`.
    pub const NAMES: &'static [&'static str] = &[
        "subscribe",
        "unsubscribe",
        "post",
        "edit",
        "delete",
        "ack",
        "acks",
        "read",
        "history",
        "timelines",
        "ping",
    ];

    /// The command's correlation id.
    pub fn id(&self) -> &str {
        match self {
            ClientCommand::Subscribe(c) => &c.id,
            ClientCommand::Unsubscribe(c) => &c.id,
            ClientCommand::Post(c) => &c.id,
            ClientCommand::Edit(c) => &c.id,
            ClientCommand::Delete(c) => &c.id,
            ClientCommand::Ack(c) => &c.id,
            ClientCommand::Acks(c) => &c.id,
            ClientCommand::Read(c) => &c.id,
            ClientCommand::History(c) => &c.id,
            ClientCommand::Timelines(c) => &c.id,
            ClientCommand::Ping(c) => &c.id,
        }
    }

    /// The command's name, as spelled in `"type"`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientCommand::Subscribe(_) => "subscribe",
            ClientCommand::Unsubscribe(_) => "unsubscribe",
            ClientCommand::Post(_) => "post",
            ClientCommand::Edit(_) => "edit",
            ClientCommand::Delete(_) => "delete",
            ClientCommand::Ack(_) => "ack",
            ClientCommand::Acks(_) => "acks",
            ClientCommand::Read(_) => "read",
            ClientCommand::History(_) => "history",
            ClientCommand::Timelines(_) => "timelines",
            ClientCommand::Ping(_) => "ping",
        }
    }
}

/// One timeline to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeTo {
    /// The timeline.
    pub timeline_id: TimelineId,
    /// The last `seq` the client has; events after it are sent first. Absent or
    /// 0 = from the beginning.
    #[serde(default)]
    pub after_seq: Seq,
}

/// Who wrote something, as shown to readers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Author {
    /// The author's user id.
    pub user_id: UserId,
    /// Display name.
    pub display_name: Name,
    /// Kind of account.
    pub kind: UserKind,
    /// Profession, for staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profession: Option<Profession>,
    /// The author's facility, for staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility_id: Option<FacilityId>,
}

/// One event on a timeline, as delivered live and by `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Store-wide event id.
    pub event_id: EventId,
    /// The timeline.
    pub timeline_id: TimelineId,
    /// Position on the timeline: 1, 2, 3, … with no gaps.
    pub seq: Seq,
    /// What happened.
    pub kind: EventKind,
    /// Who did it. `null` on an anonymous event (see `anonymous`): nobody
    /// learns who wrote in a community's consultation timeline, the author
    /// included.
    #[serde(default)]
    pub author: Option<Author>,
    /// True on every event of a consultation timeline: the author is withheld.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// `history` only: true on the caller's own anonymous posts, so the
    /// author's client can find them again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
    /// Post, edit: the text. Absent for deletes and membership events, and for
    /// a post that has since been deleted (see `deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// Edit, delete: the `seq` of the post it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<Seq>,
    /// Post: the author's idempotency key (shown to the author only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it was stored.
    pub created_at: i64,
    /// Post (in `history`): when it was last edited, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// Post (in `history`): true when it has been deleted (the body is gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Post (in `history`): how many members acknowledged (了解) it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ack_count: u32,
}

impl Event {
    /// The event with its author withheld (`author: null`, `anonymous: true`),
    /// as every event of a consultation timeline is sent. `client_msg_id` is
    /// left as it is: it is only ever filled in for the author's own view.
    pub fn anonymized(mut self) -> Event {
        self.author = None;
        self.anonymous = true;
        self
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One acknowledgement (了解) of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The post's timeline.
    pub timeline_id: TimelineId,
    /// The post's `seq`.
    pub target_seq: Seq,
    /// Who acknowledged.
    pub user: Author,
    /// When.
    pub acked_at: i64,
}

/// A timeline the user may see, as listed by `timelines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineSummary {
    /// The timeline.
    pub timeline_id: TimelineId,
    /// Which timeline of the group.
    pub kind: TimelineKind,
    /// The group.
    pub group_id: GroupId,
    /// The group's kind.
    pub group_kind: GroupKind,
    /// The group's name (for a patient group it names the patient).
    pub group_name: Name,
    /// The user's role in the group.
    pub role: GroupRole,
    /// Newest `seq` on the timeline (0 when empty).
    pub last_seq: Seq,
    /// The user's read marker (0 when nothing read).
    pub read_seq: Seq,
    /// Posts by others after the read marker.
    pub unread: u32,
}

/// The result carried by an `ok` answer; which one depends on the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OkResult {
    /// `post`, `edit`, `delete`: the stored event (for a retried post, the
    /// originally stored one).
    Stored {
        /// The event.
        event: Event,
        /// True when a retried `post` matched an earlier one by `client_msg_id`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    /// `subscribe`: per timeline, the newest `seq` at subscription time; the
    /// catch-up events (after `after_seq`) were sent as `event` frames before
    /// this answer, and live events follow it.
    Subscribed {
        /// Per timeline.
        subscribed: Vec<SubscribedTimeline>,
    },
    /// `history`: events, newest first.
    History {
        /// The events, in descending `seq`.
        events: Vec<Event>,
        /// True when older events exist.
        more: bool,
    },
    /// `acks`: who acknowledged, oldest first.
    Acks {
        /// The acknowledgements.
        acks: Vec<Acknowledgement>,
    },
    /// `ack`: the acknowledgement (also for a repeated ack).
    Acked {
        /// The acknowledgement.
        ack: Acknowledgement,
    },
    /// `read`: the read marker now in force.
    ReadMarker {
        /// The timeline.
        timeline_id: TimelineId,
        /// The stored marker (may be higher than asked if it was already).
        read_seq: Seq,
    },
    /// `timelines`.
    Timelines {
        /// The timelines.
        timelines: Vec<TimelineSummary>,
    },
    /// `unsubscribe`, `ping`: nothing more to say.
    Empty {},
}

/// Per-timeline result of `subscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedTimeline {
    /// The timeline.
    pub timeline_id: TimelineId,
    /// Newest `seq` sent during catch-up (or `after_seq` when nothing was missed).
    pub last_seq: Seq,
}

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame after the upgrade.
    Hello {
        /// The authenticated user.
        user_id: UserId,
        /// Server time, for clock-skew display.
        server_time: i64,
        /// Limits the client must respect.
        limits: Limits,
    },
    /// A command succeeded.
    Ok {
        /// The command's id.
        id: String,
        /// What it produced.
        result: OkResult,
    },
    /// A command failed; the connection stays open.
    Error {
        /// The command's id, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation (never contains message content).
        message: String,
    },
    /// A new event on a subscribed timeline.
    Event {
        /// The event.
        event: Event,
    },
    /// Someone acknowledged (了解) a post on a subscribed timeline.
    Ack {
        /// The acknowledgement.
        ack: Acknowledgement,
    },
    /// The server stopped sending this timeline because the client fell behind;
    /// subscribe again with `after_seq` to catch up from the store.
    Resync {
        /// The timeline.
        timeline_id: TimelineId,
        /// The last `seq` the server sent on it over this connection.
        after_seq: Seq,
    },
    /// The session is over; the server closes the socket next.
    SessionEnded {
        /// Why (same words as the close reason).
        reason: String,
    },
}

/// Limits announced in `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest text frame, bytes.
    pub max_frame_bytes: usize,
    /// Largest post body, bytes.
    pub max_body_bytes: usize,
    /// Most subscribed timelines per connection.
    pub max_subscriptions: usize,
    /// Largest `history` page.
    pub max_history_limit: u32,
    /// Seconds between server pings; reply with pong (clients' libraries do).
    pub heartbeat_seconds: u64,
}

/// Stable error codes: the client contract. Spelled in snake_case on the wire,
/// shared by WebSocket `error` frames and REST error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame or body is not valid JSON, not an object, or has no `type`/`id`.
    BadFrame,
    /// `type` names no command.
    UnknownCommand,
    /// A field is missing, of the wrong type, or out of range.
    InvalidField,
    /// A post or edit body is empty, too long or has control characters.
    InvalidBody,
    /// Subscribing would exceed the timelines allowed on one connection.
    TooManySubscriptions,
    /// The target does not exist or the user may not know that it does.
    NotFound,
    /// The user may see the target but not do this to it.
    Forbidden,
    /// The `client_msg_id` was used before for different content or on
    /// another timeline, or the target post was deleted.
    Conflict,
    /// Login failed (wrong user or password; never says which).
    InvalidCredentials,
    /// No or an invalid access token.
    Unauthorized,
    /// The access token expired: refresh it.
    TokenExpired,
    /// The account is disabled.
    AccountDisabled,
    /// The account's facility requires a client certificate on the TLS
    /// connection (and the password); none was presented.
    CertificateRequired,
    /// The client certificate presented is revoked, expired, unknown, or not
    /// the one the login, token or session is bound to.
    CertificateRejected,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// The `Origin` header is not allowed.
    OriginNotAllowed,
    /// A dependency (database) is unavailable; retry.
    Unavailable,
    /// Something went wrong on the server; it is logged with the request id.
    Internal,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::CertificateRequired => "certificate_required",
            ErrorCode::CertificateRejected => "certificate_rejected",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes the server uses (RFC 6455 ones and Kizuna's 4xxx).
pub mod close_code {
    /// Normal closure (the client sent a close frame).
    pub const NORMAL: u16 = 1000;
    /// Server shutting down: reconnect (to another node) with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket framing rules.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Binary frame received: only JSON text frames are accepted.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation (e.g. too many bad frames in a row).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// Frame larger than `max_frame_bytes`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Unexpected server error.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The session ended: logout, refresh-token reuse detected, session
    /// revoked or expired. Log in again.
    pub const SESSION_ENDED: u16 = 4001;
    /// The account was disabled.
    pub const ACCOUNT_DISABLED: u16 = 4002;
    /// The device certificate was revoked.
    pub const CERTIFICATE_REVOKED: u16 = 4003;
    /// Heartbeat missed: no pong within the timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
}

/// Why a text frame could not be turned into a command. Carries no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The command id, when one could be read.
    pub id: Option<String>,
    /// Which error code applies.
    pub code: ErrorCode,
    /// Explanation naming at most a field path and a command name.
    pub message: String,
}

/// Parses one text frame into a command, with an error that names the field at
/// fault but never echoes values (they may be patient information).
pub fn parse_command(text: &str) -> Result<ClientCommand, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| FrameError {
        id: None,
        code: ErrorCode::BadFrame,
        message: "frame is not valid JSON".into(),
    })?;
    let obj = value.as_object().ok_or_else(|| FrameError {
        id: None,
        code: ErrorCode::BadFrame,
        message: "frame must be a JSON object".into(),
    })?;
    let id = match obj.get("id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= MAX_COMMAND_ID_BYTES => {
            Some(s.clone())
        }
        _ => {
            return Err(FrameError {
                id: None,
                code: ErrorCode::BadFrame,
                message: format!("`id` must be a string of 1 to {MAX_COMMAND_ID_BYTES} bytes"),
            });
        }
    };
    let kind = match obj.get("type") {
        Some(serde_json::Value::String(s)) => s.as_str(),
        _ => {
            return Err(FrameError {
                id,
                code: ErrorCode::BadFrame,
                message: "`type` must be a string naming a command".into(),
            });
        }
    };
    if !ClientCommand::NAMES.contains(&kind) {
        return Err(FrameError {
            id,
            code: ErrorCode::UnknownCommand,
            message: "`type` names no command; see docs/protocol.md".into(),
        });
    }
    let kind = kind.to_owned();
    let mut fields = value;
    if let Some(map) = fields.as_object_mut() {
        map.remove("type");
    }
    let command = dispatch(&kind, fields).map_err(|e| field_error(id.clone(), &kind, &e))?;
    check_command(&command).map_err(|(field, why)| FrameError {
        id: id.clone(),
        code: ErrorCode::InvalidField,
        message: format!("`{kind}`: field `{field}` {why}"),
    })?;
    Ok(command)
}

fn dispatch(
    kind: &str,
    fields: serde_json::Value,
) -> Result<ClientCommand, serde_path_to_error::Error<serde_json::Error>> {
    use serde_path_to_error::deserialize as de;
    Ok(match kind {
        "subscribe" => ClientCommand::Subscribe(de(fields)?),
        "unsubscribe" => ClientCommand::Unsubscribe(de(fields)?),
        "post" => ClientCommand::Post(de(fields)?),
        "edit" => ClientCommand::Edit(de(fields)?),
        "delete" => ClientCommand::Delete(de(fields)?),
        "ack" => ClientCommand::Ack(de(fields)?),
        "acks" => ClientCommand::Acks(de(fields)?),
        "read" => ClientCommand::Read(de(fields)?),
        "history" => ClientCommand::History(de(fields)?),
        "timelines" => ClientCommand::Timelines(de(fields)?),
        // `parse_command` checked the name against NAMES before calling.
        _ => ClientCommand::Ping(de(fields)?),
    })
}

fn field_error(
    id: Option<String>,
    kind: &str,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> FrameError {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    // serde's own messages quote the offending value; only our text-type errors
    // (which never contain the value) are safe to pass on.
    let is_body = path.ends_with("body");
    let (code, why) = if is_body {
        (ErrorCode::InvalidBody, body_reason(&inner))
    } else if inner.starts_with("unknown field") {
        (ErrorCode::InvalidField, "is not a field of this command")
    } else if inner.starts_with("missing field") {
        (ErrorCode::InvalidField, "is missing")
    } else {
        (ErrorCode::InvalidField, "has the wrong type or value")
    };
    let field = if inner.starts_with("missing field") || inner.starts_with("unknown field") {
        // The field name sits between backticks in serde's message; it is a
        // name from our schema or the client's own key, never a value.
        inner.split('`').nth(1).unwrap_or("?").to_owned()
    } else {
        path
    };
    FrameError {
        id,
        code,
        message: format!("`{kind}`: field `{field}` {why}"),
    }
}

fn body_reason(inner: &str) -> &'static str {
    if inner.contains("empty") {
        "must not be empty"
    } else if inner.contains("longer") {
        "is too long"
    } else if inner.contains("control") {
        "contains control characters"
    } else {
        "must be a string"
    }
}

fn check_command(command: &ClientCommand) -> Result<(), (&'static str, String)> {
    match command {
        ClientCommand::Subscribe(cmd::Subscribe { timelines, .. }) => {
            if timelines.is_empty() || timelines.len() > MAX_SUBSCRIPTIONS {
                return Err((
                    "timelines",
                    format!("must list 1 to {MAX_SUBSCRIPTIONS} timelines"),
                ));
            }
            if timelines.iter().any(|t| t.after_seq < 0) {
                return Err(("after_seq", "must not be negative".into()));
            }
        }
        ClientCommand::Unsubscribe(cmd::Unsubscribe { timeline_ids, .. }) => {
            if timeline_ids.len() > MAX_SUBSCRIPTIONS {
                return Err((
                    "timeline_ids",
                    format!("must list at most {MAX_SUBSCRIPTIONS}"),
                ));
            }
        }
        ClientCommand::Post(cmd::Post { client_msg_id, .. }) => {
            if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
                return Err((
                    "client_msg_id",
                    format!("must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes"),
                ));
            }
        }
        ClientCommand::Edit(cmd::Edit { target_seq, .. })
        | ClientCommand::Delete(cmd::Delete { target_seq, .. })
        | ClientCommand::Ack(cmd::Ack { target_seq, .. })
        | ClientCommand::Acks(cmd::Acks { target_seq, .. }) => {
            if *target_seq < 1 {
                return Err(("target_seq", "must be 1 or more".into()));
            }
        }
        ClientCommand::Read(cmd::Read { seq, .. }) => {
            if *seq < 0 {
                return Err(("seq", "must not be negative".into()));
            }
        }
        ClientCommand::History(cmd::History {
            before_seq, limit, ..
        }) => {
            if before_seq.is_some_and(|b| b < 1) {
                return Err(("before_seq", "must be 1 or more".into()));
            }
            if limit.is_some_and(|l| l == 0 || l > MAX_HISTORY_LIMIT) {
                return Err(("limit", format!("must be 1 to {MAX_HISTORY_LIMIT}")));
            }
        }
        ClientCommand::Timelines(_) | ClientCommand::Ping(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_parses() {
        let c = parse_command(
            r#"{"type":"post","id":"c1","timeline_id":7,"client_msg_id":"m-1","body":"started day service"}"#,
        )
        .unwrap();
        match c {
            ClientCommand::Post(cmd::Post {
                id, timeline_id, ..
            }) => {
                assert_eq!(id, "c1");
                assert_eq!(timeline_id, TimelineId(7));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_a_bad_frame() {
        let e = parse_command("{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert_eq!(e.id, None);
        assert_eq!(
            parse_command("[1,2]").unwrap_err().code,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn a_missing_id_is_a_bad_frame() {
        let e = parse_command(r#"{"type":"ping"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
    }

    #[test]
    fn unknown_command_keeps_the_id() {
        let e = parse_command(r#"{"type":"launch","id":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownCommand);
        assert_eq!(e.id.as_deref(), Some("x"));
    }

    #[test]
    fn wrong_types_name_the_field_but_not_the_value() {
        let e = parse_command(
            r#"{"type":"post","id":"c","timeline_id":"Yamada Taro","client_msg_id":"m","body":"b"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert!(e.message.contains("timeline_id"), "{}", e.message);
        assert!(!e.message.contains("Yamada"), "{}", e.message);
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let e =
            parse_command(r#"{"type":"post","id":"c","timeline_id":1,"body":"b"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert!(e.message.contains("client_msg_id"), "{}", e.message);
        let e = parse_command(
            r#"{"type":"post","id":"c","timeline_id":1,"client_msg_id":"m","body":"b","author_id":9}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert!(e.message.contains("author_id"), "{}", e.message);
    }

    #[test]
    fn bad_bodies_get_invalid_body_without_content() {
        let e = parse_command(
            r#"{"type":"post","id":"c","timeline_id":1,"client_msg_id":"m","body":"  "}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidBody);
        let long = "秘".repeat(10_000);
        let e = parse_command(&format!(
            r#"{{"type":"post","id":"c","timeline_id":1,"client_msg_id":"m","body":"{long}"}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidBody);
        assert!(!e.message.contains('秘'));
    }

    #[test]
    fn ranges_are_checked() {
        let e = parse_command(r#"{"type":"history","id":"h","timeline_id":1,"limit":5000}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert!(e.message.contains("limit"));
        let e = parse_command(r#"{"type":"subscribe","id":"s","timelines":[]}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        let e =
            parse_command(r#"{"type":"ack","id":"a","timeline_id":1,"target_seq":0}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
    }

    #[test]
    fn every_command_name_is_a_variant() {
        for name in ClientCommand::NAMES {
            let e = parse_command(&format!(r#"{{"type":"{name}","id":"x","zzz":1}}"#)).unwrap_err();
            assert_ne!(e.code, ErrorCode::UnknownCommand, "{name}");
        }
    }

    #[test]
    fn an_anonymous_event_names_nobody_and_says_so() {
        let event = Event {
            event_id: EventId(9),
            timeline_id: TimelineId(4),
            seq: 1,
            kind: EventKind::Post,
            author: Some(Author {
                user_id: UserId(77),
                display_name: Name::parse("Suzuki").unwrap(),
                kind: UserKind::Staff,
                profession: Some(Profession::Nurse),
                facility_id: Some(FacilityId(3)),
            }),
            anonymous: false,
            mine: false,
            body: Some(Body::parse("Is this stage 3?").unwrap()),
            target_seq: None,
            client_msg_id: None,
            created_at: 1,
            edited_at: None,
            deleted: false,
            ack_count: 0,
        };
        let plain = serde_json::to_string(&event).unwrap();
        assert!(plain.contains(r#""user_id":77"#) && !plain.contains("anonymous"));
        let hidden = event.anonymized();
        let s = serde_json::to_string(&hidden).unwrap();
        assert!(s.contains(r#""author":null"#), "{s}");
        assert!(s.contains(r#""anonymous":true"#), "{s}");
        assert!(
            !s.contains("77") && !s.contains("Suzuki") && !s.contains("mine"),
            "{s}"
        );
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, hidden);
        // Older frames without the new fields still parse.
        let old: Event = serde_json::from_str(&plain).unwrap();
        assert!(old.author.is_some() && !old.anonymous && !old.mine);
    }

    #[test]
    fn server_frames_round_trip() {
        let f = ServerFrame::Resync {
            timeline_id: TimelineId(3),
            after_seq: 17,
        };
        let s = serde_json::to_string(&f).unwrap();
        assert_eq!(s, r#"{"type":"resync","timeline_id":3,"after_seq":17}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&s).unwrap(), f);
        let ok = ServerFrame::Ok {
            id: "p".into(),
            result: OkResult::Empty {},
        };
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(s, r#"{"type":"ok","id":"p","result":{}}"#);
    }
}
