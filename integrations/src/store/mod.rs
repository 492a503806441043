//! The integrations crate's tables and their SQL, on the database the engine lends
//! ([`hangar_workers::store::Store::database`]). Each responsibility is one file with both
//! dialects side by side (a `match` on the pool, PostgreSQL first). The sync engine's files
//! are `sync_*.rs` (versions 3500–3999 of [`MIGRATIONS`]).

pub mod sync_budget;
pub mod sync_changes;
pub mod sync_conflicts;
pub mod sync_outbox;
pub mod sync_pages;
pub mod sync_runs;
pub mod sync_scan;
pub mod sync_store;
mod sync_tx;

use hangar_workers::store::schema::Migrations;
use sqlx::migrate::Migrator;

pub use sync_store::{SyncStore, SyncStoreError};

/// The integrations crate's migrations: `migrations/integrations/{postgres,sqlite}`,
/// versions 3001–3999 (3500 and up: the sync engine's tables).
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
    renumbered: &[],
};

static POSTGRES: Migrator = sqlx::migrate!("../migrations/integrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("../migrations/integrations/sqlite");
