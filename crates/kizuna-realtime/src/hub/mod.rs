//! The per-node registry of connections and subscriptions, and local fan-out.
//!
//! Lock order (never taken the other way round, never held across `await`):
//! `HubInner::state` → `Subscription::state` → `ConnShared::lagged`.

mod subscription;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kizuna_domain::{Seq, TimelineId};
use tokio::sync::{mpsc, watch};

use self::subscription::{Counters, Subscription, TimelineIndex, unindex};
use crate::connection::{ConnShared, Connection};
use crate::types::{
    CloseReason, ConnectionId, ConnectionInfo, Outbound, Selector, SharedFrame, normalize_serial,
};

/// Hub settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// How many frames may wait in one connection's outbound queue. A connection
    /// whose queue is full loses further frames of that timeline and is told to
    /// resync. `0` is treated as `1`.
    pub queue_capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_capacity: 256,
        }
    }
}

/// Counters and gauges of a hub, read from atomics (each value is exact, the
/// set is not one atomic snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Registered connections (including ones asked to close and not yet gone).
    pub connections: usize,
    /// Registered (connection, timeline) subscriptions, suspended ones included.
    pub subscriptions: usize,
    /// Frames queued to connections since the hub started.
    pub delivered: u64,
    /// Times a subscription was marked lagged and suspended (full queue, or
    /// [`Hub::resync_all`]).
    pub lagged: u64,
}

/// Errors of [`Hub`] operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// No connection with this id is registered (it disconnected, or it belongs
    /// to another hub).
    #[error("unknown connection {0}")]
    UnknownConnection(ConnectionId),
    /// The connection was asked to close; it takes no new subscriptions.
    #[error("connection {0} is closing")]
    ConnectionClosed(ConnectionId),
}

/// The fan-out hub of one node. Cheap to clone (an `Arc` inside); `Send + Sync`.
///
/// Every method is synchronous and non-blocking: locks are held only for map
/// updates and `try_send`s, never across an `await`, and a slow client is never
/// waited for.
#[derive(Clone)]
pub struct Hub {
    /// Shared state; every clone and every [`Connection`] (weakly) points here.
    inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    /// Capacity of each connection's queue (at least 1).
    queue_capacity: usize,
    /// Next connection id. Atomic so numbering needs no lock of its own.
    next_id: AtomicU64,
    /// The registry. A `RwLock` because fan-out, the hot path, only reads the
    /// timeline index (many deliveries may run at once), while connect,
    /// subscribe, close and disconnect write. Held only inside these synchronous
    /// methods, never across an `await`.
    state: RwLock<HubState>,
    /// Lock-free counters for [`Hub::stats`]; gauges are updated while the
    /// write lock is held, so they agree with the maps.
    counters: Counters,
}

#[derive(Default)]
struct HubState {
    /// Every registered connection.
    connections: HashMap<ConnectionId, Registration>,
    /// Fan-out index: timeline → its subscriptions. Holds the same
    /// `Arc<Subscription>`s as the registrations; empty inner maps are removed.
    timelines: TimelineIndex,
}

struct Registration {
    /// Who is connected (serial normalised), for [`Selector`] matching.
    info: ConnectionInfo,
    /// Sending side of the connection's queue, cloned into each subscription.
    /// `None` once the connection was asked to close: it gets no more frames.
    tx: Option<mpsc::Sender<Outbound>>,
    /// Close requests; see [`crate::ConnectionSignals::closed`].
    close_tx: watch::Sender<Option<CloseReason>>,
    /// Lag marks shared with the [`Connection`].
    shared: Arc<ConnShared>,
    /// This connection's subscriptions (the same `Arc`s as in the index).
    subscriptions: HashMap<TimelineId, Arc<Subscription>>,
}

impl HubInner {
    /// Read access to the registry (poison recovery as in [`crate::sync::lock`]).
    fn read(&self) -> RwLockReadGuard<'_, HubState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write access to the registry (poison recovery as in [`crate::sync::lock`]).
    fn write(&self) -> RwLockWriteGuard<'_, HubState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes a connection and its subscriptions. Returns whether it was there.
    pub(crate) fn disconnect(&self, id: ConnectionId) -> bool {
        let mut state = self.write();
        let Some(registration) = state.connections.remove(&id) else {
            return false;
        };
        let removed = unindex(&mut state.timelines, id, registration.subscriptions.keys());
        self.counters
            .subscriptions
            .fetch_sub(removed, Ordering::Relaxed);
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(conn = %id, "connection unregistered");
        true
    }
}

impl Hub {
    /// A hub whose connections each have a queue of `config.queue_capacity`
    /// frames (`0` is raised to `1`).
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                queue_capacity: config.queue_capacity.max(1),
                next_id: AtomicU64::new(1),
                state: RwLock::new(HubState::default()),
                counters: Counters::default(),
            }),
        }
    }

    /// Registers a connection. It receives nothing until it subscribes.
    pub fn connect(&self, info: ConnectionInfo) -> Connection {
        let id = ConnectionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        // Bounded: this is what keeps a slow client from growing our memory.
        let (tx, rx) = mpsc::channel(self.inner.queue_capacity);
        let (close_tx, close_rx) = watch::channel(None);
        let shared = Arc::new(ConnShared::default());
        let info = ConnectionInfo {
            cert_serial: info
                .cert_serial
                .map(|s| normalize_serial(&s))
                .filter(|s| !s.is_empty()),
            ..info
        };
        let registration = Registration {
            info,
            tx: Some(tx),
            close_tx,
            shared: Arc::clone(&shared),
            subscriptions: HashMap::new(),
        };
        {
            let mut state = self.inner.write();
            state.connections.insert(id, registration);
            self.inner
                .counters
                .connections
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(conn = %id, "connection registered");
        Connection::new(id, rx, shared, close_rx, Arc::downgrade(&self.inner))
    }

    /// Subscribes a connection to a timeline, or re-activates a lagged
    /// (suspended) subscription. Either way the subscription starts afresh: its
    /// expected `seq` is learned again from the next event, and a pending lag
    /// mark for this timeline is cleared. Call it *before* reading the store for
    /// catch-up, and de-duplicate by `seq`.
    pub fn subscribe(&self, conn: ConnectionId, timeline: TimelineId) -> Result<(), HubError> {
        let mut state = self.inner.write();
        let HubState {
            connections,
            timelines,
        } = &mut *state;
        let registration = connections
            .get_mut(&conn)
            .ok_or(HubError::UnknownConnection(conn))?;
        let tx = registration
            .tx
            .clone()
            .ok_or(HubError::ConnectionClosed(conn))?;
        let subscription = Arc::new(Subscription::new(
            timeline,
            conn,
            tx,
            Arc::clone(&registration.shared),
        ));
        let previous = registration
            .subscriptions
            .insert(timeline, Arc::clone(&subscription));
        timelines
            .entry(timeline)
            .or_default()
            .insert(conn, subscription);
        registration.shared.clear_lagged(timeline);
        if previous.is_none() {
            self.inner
                .counters
                .subscriptions
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Ends a subscription (and forgets a pending lag mark for it). Returns
    /// whether it existed.
    pub fn unsubscribe(&self, conn: ConnectionId, timeline: TimelineId) -> bool {
        let mut state = self.inner.write();
        let Some(registration) = state.connections.get_mut(&conn) else {
            return false;
        };
        if registration.subscriptions.remove(&timeline).is_none() {
            return false;
        }
        registration.shared.clear_lagged(timeline);
        let removed = unindex(&mut state.timelines, conn, std::iter::once(&timeline));
        self.inner
            .counters
            .subscriptions
            .fetch_sub(removed, Ordering::Relaxed);
        true
    }

    /// Unregisters a connection and all its subscriptions; also done when its
    /// [`Connection`] is dropped. Its `recv` then returns `None` and `closed`
    /// resolves with [`CloseReason::ServerShutdown`]. Returns whether it was
    /// registered.
    pub fn disconnect(&self, conn: ConnectionId) -> bool {
        self.inner.disconnect(conn)
    }

    /// Queues an event for every connection of this node subscribed to
    /// `timeline` (see the crate docs for the lag rules). Never waits. Returns
    /// how many connections it was queued for.
    pub fn deliver_event(&self, timeline: TimelineId, seq: Seq, frame: SharedFrame) -> usize {
        self.fan_out(timeline, Some(seq), &frame, |frame| Outbound::Event {
            timeline,
            seq,
            frame,
        })
    }

    /// Queues an unsequenced notice for every connection of this node subscribed
    /// to `timeline`. A full queue suspends the subscription exactly as for
    /// events. Never waits. Returns how many connections it was queued for.
    pub fn deliver_notice(&self, timeline: TimelineId, frame: SharedFrame) -> usize {
        self.fan_out(timeline, None, &frame, |frame| Outbound::Notice {
            timeline,
            frame,
        })
    }

    /// Offers one frame to every subscription of `timeline`; `build` wraps a
    /// clone of the shared frame for each recipient (a pointer copy).
    fn fan_out(
        &self,
        timeline: TimelineId,
        seq: Option<Seq>,
        frame: &SharedFrame,
        build: impl Fn(SharedFrame) -> Outbound,
    ) -> usize {
        let state = self.inner.read();
        let Some(subscribers) = state.timelines.get(&timeline) else {
            return 0;
        };
        subscribers
            .values()
            .filter(|sub| sub.offer(seq, || build(Arc::clone(frame)), &self.inner.counters))
            .count()
    }

    /// Asks every live connection matching `selector` to close, even if its
    /// queue is full (the request travels on a separate channel). Their
    /// subscriptions end at once, so no further frame reaches them, and
    /// frames still queued are not handed out by [`Connection::recv`]. A
    /// connection already asked to close keeps its first reason. Returns how
    /// many connections were newly asked.
    pub fn close(&self, selector: &Selector, reason: CloseReason) -> usize {
        let selector = selector.normalized();
        let mut state = self.inner.write();
        let HubState {
            connections,
            timelines,
        } = &mut *state;
        let mut closed = 0;
        let mut removed = 0;
        for (id, registration) in connections.iter_mut() {
            if registration.tx.is_none() || !selector.matches(&registration.info) {
                continue;
            }
            registration.close_tx.send_if_modified(|current| {
                if current.is_none() {
                    *current = Some(reason);
                    true
                } else {
                    false
                }
            });
            registration.tx = None;
            removed += unindex(timelines, *id, registration.subscriptions.keys());
            registration.subscriptions.clear();
            registration.shared.clear_all_lagged();
            closed += 1;
            tracing::debug!(conn = %id, reason = reason.code(), "connection asked to close");
        }
        self.inner
            .counters
            .subscriptions
            .fetch_sub(removed, Ordering::Relaxed);
        closed
    }

    /// Marks every subscription of every connection lagged and suspends it, as
    /// if each queue had overflowed. Used when the inter-node bus may have lost
    /// messages. Returns how many subscriptions were newly suspended.
    pub fn resync_all(&self) -> usize {
        let state = self.inner.read();
        let suspended = state
            .timelines
            .values()
            .flat_map(HashMap::values)
            .filter(|subscription| subscription.force_lag(&self.inner.counters))
            .count();
        tracing::info!(suspended, "all subscriptions marked for resync");
        suspended
    }

    /// Current counters.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        HubStats {
            connections: c.connections.load(Ordering::Relaxed),
            subscriptions: c.subscriptions.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
        }
    }

    /// The configured (effective) queue capacity per connection.
    pub fn queue_capacity(&self) -> usize {
        self.inner.queue_capacity
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("stats", &self.stats())
            .finish()
    }
}
