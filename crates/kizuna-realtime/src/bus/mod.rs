//! The bus: how a published message reaches the hub of every node.
//!
//! - In-process (one node): `publish` delivers to the local hub directly.
//! - Redis (several nodes): `publish` sends one message on one pub/sub channel;
//!   every node — the publisher included — receives it in its subscriber task
//!   and delivers it to its own hub. See [`RedisBusConfig`].

mod envelope;
mod redis_bus;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kizuna_domain::{Seq, TimelineId};

pub use self::redis_bus::RedisBusConfig;
use self::redis_bus::RedisTransport;
use crate::hub::Hub;
use crate::types::{CloseReason, Selector, SharedFrame};

/// A message for every node's hub.
///
/// `Debug` shows frame lengths only: frames carry patient data.
#[derive(Clone)]
#[non_exhaustive]
pub enum BusMessage {
    /// A stored event: deliver to subscribers of `timeline`
    /// ([`Hub::deliver_event`]).
    Event {
        /// The event's timeline.
        timeline: TimelineId,
        /// Its position on the timeline.
        seq: Seq,
        /// The serialized frame, sent as is to every subscriber.
        frame: SharedFrame,
    },
    /// An unsequenced frame about `timeline` ([`Hub::deliver_notice`]).
    Notice {
        /// The timeline it concerns.
        timeline: TimelineId,
        /// The serialized frame.
        frame: SharedFrame,
    },
    /// Close the selected connections on every node ([`Hub::close`]).
    Close {
        /// Which connections.
        selector: Selector,
        /// Why; the client sees [`CloseReason::code`].
        reason: CloseReason,
    },
}

impl fmt::Debug for BusMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusMessage::Event {
                timeline,
                seq,
                frame,
            } => f
                .debug_struct("Event")
                .field("timeline", timeline)
                .field("seq", seq)
                .field("frame_len", &frame.len())
                .finish(),
            BusMessage::Notice { timeline, frame } => f
                .debug_struct("Notice")
                .field("timeline", timeline)
                .field("frame_len", &frame.len())
                .finish(),
            BusMessage::Close { selector, reason } => f
                .debug_struct("Close")
                .field("selector", selector)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The Redis URL could not be parsed. (The URL itself is not repeated: it may
    /// hold a password.)
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    /// Connecting to Redis or subscribing to the bus channel failed at start.
    #[error("could not connect to Redis")]
    Connect(#[source] redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("Redis did not answer in time")]
    Timeout,
    /// Publishing to Redis failed. The message was still delivered to this
    /// node's hub; other nodes may have missed it (their subscribers detect the
    /// resulting sequence gap on the timeline's next event and resync).
    #[error("publishing to Redis failed (delivered locally only)")]
    Publish(#[source] redis::RedisError),
    /// A message could not be encoded (should not happen).
    #[error("could not encode a bus message")]
    Encode(#[source] serde_json::Error),
    /// [`Bus::shutdown`] was called; nothing more is published.
    #[error("the bus is shut down")]
    ShutDown,
}

/// Counters of a bus (all zero for the in-process bus except `published`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStats {
    /// Messages accepted by [`Bus::publish`] (delivered or sent to Redis).
    pub published: u64,
    /// Publishes to Redis that failed (delivered locally only).
    pub publish_errors: u64,
    /// Messages received from Redis and handed to the hub.
    pub received: u64,
    /// Messages received from Redis that could not be decoded (skipped).
    pub decode_errors: u64,
    /// Times the subscriber connection was re-established (each followed by
    /// [`Hub::resync_all`]).
    pub reconnects: u64,
}

/// Shared counters behind [`BusStats`]; atomics so the subscriber task and
/// publishers update them without a lock.
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    pub(crate) published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl BusCounters {
    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The message bus of one node. Cheap to clone; all clones share the same
/// transport and background task.
#[derive(Clone)]
pub struct Bus {
    /// This node's hub, where received messages are delivered.
    hub: Hub,
    /// How messages travel.
    transport: Transport,
    /// Counters, shared with the Redis subscriber task.
    counters: Arc<BusCounters>,
}

#[derive(Clone)]
enum Transport {
    /// Publish = deliver to the local hub.
    InProcess,
    /// Through Redis; the `Arc` keeps the subscriber task alive until the last
    /// clone is dropped or [`Bus::shutdown`] is called.
    Redis(Arc<RedisTransport>),
}

/// Hands one message to a hub.
pub(crate) fn deliver_local(hub: &Hub, msg: BusMessage) {
    match msg {
        BusMessage::Event {
            timeline,
            seq,
            frame,
        } => {
            hub.deliver_event(timeline, seq, frame);
        }
        BusMessage::Notice { timeline, frame } => {
            hub.deliver_notice(timeline, frame);
        }
        BusMessage::Close { selector, reason } => {
            hub.close(&selector, reason);
        }
    }
}

impl Bus {
    /// The single-node bus: [`Bus::publish`] delivers to `hub` directly.
    pub fn in_process(hub: Hub) -> Bus {
        Bus {
            hub,
            transport: Transport::InProcess,
            counters: Arc::default(),
        }
    }

    /// A Redis bus on the default channel (`kizuna:bus:v1`), delivering to
    /// `hub`. Returns once the subscription is live, so a message published
    /// after this returns reaches this node. Needs a Tokio runtime.
    pub async fn redis(url: &str, hub: Hub) -> Result<Bus, BusError> {
        Bus::redis_with_config(RedisBusConfig::new(url), hub).await
    }

    /// Like [`Bus::redis`], with every setting explicit.
    pub async fn redis_with_config(config: RedisBusConfig, hub: Hub) -> Result<Bus, BusError> {
        let counters = Arc::new(BusCounters::default());
        let transport = RedisTransport::start(config, hub.clone(), Arc::clone(&counters)).await?;
        Ok(Bus {
            hub,
            transport: Transport::Redis(Arc::new(transport)),
            counters,
        })
    }

    /// This node's hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Sends `msg` to the hub of every node (this one included).
    ///
    /// In-process, it is delivered before this returns. With Redis, it is
    /// delivered by each node's subscriber task; if publishing fails it is
    /// delivered to this node's hub directly and [`BusError::Publish`] is
    /// returned.
    pub async fn publish(&self, msg: BusMessage) -> Result<(), BusError> {
        match &self.transport {
            Transport::InProcess => {
                deliver_local(&self.hub, msg);
                BusCounters::bump(&self.counters.published);
                Ok(())
            }
            Transport::Redis(redis) => redis.publish(&self.hub, msg).await,
        }
    }

    /// Stops the Redis subscriber task and waits for it to end; later publishes
    /// fail with [`BusError::ShutDown`]. Idempotent; a no-op in-process. (Dropping
    /// every clone of the bus also ends the task, without waiting.)
    pub async fn shutdown(&self) {
        if let Transport::Redis(redis) = &self.transport {
            redis.shutdown().await;
        }
    }

    /// Current counters.
    pub fn stats(&self) -> BusStats {
        let c = &self.counters;
        BusStats {
            published: c.published.load(Ordering::Relaxed),
            publish_errors: c.publish_errors.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            decode_errors: c.decode_errors.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.transport {
            Transport::InProcess => "in_process",
            Transport::Redis(_) => "redis",
        };
        f.debug_struct("Bus")
            .field("transport", &kind)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
