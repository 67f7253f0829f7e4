//! The vocabulary shared by the hub, the connections and the bus.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use kizuna_domain::{Seq, SessionId, TimelineId, UserId};
use serde::{Deserialize, Serialize};

/// A serialized JSON text frame, built once per event and shared by every
/// recipient (cloning it copies a pointer, not the text).
pub type SharedFrame = Arc<str>;

/// Identifies one live connection within one [`Hub`](crate::Hub). Assigned by
/// the hub, never reused by it, meaningless on other nodes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The raw number, for logs and metrics.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Who is on the other end of a connection; used to pick connections for
/// [`Hub::close`](crate::Hub::close).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The authenticated user.
    pub user_id: UserId,
    /// The login session the access token belongs to.
    pub session_id: SessionId,
    /// Serial number of the client certificate the TLS handshake presented, as
    /// hexadecimal digits (`:` separators, letter case and leading zeros are
    /// ignored when matching). `None` when no certificate is bound.
    pub cert_serial: Option<String>,
}

/// One item of a connection's bounded outbound queue.
///
/// `Debug` shows the frame's length only: frames carry patient data.
#[derive(Clone)]
pub enum Outbound {
    /// A sequenced event of a timeline; `frame` is the ready-to-send JSON text.
    Event {
        /// The timeline the event belongs to.
        timeline: TimelineId,
        /// Its position on the timeline.
        seq: Seq,
        /// The serialized frame.
        frame: SharedFrame,
    },
    /// An unsequenced frame about a timeline (for example an acknowledgement or
    /// read-marker update). Losing one is repaired by the same resync as events.
    Notice {
        /// The timeline the notice is about.
        timeline: TimelineId,
        /// The serialized frame.
        frame: SharedFrame,
    },
}

impl Outbound {
    /// The timeline this frame belongs to.
    pub fn timeline(&self) -> TimelineId {
        match self {
            Outbound::Event { timeline, .. } | Outbound::Notice { timeline, .. } => *timeline,
        }
    }

    /// The ready-to-send JSON text.
    pub fn frame(&self) -> &SharedFrame {
        match self {
            Outbound::Event { frame, .. } | Outbound::Notice { frame, .. } => frame,
        }
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outbound::Event {
                timeline,
                seq,
                frame,
            } => f
                .debug_struct("Event")
                .field("timeline", timeline)
                .field("seq", seq)
                .field("frame_len", &frame.len())
                .finish(),
            Outbound::Notice { timeline, frame } => f
                .debug_struct("Notice")
                .field("timeline", timeline)
                .field("frame_len", &frame.len())
                .finish(),
        }
    }
}

/// Why the hub asked a connection to close. The server turns it into a final
/// frame and a WebSocket close; [`CloseReason::code`] is the stable string the
/// client sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// The login session ended (logout, session revoked by an administrator,
    /// refresh chain invalidated). The client must log in again.
    SessionEnded,
    /// The client certificate of this device was revoked. The device cannot
    /// reconnect with it.
    CertificateRevoked,
    /// The user account was disabled.
    AccountDisabled,
    /// The user's group memberships changed in a way that removes access (for
    /// example removed from a group). The client reconnects; the access check
    /// then refuses the timelines it lost.
    MembershipChanged,
    /// The node is shutting down or draining. The client reconnects, typically
    /// reaching another node.
    ServerShutdown,
}

impl CloseReason {
    /// Every reason, for tests and documentation tables.
    pub const ALL: [CloseReason; 5] = [
        CloseReason::SessionEnded,
        CloseReason::CertificateRevoked,
        CloseReason::AccountDisabled,
        CloseReason::MembershipChanged,
        CloseReason::ServerShutdown,
    ];

    /// The stable snake_case code sent to clients and used on the bus:
    ///
    /// | reason | code |
    /// |---|---|
    /// | `SessionEnded` | `session_ended` |
    /// | `CertificateRevoked` | `certificate_revoked` |
    /// | `AccountDisabled` | `account_disabled` |
    /// | `MembershipChanged` | `membership_changed` |
    /// | `ServerShutdown` | `server_shutdown` |
    pub fn code(&self) -> &'static str {
        match self {
            CloseReason::SessionEnded => "session_ended",
            CloseReason::CertificateRevoked => "certificate_revoked",
            CloseReason::AccountDisabled => "account_disabled",
            CloseReason::MembershipChanged => "membership_changed",
            CloseReason::ServerShutdown => "server_shutdown",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A string that is not one of the [`CloseReason::code`] values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown close reason code")]
#[non_exhaustive]
pub struct UnknownCloseReason;

impl FromStr for CloseReason {
    type Err = UnknownCloseReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CloseReason::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or(UnknownCloseReason)
    }
}

/// Which connections a [`Hub::close`](crate::Hub::close) applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Selector {
    /// Every connection of this user (all devices).
    User(UserId),
    /// Every connection of this login session.
    Session(SessionId),
    /// Every connection made with the client certificate of this serial
    /// (hexadecimal; `:` separators, case and leading zeros are ignored).
    CertSerial(String),
    /// Every connection (shutdown, drain).
    All,
}

impl Selector {
    /// The same selector with its serial (if any) in canonical form, so that
    /// [`Selector::matches`] compares without allocating per connection.
    pub(crate) fn normalized(&self) -> Selector {
        match self {
            Selector::CertSerial(serial) => Selector::CertSerial(normalize_serial(serial)),
            other => other.clone(),
        }
    }

    /// Whether a connection described by `info` is selected. Both the selector
    /// and `info` must be normalised (see [`Selector::normalized`] and
    /// [`normalize_serial`]). An empty serial selects nothing.
    pub(crate) fn matches(&self, info: &ConnectionInfo) -> bool {
        match self {
            Selector::User(user) => info.user_id == *user,
            Selector::Session(session) => info.session_id == *session,
            Selector::CertSerial(serial) => {
                !serial.is_empty() && info.cert_serial.as_deref() == Some(serial.as_str())
            }
            Selector::All => true,
        }
    }
}

/// Canonical form of a certificate serial for comparison: hexadecimal digits
/// only, lower case, without leading zeros (so the DER sign byte `00` that some
/// parsers keep does not matter). A serial that is zero normalises to `"0"`.
pub(crate) fn normalize_serial(serial: &str) -> String {
    let digits: String = serial
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() && !digits.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_codes_are_snake_case_and_round_trip() {
        for reason in CloseReason::ALL {
            let code = reason.code();
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(code.parse::<CloseReason>(), Ok(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{code}\""));
        }
        assert_eq!("nope".parse::<CloseReason>(), Err(UnknownCloseReason));
    }

    #[test]
    fn serials_match_regardless_of_format() {
        let info = ConnectionInfo {
            user_id: UserId(1),
            session_id: SessionId(2),
            cert_serial: Some(normalize_serial("00:AB:cd:01")),
        };
        let selects = |s: &str| Selector::CertSerial(s.into()).normalized().matches(&info);
        assert!(selects("abcd01"));
        assert!(selects("0ABCD01"));
        assert!(!selects("abcd02"));
        assert!(!selects(""));
        assert_eq!(normalize_serial("00"), "0");
    }

    #[test]
    fn debug_of_outbound_does_not_show_the_frame() {
        let secret = "{\"body\":\"patient Yamada has a fever\"}";
        let out = Outbound::Event {
            timeline: TimelineId(1),
            seq: 3,
            frame: Arc::from(secret),
        };
        let shown = format!("{out:?}");
        assert!(!shown.contains("Yamada"), "{shown}");
        assert!(shown.contains("frame_len"));
        let notice = Outbound::Notice {
            timeline: TimelineId(1),
            frame: Arc::from(secret),
        };
        assert!(!format!("{notice:?}").contains("Yamada"));
    }
}
