//! The wire form of a [`BusMessage`] on Redis: a small JSON envelope with the
//! frame embedded as a string, e.g. `{"e":{"t":7,"s":42,"f":"{\"type\":…}"}}`.
//! Unknown fields are ignored; an unknown kind or close reason is an error.

use std::sync::Arc;

use kizuna_domain::{Seq, TimelineId};
use serde::{Deserialize, Serialize};

use super::BusMessage;
use crate::types::{CloseReason, Selector};

/// Encoding side; borrows the message so the frame is not copied twice.
#[derive(Serialize)]
enum OutEnvelope<'a> {
    #[serde(rename = "e")]
    Event { t: TimelineId, s: Seq, f: &'a str },
    #[serde(rename = "n")]
    Notice { t: TimelineId, f: &'a str },
    #[serde(rename = "c")]
    Close { sel: &'a Selector, r: CloseReason },
}

/// Decoding side.
#[derive(Deserialize)]
enum InEnvelope {
    #[serde(rename = "e")]
    Event { t: TimelineId, s: Seq, f: String },
    #[serde(rename = "n")]
    Notice { t: TimelineId, f: String },
    #[serde(rename = "c")]
    Close { sel: Selector, r: CloseReason },
}

/// Serializes a message for the bus channel.
pub(crate) fn encode(msg: &BusMessage) -> Result<String, serde_json::Error> {
    let envelope = match msg {
        BusMessage::Event {
            timeline,
            seq,
            frame,
        } => OutEnvelope::Event {
            t: *timeline,
            s: *seq,
            f: frame,
        },
        BusMessage::Notice { timeline, frame } => OutEnvelope::Notice {
            t: *timeline,
            f: frame,
        },
        BusMessage::Close { selector, reason } => OutEnvelope::Close {
            sel: selector,
            r: *reason,
        },
    };
    serde_json::to_string(&envelope)
}

/// Parses a message received from the bus channel.
pub(crate) fn decode(bytes: &[u8]) -> Result<BusMessage, serde_json::Error> {
    Ok(match serde_json::from_slice::<InEnvelope>(bytes)? {
        InEnvelope::Event { t, s, f } => BusMessage::Event {
            timeline: t,
            seq: s,
            frame: Arc::from(f),
        },
        InEnvelope::Notice { t, f } => BusMessage::Notice {
            timeline: t,
            frame: Arc::from(f),
        },
        InEnvelope::Close { sel, r } => BusMessage::Close {
            selector: sel,
            reason: r,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kizuna_domain::{SessionId, UserId};

    fn round_trip(msg: BusMessage) -> BusMessage {
        decode(encode(&msg).unwrap().as_bytes()).unwrap()
    }

    #[test]
    fn every_message_kind_survives_encoding() {
        let frame: Arc<str> = Arc::from("{\"type\":\"event\",\"body\":\"改行\\n\\\"quoted\\\"\"}");
        match round_trip(BusMessage::Event {
            timeline: TimelineId(7),
            seq: 42,
            frame: frame.clone(),
        }) {
            BusMessage::Event {
                timeline,
                seq,
                frame: got,
            } => {
                assert_eq!((timeline, seq), (TimelineId(7), 42));
                assert_eq!(got, frame);
            }
            other => panic!("wrong kind: {other:?}"),
        }
        match round_trip(BusMessage::Notice {
            timeline: TimelineId(8),
            frame: frame.clone(),
        }) {
            BusMessage::Notice {
                timeline,
                frame: got,
            } => {
                assert_eq!(timeline, TimelineId(8));
                assert_eq!(got, frame);
            }
            other => panic!("wrong kind: {other:?}"),
        }
        let selectors = [
            Selector::User(UserId(1)),
            Selector::Session(SessionId(2)),
            Selector::CertSerial("0a1b".into()),
            Selector::All,
        ];
        for selector in selectors {
            for reason in CloseReason::ALL {
                match round_trip(BusMessage::Close {
                    selector: selector.clone(),
                    reason,
                }) {
                    BusMessage::Close {
                        selector: s,
                        reason: r,
                    } => assert_eq!((s, r), (selector.clone(), reason)),
                    other => panic!("wrong kind: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn the_envelope_is_compact() {
        let text = encode(&BusMessage::Event {
            timeline: TimelineId(7),
            seq: 42,
            frame: Arc::from("{}"),
        })
        .unwrap();
        assert_eq!(text, r#"{"e":{"t":7,"s":42,"f":"{}"}}"#);
    }

    #[test]
    fn garbage_and_unknown_reasons_are_rejected() {
        assert!(decode(b"not json").is_err());
        assert!(decode(br#"{"x":{}}"#).is_err());
        assert!(decode(br#"{"c":{"sel":"all","r":"because"}}"#).is_err());
        assert!(decode(br#"{"c":{"sel":"all","r":"session_ended","extra":1}}"#).is_ok());
    }
}
