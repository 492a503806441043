//! [`SyncStore`], the sync engine's handle on its tables, its error, and the small helpers
//! both dialects share: SQLite's integer Unix milliseconds and JSON text, its write
//! transaction (`BEGIN IMMEDIATE`).

use chrono::{DateTime, Utc};
use hangar_workers::db::Database;
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The sync engine's tables: runs, cursors, mappings, changes, conflicts, rate budgets.
#[derive(Clone, Debug)]
pub struct SyncStore {
    pub(super) db: Database,
}

/// Why a sync-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncStoreError {
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("corrupt sync row: {0}")]
    Corrupt(String),
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation does not apply to the row as it is (e.g. a resolved conflict).
    #[error("{0}")]
    Conflict(String),
}

impl SyncStore {
    /// The sync engine's tables on `db` (migrated by `hangar migrate`).
    pub fn new(db: Database) -> SyncStore {
        SyncStore { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// A time as SQLite stores it: integer Unix milliseconds.
pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A time SQLite stored as Unix milliseconds.
pub(super) fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// SQLite's JSON text, read back.
pub(super) fn json_text(text: &str) -> Result<serde_json::Value, SyncStoreError> {
    serde_json::from_str(text).map_err(|e| SyncStoreError::Corrupt(format!("json: {e}")))
}

/// SQLite's one writer at a time, taken up front.
pub(super) async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}
