//! One (connection, timeline) subscription and how a frame is offered to it:
//! the sequence checks, the non-blocking `try_send`, and suspension on lag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kizuna_domain::{Seq, TimelineId};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::connection::ConnShared;
use crate::sync::lock;
use crate::types::{ConnectionId, Outbound};

/// The atomics behind [`crate::HubStats`]: updated by deliveries without any
/// lock; the gauges change only under the registry's write lock, so they agree
/// with the maps.
#[derive(Default)]
pub(super) struct Counters {
    /// Gauge: registered connections.
    pub(super) connections: AtomicUsize,
    /// Gauge: registered subscriptions.
    pub(super) subscriptions: AtomicUsize,
    /// Counter: frames queued.
    pub(super) delivered: AtomicU64,
    /// Counter: subscriptions suspended as lagged.
    pub(super) lagged: AtomicU64,
}

/// One (connection, timeline) subscription.
pub(super) struct Subscription {
    /// The subscribed timeline.
    timeline: TimelineId,
    /// The subscriber, for logs.
    conn_id: ConnectionId,
    /// A clone of the connection's queue sender.
    tx: mpsc::Sender<Outbound>,
    /// Where lag marks go.
    conn: Arc<ConnShared>,
    /// Delivery state. A `Mutex` so that the sequence check, the `try_send` and
    /// a possible suspension are one step: two deliveries of the same timeline
    /// running at once cannot interleave inside this connection's queue. Held
    /// for a non-blocking `try_send` only; per subscription, so uncontended in
    /// practice.
    state: Mutex<SubState>,
}

#[derive(Default)]
struct SubState {
    /// Lagged: nothing more is delivered until the connection subscribes again.
    suspended: bool,
    /// The `seq` the next event must carry; learned from the first event
    /// delivered after subscribing.
    next_seq: Option<Seq>,
}

/// The fan-out index: timeline → its subscriptions.
pub(super) type TimelineIndex = HashMap<TimelineId, HashMap<ConnectionId, Arc<Subscription>>>;

/// Removes `id`'s entries for `timelines` from the fan-out index (dropping
/// timelines left without subscribers); returns how many were removed.
pub(super) fn unindex<'a>(
    index: &mut TimelineIndex,
    id: ConnectionId,
    timelines: impl Iterator<Item = &'a TimelineId>,
) -> usize {
    let mut removed = 0;
    for timeline in timelines {
        if let Some(subscribers) = index.get_mut(timeline) {
            if subscribers.remove(&id).is_some() {
                removed += 1;
            }
            if subscribers.is_empty() {
                index.remove(timeline);
            }
        }
    }
    removed
}

impl Subscription {
    /// A fresh, active subscription whose expected `seq` is not known yet.
    pub(super) fn new(
        timeline: TimelineId,
        conn_id: ConnectionId,
        tx: mpsc::Sender<Outbound>,
        conn: Arc<ConnShared>,
    ) -> Subscription {
        Subscription {
            timeline,
            conn_id,
            tx,
            conn,
            state: Mutex::new(SubState::default()),
        }
    }

    /// Offers one frame to this subscription. `seq` is `Some` for events (gap
    /// and duplicate checks) and `None` for notices. Returns whether it was
    /// queued.
    pub(super) fn offer(
        &self,
        seq: Option<Seq>,
        item: impl FnOnce() -> Outbound,
        counters: &Counters,
    ) -> bool {
        let mut state = lock(&self.state);
        if state.suspended {
            return false;
        }
        // A repeated or older `seq` was already delivered (a duplicate from the
        // bus, a local fallback delivery that also came back through Redis, or
        // an event that arrived after a later one and that the connection
        // already filled in from the store). A jump (seq > expected) is passed
        // on: events of one timeline are published by whichever task or node
        // committed them, so they may arrive out of order, and the connection
        // fills the gap from the store, where every published event is
        // already committed.
        if let (Some(seq), Some(expected)) = (seq, state.next_seq)
            && seq < expected
        {
            return false;
        }
        match self.tx.try_send(item()) {
            Ok(()) => {
                if let Some(seq) = seq {
                    state.next_seq = Some(seq.saturating_add(1));
                }
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_dropped)) => {
                self.suspend(&mut state, counters, "queue_full");
                false
            }
            // The connection's receiver is gone; its `Drop` is unregistering it.
            Err(TrySendError::Closed(_dropped)) => false,
        }
    }

    /// Suspends delivery and marks the timeline lagged for the connection.
    fn suspend(&self, state: &mut SubState, counters: &Counters, cause: &'static str) {
        if state.suspended {
            return;
        }
        state.suspended = true;
        counters.lagged.fetch_add(1, Ordering::Relaxed);
        self.conn.mark_lagged(self.timeline);
        tracing::debug!(conn = %self.conn_id, timeline = %self.timeline, cause, "subscription lagged, suspended");
    }

    /// Marks lagged and suspends regardless of the queue (the bus lost
    /// messages). Returns whether it was newly suspended.
    pub(super) fn force_lag(&self, counters: &Counters) -> bool {
        let mut state = lock(&self.state);
        let newly = !state.suspended;
        self.suspend(&mut state, counters, "resync_all");
        newly
    }
}
