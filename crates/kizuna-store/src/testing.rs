//! Test support (feature `test-util`): stores on real SQLite files and, when
//! `KIZUNA_TEST_DATABASE_URL` names a PostgreSQL server, on a fresh scratch
//! database per test that is dropped afterwards.

use crate::db::{Backend, SqliteSync, Store, StoreOptions};
use diesel::Connection;
use diesel::RunQueryDsl;
use diesel::pg::PgConnection;

/// The environment variable naming the PostgreSQL server for tests.
pub const DATABASE_URL_ENV: &str = "KIZUNA_TEST_DATABASE_URL";

/// A database for one test; dropping it removes the database.
#[derive(Debug)]
pub struct ScratchDb {
    /// URL to open it with.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl ScratchDb {
    /// A SQLite file in a temporary directory.
    pub fn sqlite() -> ScratchDb {
        let dir = tempfile::tempdir().expect("temporary directory for a test database");
        let url = format!("sqlite://{}", dir.path().join("kizuna.db").display());
        ScratchDb {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A fresh database on the PostgreSQL server at `admin_url`.
    pub fn postgres(admin_url: &str) -> ScratchDb {
        let name = format!("kizuna_t_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::establish(admin_url)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {DATABASE_URL_ENV}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create scratch database");
        let url = replace_database(admin_url, &name);
        ScratchDb {
            url,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.cleanup {
            Cleanup::Sqlite(_) => Backend::Sqlite,
            Cleanup::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Opens (and migrates) a store on it.
    pub fn open(&self) -> Store {
        Store::open(&StoreOptions {
            url: self.url.clone(),
            pool_size: 8,
            sqlite_sync: SqliteSync::Normal,
        })
        .expect("open test store")
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// Replaces the database name (the path) of a `postgres://` URL.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// One scratch database per backend under test: SQLite always, PostgreSQL
/// when `KIZUNA_TEST_DATABASE_URL` is set.
pub fn scratch_databases() -> Vec<ScratchDb> {
    let mut dbs = vec![ScratchDb::sqlite()];
    if let Ok(url) = std::env::var(DATABASE_URL_ENV)
        && !url.is_empty()
    {
        dbs.push(ScratchDb::postgres(&url));
    }
    dbs
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::replace_database("postgres://root@127.0.0.1:5432/test", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://h", "x"),
            "postgres://h/x"
        );
    }
}
