//! The store's error type. Variants carry ids and kinds of failure, never the
//! content of rows (which may be patient information).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write (e.g. a login that is taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database could not be reached or the pool timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Bad configuration (URL, paths).
    #[error("configuration: {0}")]
    Config(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value does not parse (a bug or a hand-edited database).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(DieselError),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict("unique")
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                StoreError::Unavailable("connection closed".into())
            }
            other => StoreError::Database(other),
        }
    }
}

/// Whether an error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}
