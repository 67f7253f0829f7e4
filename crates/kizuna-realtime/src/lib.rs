//! Kizuna's real-time fan-out layer: the piece between the service (which
//! persists an event, then publishes it) and the WebSocket connections (owned by
//! the server crate).
//!
//! # Pieces
//!
//! - [`Hub`] — the per-node registry of live connections and their timeline
//!   subscriptions. [`Hub::deliver_event`] fans one serialized frame out to every
//!   subscribed connection of *this* node without ever waiting for a client.
//! - [`Connection`] — one WebSocket task's end: a bounded queue of [`Outbound`]
//!   frames plus two out-of-band signals, *lagged* and *closed*.
//! - [`Bus`] — how published messages reach the hub of every node: in-process
//!   (one node, the embedded default) or through one Redis pub/sub channel
//!   (several nodes).
//!
//! # Guarantees and non-guarantees
//!
//! - **Serialize once.** A frame is a [`SharedFrame`] (`Arc<str>`): every
//!   recipient gets a reference-counted pointer to the same text.
//! - **Bounded memory.** Each connection's queue holds at most
//!   [`HubConfig::queue_capacity`] frames. When it is full the frame is dropped
//!   for that connection, the (connection, timeline) pair is marked *lagged* and
//!   delivery of that timeline to that connection is **suspended** until the
//!   connection subscribes again, so the client never sees a silent gap: it gets a
//!   `resync` and catches up from the store.
//! - **No duplicates within a subscription.** The hub remembers the next
//!   sequence number it expects per subscription (learned from the first event it
//!   delivers). A repeated or older `seq` is dropped. A jump (events of one
//!   timeline published out of order by different tasks or nodes, or an event
//!   lost on the bus) is passed on: the connection fills the gap from the store,
//!   where every published event is already committed.
//! - **Closing always gets through.** [`Hub::close`] uses a separate `watch`
//!   channel per connection, so it is not blocked by a full queue, and it removes
//!   the connection's subscriptions at once so no further data reaches it.
//! - **Bus losses turn into resyncs.** When the Redis subscriber reconnects it
//!   calls [`Hub::resync_all`], because messages published while it was away are
//!   gone.
//!
//! Frames are patient data: nothing in this crate logs them, and the `Debug`
//! output of [`Outbound`] and [`BusMessage`] shows only their length.

#![forbid(unsafe_code)]

mod bus;
mod connection;
mod hub;
mod sync;
mod types;

pub use bus::{Bus, BusError, BusMessage, BusStats, RedisBusConfig};
pub use connection::{Connection, ConnectionEvent, ConnectionSignals};
pub use hub::{Hub, HubConfig, HubError, HubStats};
pub use types::{
    CloseReason, ConnectionId, ConnectionInfo, Outbound, Selector, SharedFrame, UnknownCloseReason,
};
