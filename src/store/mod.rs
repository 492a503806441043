//! The `hangar` binary's own tables and their SQL: API tokens ([`api_tokens`]) and dashboard
//! sessions ([`dashboard_sessions`]), both dialects side by side in one file per table, on
//! the database the job store lends ([`hangar_workers::store::Store::database`]). The app's
//! migrations are [`MIGRATIONS`]; [`migrate`] applies every crate's set in the order the
//! crates depend on each other (engine, planner, integrations, app).

pub mod api_tokens;
pub mod dashboard_sessions;

use hangar_workers::db::Database;
use hangar_workers::store::StoreError;
use hangar_workers::store::schema::{self, Migrations, Renumbered};
use sqlx::migrate::Migrator;

/// The app's migrations: `migrations/app/{postgres,sqlite}`, versions 2001–2999.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
    renumbered: &[
        Renumbered {
            from: 4,
            description: "api tokens",
            to: 2001,
        },
        Renumbered {
            from: 11,
            description: "dashboard sessions",
            to: 2002,
        },
    ],
};

static POSTGRES: Migrator = sqlx::migrate!("migrations/app/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/app/sqlite");

/// Every crate's migrations, in the order they apply: a crate's tables may refer to the
/// tables of the crates it depends on, never the other way.
const ALL: [&Migrations; 4] = [
    &schema::ENGINE,
    &hangar_schedules::MIGRATIONS,
    &hangar_integrations::store::MIGRATIONS,
    &MIGRATIONS,
];

/// Applies every crate's pending migrations; returns the names of those it applied
/// (`0006_idempotency_per_workspace`, `2002_dashboard_sessions`), in order, empty when the
/// database was up to date.
pub async fn migrate(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut applied = Vec::new();
    for set in ALL {
        applied.extend(set.apply(db).await?);
    }
    Ok(applied)
}

/// Fails with [`StoreError::NotMigrated`] unless every crate's migrations have been applied:
/// the processes that do not own the schema (`worker`, operator commands) never change it.
pub async fn check_migrated(db: &Database) -> Result<(), StoreError> {
    let mut pending = 0;
    for set in ALL {
        pending += set.pending(db).await?;
    }
    match pending {
        0 => Ok(()),
        pending => Err(StoreError::NotMigrated { pending }),
    }
}

/// Where the database's schema stands against the migrations this binary ships.
#[derive(Debug, Clone, Default)]
pub struct SchemaStatus {
    /// How many migrations (of every set) the database has applied.
    pub applied: usize,
    /// The migrations this binary ships that the database lacks (`0023_x`), set by set.
    pub pending: Vec<String>,
    /// Applied versions that no set of this binary knows: a newer Hangar migrated the
    /// database.
    pub unknown: Vec<i64>,
}

/// The schema's standing: what is applied, pending, and unknown to this binary.
pub async fn schema_status(db: &Database) -> Result<SchemaStatus, StoreError> {
    let versions = schema::applied_versions(db).await?;
    let mut pending = Vec::new();
    for set in ALL {
        pending.extend(set.pending_names(db).await?);
    }
    let unknown = versions
        .iter()
        .copied()
        .filter(|v| !ALL.iter().any(|set| set.knows(db, *v)))
        .collect();
    Ok(SchemaStatus {
        applied: versions.len(),
        pending,
        unknown,
    })
}
