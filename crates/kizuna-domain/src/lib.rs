//! Kizuna's domain: identifiers, vocabularies, the one access-control decision
//! function, and the WebSocket protocol's message types.
//!
//! This crate is pure: no IO, no async runtime, no database, no network. CI checks
//! that it depends on none of tokio, diesel, actix, redis or rustls.

pub mod access;
pub mod ids;
pub mod kinds;
pub mod policy;
pub mod protocol;
pub mod text;

pub use ids::*;
pub use kinds::*;
pub use policy::{FacilityPolicy, NotificationHours};
