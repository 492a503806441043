//! The integrations' own tables and their SQL, on the database the job store lends
//! ([`hangar_workers::store::Store::database`]). The crate's migrations are [`MIGRATIONS`]
//! (`migrations/integrations/{postgres,sqlite}`: 3001–3499 the integrations and their
//! credentials, 3500–3999 the sync engine's tables). One file per responsibility, both
//! dialects side by side, the backend chosen by a `match` on the pool (PostgreSQL first):
//! [`integrations`] (the settings rows: create, update, read, list) and [`refresh`] (the
//! single-flight refresh: lease under the row lock, fenced save, fenced `needs_reauth`); the
//! sync engine's files are `sync_*.rs`.
//! PostgreSQL stores `timestamptz` and `jsonb`; SQLite integer Unix milliseconds and JSON
//! text.

pub mod integrations;
pub mod refresh;
mod sync_batch;
pub mod sync_budget;
pub mod sync_changes;
pub mod sync_conflicts;
pub mod sync_outbox;
pub mod sync_pages;
pub mod sync_removals;
pub mod sync_run_series;
pub mod sync_runs;
pub mod sync_scan;
pub mod sync_store;
mod sync_tx;

use chrono::{DateTime, Utc};
use hangar_workers::db::Database;
use hangar_workers::store::schema::Migrations;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::credentials::AuthKind;
use crate::integration::{Integration, Status};

pub use sync_store::{SyncStore, SyncStoreError};

/// The integrations crate's migrations: `migrations/integrations/{postgres,sqlite}`,
/// versions 3001–3999.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
    renumbered: &[],
};

static POSTGRES: Migrator = sqlx::migrate!("../migrations/integrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("../migrations/integrations/sqlite");

/// What can go wrong with the integrations' rows.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationStoreError {
    /// No such integration.
    #[error("integration {0} not found")]
    NotFound(String),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value Hangar does not understand.
    #[error("corrupt row in hangar_integrations: {0}")]
    Corrupt(String),
    /// The job store failed (a job written in the same transaction).
    #[error(transparent)]
    Jobs(#[from] hangar_workers::store::StoreError),
}

/// An integration row: what everyone may see, and the sealed credential (opened only by the
/// code that calls the provider).
#[derive(Clone)]
pub struct StoredIntegration {
    /// The integration as shown.
    pub integration: Integration,
    /// The sealed credential.
    pub sealed: Option<String>,
    /// Until when a process holds the refresh lease.
    pub refresh_lease_until: Option<DateTime<Utc>>,
    /// When the credential was last saved (PUT or refresh).
    pub credential_saved_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIntegration")
            .field("integration", &self.integration)
            .field("sealed", &self.sealed.as_ref().map(|_| "<sealed>"))
            .finish_non_exhaustive()
    }
}

/// The integrations' rows on one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IntegrationRows {
    db: Database,
}

impl IntegrationRows {
    /// The rows on `db` (migrated, [`MIGRATIONS`] included).
    pub fn new(db: Database) -> IntegrationRows {
        IntegrationRows { db }
    }

    fn db(&self) -> &Database {
        &self.db
    }
}

/// The columns [`from_pg`] and [`from_sqlite`] read.
const COLUMNS: &str = "id, workspace_id, provider, enabled, data_types, frequency, settings, \
     status, status_reason, auth, credential_sealed, credential_version, credential_saved_at, \
     access_expires_at, refresh_lease_until, last_refreshed_at, created_at, updated_at";

fn corrupt(what: impl Into<String>) -> IntegrationStoreError {
    IntegrationStoreError::Corrupt(what.into())
}

fn status(text: &str) -> Result<Status, IntegrationStoreError> {
    Status::parse(text).ok_or_else(|| corrupt(format!("status '{text}'")))
}

fn auth(text: Option<String>) -> Result<Option<AuthKind>, IntegrationStoreError> {
    text.map(|t| AuthKind::parse(&t).ok_or_else(|| corrupt(format!("auth '{t}'"))))
        .transpose()
}

fn data_types(value: serde_json::Value) -> Result<Vec<String>, IntegrationStoreError> {
    serde_json::from_value(value).map_err(|e| corrupt(format!("data_types: {e}")))
}

fn json_text(text: &str, field: &str) -> Result<serde_json::Value, IntegrationStoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{field}: {e}")))
}

/// A time as SQLite stores it: integer Unix milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn from_pg(row: &PgRow) -> Result<StoredIntegration, IntegrationStoreError> {
    Ok(StoredIntegration {
        integration: Integration {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            provider: row.try_get("provider")?,
            enabled: row.try_get("enabled")?,
            status: status(row.try_get("status")?)?,
            status_reason: row.try_get("status_reason")?,
            data_types: data_types(row.try_get("data_types")?)?,
            directions: Default::default(),
            frequency: row.try_get("frequency")?,
            settings: row.try_get("settings")?,
            auth: auth(row.try_get("auth")?)?,
            credential_version: row.try_get("credential_version")?,
            access_token_expires_at: row.try_get("access_expires_at")?,
            last_refreshed_at: row.try_get("last_refreshed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        sealed: row.try_get("credential_sealed")?,
        refresh_lease_until: row.try_get("refresh_lease_until")?,
        credential_saved_at: row.try_get("credential_saved_at")?,
    })
}

fn from_sqlite(row: &SqliteRow) -> Result<StoredIntegration, IntegrationStoreError> {
    let opt = |column: &str| -> Result<Option<DateTime<Utc>>, IntegrationStoreError> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(time))
    };
    Ok(StoredIntegration {
        integration: Integration {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            provider: row.try_get("provider")?,
            enabled: row.try_get("enabled")?,
            status: status(row.try_get("status")?)?,
            status_reason: row.try_get("status_reason")?,
            data_types: data_types(json_text(row.try_get("data_types")?, "data_types")?)?,
            directions: Default::default(),
            frequency: row.try_get("frequency")?,
            settings: json_text(row.try_get("settings")?, "settings")?,
            auth: auth(row.try_get("auth")?)?,
            credential_version: row.try_get("credential_version")?,
            access_token_expires_at: opt("access_expires_at")?,
            last_refreshed_at: opt("last_refreshed_at")?,
            created_at: time(row.try_get("created_at")?),
            updated_at: time(row.try_get("updated_at")?),
        },
        sealed: row.try_get("credential_sealed")?,
        refresh_lease_until: opt("refresh_lease_until")?,
        credential_saved_at: opt("credential_saved_at")?,
    })
}
