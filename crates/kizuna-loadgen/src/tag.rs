//! What a load-generator post carries: `lg:<sender>:<n>:<t_ns>` followed by
//! optional padding. The server treats the body as opaque text; receivers
//! parse it back to learn who sent it, which post of that sender it is, and
//! when it was sent (nanoseconds since [`epoch`], shared by every task of
//! this process), so a delivery's latency needs no clock on the server.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all `t_ns` values count from (fixed on first use).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `t_ns` nanoseconds after [`epoch`].
pub fn instant_of(t_ns: u64) -> Instant {
    epoch() + std::time::Duration::from_nanos(t_ns)
}

/// One post's identity and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The sender's index in this run.
    pub sender: u32,
    /// The sender's post number, from 0.
    pub n: u64,
    /// Send instant, nanoseconds since [`epoch`].
    pub t_ns: u64,
}

impl Tag {
    /// `sender` and `n` packed into one number, to compare what a receiver
    /// got at a `seq` with what the sender's `ok` said was stored there.
    pub fn content_id(&self) -> u64 {
        content_id(self.sender, self.n)
    }

    /// The post body: the tag, then a space and `x`s up to `pad_to` bytes.
    pub fn body(&self, pad_to: usize) -> String {
        let mut s = format!("lg:{}:{}:{}", self.sender, self.n, self.t_ns);
        if s.len() + 1 < pad_to {
            s.push(' ');
            s.extend(std::iter::repeat_n('x', pad_to - s.len()));
        }
        s
    }

    /// Reads a tag back from a body; `None` for bodies not made by [`Tag::body`].
    pub fn parse(body: &str) -> Option<Tag> {
        let head = body.split(' ').next()?;
        let mut parts = head.strip_prefix("lg:")?.split(':');
        let tag = Tag {
            sender: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            t_ns: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(tag)
    }
}

/// See [`Tag::content_id`].
pub fn content_id(sender: u32, n: u64) -> u64 {
    (u64::from(sender) << 40) | (n & ((1 << 40) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_parses_back_to_its_tag_with_or_without_padding() {
        let tag = Tag {
            sender: 7,
            n: 42,
            t_ns: 123_456_789,
        };
        for pad in [0, 10, 64, 500] {
            let body = tag.body(pad);
            assert!(body.len() >= pad.min(body.len()));
            if pad > 30 {
                assert_eq!(body.len(), pad);
            }
            assert_eq!(Tag::parse(&body), Some(tag));
        }
    }

    #[test]
    fn foreign_bodies_are_not_tags() {
        for body in ["hello", "lg:1:2", "lg:1:2:3:4", "lg:a:2:3", "xlg:1:2:3"] {
            assert_eq!(Tag::parse(body), None, "{body}");
        }
    }

    #[test]
    fn content_ids_differ_by_sender_and_number() {
        assert_ne!(content_id(1, 0), content_id(0, 1));
        assert_ne!(content_id(2, 5), content_id(2, 6));
    }
}
