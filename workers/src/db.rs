//! A connection pool on PostgreSQL or SQLite, for the tables of whoever holds it. The job
//! store keeps its own [`Database`] private to its SQL; [`crate::store::Store::database`]
//! lends it to the crates that keep *their own* tables on the same database (the planner's
//! schedules, the API's tokens, the dashboard's sessions), which choose their dialect by
//! matching [`Database::pool`] (or asking [`Database::postgres`] / [`Database::sqlite`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::redact::redact_url;
use crate::store::StoreError;

/// How many connections [`Database::connect`] opens at most.
const DEFAULT_MAX_CONNECTIONS: u32 = 5;

/// The pool of one backend: match on it to run a query in that backend's dialect.
#[derive(Clone, Debug)]
pub enum Pool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// A connection pool on PostgreSQL or SQLite. Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
}

/// How durable a commit is on the connections of a [`Database`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Flushed to disk before the commit returns (PostgreSQL `synchronous_commit = on`,
    /// SQLite `synchronous=FULL`).
    Durable,
    /// Flushed later (PostgreSQL `synchronous_commit = off`, SQLite `synchronous=NORMAL`):
    /// a crash may lose the last commits, never corrupt the database.
    Relaxed,
}

impl Database {
    /// Connects to `url` (`postgres://…` or `sqlite://PATH`, the file created when missing)
    /// with a small pool of durable connections.
    pub async fn connect(url: &str) -> Result<Database, StoreError> {
        Self::open(url, DEFAULT_MAX_CONNECTIONS, true, Commit::Durable).await
    }

    /// The PostgreSQL pool, if this database is PostgreSQL.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if this database is SQLite.
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// The pool, to match on for the backend's dialect.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// Closes the connections (waiting for the ones in use to come back).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    /// Opens a pool of at most `max_connections` on `url`. With `create`, a missing SQLite
    /// file is created; without, it is [`StoreError::NoDatabase`].
    pub(crate) async fn open(
        url: &str,
        max_connections: u32,
        create: bool,
        commit: Commit,
    ) -> Result<Database, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(open_postgres(url, max_connections, commit).await?)
        } else if url.starts_with("sqlite:") {
            Pool::Sqlite(open_sqlite(url, max_connections, create, commit).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        Ok(Database { pool })
    }
}

async fn open_postgres(
    url: &str,
    max_connections: u32,
    commit: Commit,
) -> Result<PgPool, StoreError> {
    let connect_error = |source| StoreError::Connect {
        url: redact_url(url),
        source,
    };
    // NOTICEs (`relation "_sqlx_migrations" already exists, skipping`) say nothing an
    // operator needs; warnings and errors still arrive.
    let mut options = PgConnectOptions::from_str(url)
        .map_err(connect_error)?
        .options([("client_min_messages", "warning")]);
    if commit == Commit::Relaxed {
        options = options.options([("synchronous_commit", "off")]);
    }
    // No ping before each use: it doubles the round trips of every query; a broken
    // connection shows up as a query error, which every caller retries.
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(connect_error)
}

/// Opens the database file of `url` in WAL mode; with [`Commit::Durable`],
/// `synchronous=FULL`, so a committed row survives a power cut.
async fn open_sqlite(
    url: &str,
    max_connections: u32,
    create: bool,
    commit: Commit,
) -> Result<SqlitePool, StoreError> {
    let connect_error = |source| StoreError::Connect {
        url: redact_url(url),
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match commit {
            Commit::Durable => SqliteSynchronous::Full,
            Commit::Relaxed => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let file = options.get_filename();
    if !create && file != std::path::Path::new(":memory:") && !file.exists() {
        return Err(StoreError::NoDatabase(file.display().to_string()));
    }
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(connect_error)
}
