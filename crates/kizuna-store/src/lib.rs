//! Kizuna's store: the diesel schema, rows and queries, for SQLite (the
//! embedded default) and PostgreSQL from one code base, with both migration
//! sets embedded.
//!
//! Functions are synchronous and take a `&mut DbConn`; the service layer runs
//! them on blocking threads. Errors and `Debug` output carry ids, never
//! content.
//!
//! Lookups by a primary or unique key use `get_result`, not `first`: `first`
//! binds `LIMIT 1` as a parameter, and SQLite re-prepares a statement whose
//! bound `LIMIT` it had folded in, on every run (measured at 12–21 % of the
//! server's CPU; docs/benchmarks.md).

pub mod audit;
pub mod certificates;
pub mod communities;
pub mod db;
pub mod directory;
pub mod error;
pub mod events;
pub mod invitations;
pub mod models;
pub mod schema;
pub mod sessions;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use db::{Backend, Conn, DbConn, SqliteSync, Store, StoreOptions, now_ms, transaction};
pub use error::StoreError;
