//! Connections and the pool: one code base for SQLite (embedded default) and
//! PostgreSQL, chosen from the database URL's scheme, never by trial.

use crate::error::StoreError;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// One database connection of either backend. Queries written once against
/// this type run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL (several nodes, production).
    Pg(PgConnection),
    /// SQLite (single node, embedded default).
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for DbConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbConn::Pg(_) => f.write_str("DbConn::Pg"),
            DbConn::Sqlite(_) => f.write_str("DbConn::Sqlite"),
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://PATH`, `sqlite:PATH` or a plain file path.
    Sqlite,
}

/// How SQLite commits: `Full` survives power loss, `Normal` survives a crashed
/// process (kill -9) but may lose the last commits on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSync {
    /// `PRAGMA synchronous = FULL` (default).
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL`.
    Normal,
}

impl Backend {
    /// Reads the backend from a URL's scheme, and returns the address the driver
    /// expects (for SQLite, the file path).
    pub fn parse(url: &str) -> Result<(Backend, String), StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok((Backend::Postgres, url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") || path.contains('=') {
            return Err(StoreError::Config(
                "database url must start with postgres://, postgresql:// or sqlite:// (a libpq key=value string is not accepted)".into(),
            ));
        }
        Ok((Backend::Sqlite, path.to_owned()))
    }
}

/// Opens connections of one backend for the pool.
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    address: String,
    sqlite_sync: SqliteSync,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.address)
                .map(DbConn::Pg)
                .map_err(r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.address)
                    .map_err(r2d2::Error::ConnectionError)?;
                let sync = match self.sqlite_sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal => "NORMAL",
                };
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync};"
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// A pooled connection.
pub type Conn = PooledConnection<Manager>;

/// Options for opening the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path`, a path, or `postgres://…`.
    pub url: String,
    /// Most connections in the pool.
    pub pool_size: u32,
    /// SQLite durability.
    pub sqlite_sync: SqliteSync,
}

/// The store: a connection pool plus the backend it talks to. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Opens the pool and applies pending migrations.
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        let (backend, address) = Backend::parse(&options.url)?;
        if backend == Backend::Sqlite {
            if let Some(dir) = std::path::Path::new(&address).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("cannot create database directory: {e}"))
                })?;
            }
            // WAL is a property of the database file: set it once, on one
            // connection, before the pool opens several.
            let mut first = SqliteConnection::establish(&address)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            first.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")?;
        }
        let manager = Manager {
            backend,
            address,
            sqlite_sync: options.sqlite_sync,
        };
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = Store { pool, backend };
        store.migrate()?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection from the pool (blocking; call from a blocking context).
    pub fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            DbConn::Pg(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
            DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        }
        .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(applied)
    }

    /// Reverts every migration, newest first (used by the up→down→up test).
    pub fn revert_all(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            DbConn::Pg(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
            DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        }
        .map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs `f` in one transaction: everything it does commits together, or
/// nothing does (an `Err` rolls back). Lets the service make a change and its
/// audit entry atomic without depending on diesel.
pub fn transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<StoreError>,
{
    enum TxError<E> {
        App(E),
        Db(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for TxError<E> {
        fn from(e: diesel::result::Error) -> Self {
            TxError::Db(e)
        }
    }
    match conn.transaction::<T, TxError<E>, _>(|c| f(c).map_err(TxError::App)) {
        Ok(v) => Ok(v),
        Err(TxError::App(e)) => Err(e),
        Err(TxError::Db(d)) => Err(E::from(StoreError::from(d))),
    }
}
