//! One WebSocket task's end of the hub: the bounded queue it drains and the two
//! out-of-band signals (lagged, closed) that never wait behind that queue.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};

use kizuna_domain::TimelineId;
use tokio::sync::{Notify, mpsc, watch};

use crate::hub::HubInner;
use crate::sync::lock;
use crate::types::{CloseReason, ConnectionId, Outbound};

/// State shared between the hub (which marks timelines lagged) and the
/// connection (which takes them).
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    /// Timelines marked lagged and not yet taken by the connection. A `Mutex`
    /// because any delivering thread writes it while the connection task drains
    /// it; it is held for one insert/remove/drain, never across an `await`.
    lagged: Mutex<BTreeSet<TimelineId>>,
    /// Wakes every task waiting in [`ConnectionSignals::lagged`]. Waiters
    /// register (`enable`) before checking the set, so a mark made between the
    /// check and the wait is not lost.
    lag_notify: Notify,
}

impl ConnShared {
    /// Records that `timeline` lagged; wakes the connection if this is news.
    pub(crate) fn mark_lagged(&self, timeline: TimelineId) {
        let newly = lock(&self.lagged).insert(timeline);
        if newly {
            self.lag_notify.notify_waiters();
        }
    }

    /// Forgets a pending lag mark (the connection subscribed again or left the
    /// timeline, so the mark has been dealt with).
    pub(crate) fn clear_lagged(&self, timeline: TimelineId) {
        lock(&self.lagged).remove(&timeline);
    }

    /// Forgets every pending lag mark (the connection was closed).
    pub(crate) fn clear_all_lagged(&self) {
        lock(&self.lagged).clear();
    }
}

/// What [`Connection::next_event`] produced.
#[derive(Debug)]
pub enum ConnectionEvent {
    /// A frame to send to the client.
    Outbound(Outbound),
    /// These timelines lagged: delivery of each is suspended until
    /// [`Hub::subscribe`](crate::Hub::subscribe) is called for it again. Tell
    /// the client to resync them (it re-subscribes from its last `seq`).
    Lagged(Vec<TimelineId>),
    /// The hub asked this connection to close: send the final frame and close.
    Closed(CloseReason),
}

/// The out-of-band half of a [`Connection`]: cheap to clone, and usable in the
/// same `tokio::select!` as [`Connection::recv`] (which needs `&mut`).
#[derive(Clone, Debug)]
pub struct ConnectionSignals {
    /// Lag marks shared with the hub.
    shared: Arc<ConnShared>,
    /// Close requests from the hub. A `watch` rather than the queue so a close
    /// gets through even when the queue is full; `None` until a close is asked.
    close_rx: watch::Receiver<Option<CloseReason>>,
}

impl ConnectionSignals {
    /// Resolves once one or more of this connection's timelines are marked
    /// lagged (and not yet taken). Cancel-safe: the marks stay until
    /// [`ConnectionSignals::take_lagged`].
    pub async fn lagged(&self) {
        loop {
            let notified = self.shared.lag_notify.notified();
            tokio::pin!(notified);
            // Register as a waiter before looking, so a mark made after the
            // look still wakes this future.
            notified.as_mut().enable();
            if !lock(&self.shared.lagged).is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes (and clears) the timelines marked lagged, in ascending order.
    pub fn take_lagged(&self) -> Vec<TimelineId> {
        std::mem::take(&mut *lock(&self.shared.lagged))
            .into_iter()
            .collect()
    }

    /// Resolves when the hub asked this connection to close. If the hub itself
    /// is gone (the node is shutting down) or the connection was disconnected
    /// by [`Hub::disconnect`](crate::Hub::disconnect), resolves with
    /// [`CloseReason::ServerShutdown`]. Cancel-safe.
    pub async fn closed(&self) -> CloseReason {
        // A private clone, so this can take `&self` and several callers can
        // wait at once.
        let mut rx = self.close_rx.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => (*reason).unwrap_or(CloseReason::ServerShutdown),
            Err(_sender_gone) => self.close_reason().unwrap_or(CloseReason::ServerShutdown),
        }
    }

    /// The close reason, if the hub has already asked this connection to close.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.close_rx.borrow()
    }
}

/// One live connection, owned by one WebSocket task.
///
/// Dropping it unregisters it from the hub (like [`Hub::disconnect`]).
///
/// [`Connection::recv`] needs `&mut self`, so for one `tokio::select!` that also
/// waits on the signals, either use [`Connection::next_event`] (which combines
/// them, close first, then lag, then frames) or take a [`ConnectionSignals`]
/// with [`Connection::signals`]:
///
/// ```no_run
/// # async fn example(hub: kizuna_realtime::Hub, info: kizuna_realtime::ConnectionInfo) {
/// use std::time::Duration;
/// let mut conn = hub.connect(info);
/// let signals = conn.signals();
/// let mut heartbeat = tokio::time::interval(Duration::from_secs(20));
/// # let mut client_frames = futures_util::stream::pending::<String>();
/// # use futures_util::StreamExt;
/// loop {
///     tokio::select! {
///         biased;
///         reason = signals.closed() => { /* send `reason.code()`, close */ break; }
///         () = signals.lagged() => {
///             for timeline in signals.take_lagged() { /* send `resync` for it */ }
///         }
///         out = conn.recv() => match out {
///             Some(out) => { /* send out.frame() */ }
///             None => break,
///         },
///         frame = client_frames.next() => { /* handle a command */ }
///         _ = heartbeat.tick() => { /* ping */ }
///     }
/// }
/// # }
/// ```
///
/// [`Hub::disconnect`]: crate::Hub::disconnect
pub struct Connection {
    /// This connection's id in its hub.
    id: ConnectionId,
    /// Receiving end of the bounded outbound queue; the hub holds the senders.
    rx: mpsc::Receiver<Outbound>,
    /// Lag and close signals.
    signals: ConnectionSignals,
    /// The hub, to unregister on drop. `Weak` so live connections do not keep a
    /// dropped hub alive (they then see [`CloseReason::ServerShutdown`]).
    hub: Weak<HubInner>,
}

impl Connection {
    pub(crate) fn new(
        id: ConnectionId,
        rx: mpsc::Receiver<Outbound>,
        shared: Arc<ConnShared>,
        close_rx: watch::Receiver<Option<CloseReason>>,
        hub: Weak<HubInner>,
    ) -> Connection {
        Connection {
            id,
            rx,
            signals: ConnectionSignals { shared, close_rx },
            hub,
        }
    }

    /// This connection's id, for [`Hub::subscribe`](crate::Hub::subscribe) and
    /// friends.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The next queued frame. `None` once the hub asked this connection to close
    /// (see [`Connection::closed`]), or when it was disconnected or the hub is
    /// gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outbound> {
        if self.signals.close_reason().is_some() {
            return None;
        }
        self.rx.recv().await
    }

    /// Frames currently waiting in the queue (never more than the hub's
    /// `queue_capacity`).
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// See [`ConnectionSignals::lagged`].
    pub async fn lagged(&self) {
        self.signals.lagged().await;
    }

    /// See [`ConnectionSignals::take_lagged`].
    pub fn take_lagged(&self) -> Vec<TimelineId> {
        self.signals.take_lagged()
    }

    /// See [`ConnectionSignals::closed`].
    pub async fn closed(&self) -> CloseReason {
        self.signals.closed().await
    }

    /// A handle on the lag and close signals that can be awaited while
    /// [`Connection::recv`] borrows the connection mutably.
    pub fn signals(&self) -> ConnectionSignals {
        self.signals.clone()
    }

    /// Waits for whichever comes first, in priority order: a close request, lag
    /// marks, a queued frame. Cancel-safe, so it can be one branch of the
    /// connection loop's `select!`. After [`ConnectionEvent::Closed`] keeps
    /// returning `Closed`.
    pub async fn next_event(&mut self) -> ConnectionEvent {
        loop {
            tokio::select! {
                biased;
                reason = self.signals.closed() => return ConnectionEvent::Closed(reason),
                () = self.signals.lagged() => {
                    let timelines = self.signals.take_lagged();
                    // Empty only if a clone of the signals took them first.
                    if !timelines.is_empty() {
                        return ConnectionEvent::Lagged(timelines);
                    }
                }
                out = self.rx.recv() => {
                    return match out {
                        Some(out) => ConnectionEvent::Outbound(out),
                        None => ConnectionEvent::Closed(
                            self.signals.close_reason().unwrap_or(CloseReason::ServerShutdown),
                        ),
                    };
                }
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.disconnect(self.id);
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("queued", &self.rx.len())
            .field("close_reason", &self.signals.close_reason())
            .finish_non_exhaustive()
    }
}
