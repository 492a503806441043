//! Each crate's tables and their migrations, on the one database they share. The engine owns
//! the job tables (jobs, attempts, alerts, alert channels and notices, events, maintenance
//! leases), the planner its schedules, the `hangar` binary its API tokens and dashboard
//! sessions; each crate ships a [`Migrations`] set for its own tables, in both dialects, and
//! `hangar migrate` applies them in the order the crates depend on each other (engine,
//! planner, app).
//!
//! The sets share sqlx's history table (`_sqlx_migrations`), each in a version space of its
//! own: the engine 1–999, the planner 1001–1999, the app 2001–2999. Every set runs with
//! `ignore_missing`, so one set does not refuse the versions of the others. Before issue 9
//! the engine shipped every table, the planner's and the app's among them, as versions
//! 3, 4 and 11: a set names those in [`Migrations::renumbered`], and applying it moves such a
//! row to its new version (the migration's text, and so its checksum, did not change) instead
//! of creating the table again.

use sqlx::migrate::Migrator;

use crate::db::{Database, Pool};
use crate::store::StoreError;

/// sqlx's history of applied migrations, shared by every set.
const HISTORY: &str = "_sqlx_migrations";

/// A migration that an older Hangar applied under another version: the engine shipped every
/// crate's tables before each crate owned its own.
#[derive(Debug, Clone, Copy)]
pub struct Renumbered {
    /// The version it had (in the single set of old).
    pub from: i64,
    /// Its description there and here (sqlx's: the file name after the version, `_` as a
    /// space), which must match for the row to be taken over.
    pub description: &'static str,
    /// Its version in its owner's set now.
    pub to: i64,
}

/// One crate's migrations, in both dialects.
#[derive(Debug)]
pub struct Migrations {
    /// The PostgreSQL flavour.
    pub postgres: &'static Migrator,
    /// The SQLite flavour.
    pub sqlite: &'static Migrator,
    /// Migrations an older Hangar applied under another version.
    pub renumbered: &'static [Renumbered],
}

/// The engine's migrations: `migrations/engine/{postgres,sqlite}`.
pub static ENGINE: Migrations = Migrations {
    postgres: &ENGINE_POSTGRES,
    sqlite: &ENGINE_SQLITE,
    renumbered: &[],
};

static ENGINE_POSTGRES: Migrator = sqlx::migrate!("../migrations/engine/postgres");
static ENGINE_SQLITE: Migrator = sqlx::migrate!("../migrations/engine/sqlite");

impl Migrations {
    /// Applies this set's pending migrations (after taking over the rows of its renumbered
    /// ones); returns the names of those it applied (`0006_idempotency_per_workspace`), in
    /// order, empty when the set was already up to date.
    pub async fn apply(&self, db: &Database) -> Result<Vec<String>, StoreError> {
        self.take_over_renumbered(db).await?;
        let before = applied(db).await?;
        let source = self.source(db);
        let mut migrator = Migrator::with_migrations(source.iter().cloned().collect());
        migrator.set_ignore_missing(true);
        match db.pool() {
            Pool::Postgres(pool) => migrator.run(pool).await?,
            Pool::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(source
            .iter()
            .filter(|m| !before.iter().any(|(version, _)| *version == m.version))
            .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
            .collect())
    }

    /// How many of this set's migrations the database lacks. A renumbered migration applied
    /// under its old version counts as applied: the schema is the same.
    pub async fn pending(&self, db: &Database) -> Result<usize, StoreError> {
        let applied = applied(db).await?;
        let has = |version: i64| applied.iter().any(|(v, _)| *v == version);
        Ok(self
            .source(db)
            .iter()
            .filter(|m| {
                !has(m.version)
                    && !self
                        .renumbered
                        .iter()
                        .any(|r| r.to == m.version && has(r.from))
            })
            .count())
    }

    /// The names of this set's migrations the database lacks (`0023_x`), in order; the
    /// same count as [`Migrations::pending`].
    pub async fn pending_names(&self, db: &Database) -> Result<Vec<String>, StoreError> {
        let applied = applied(db).await?;
        let has = |version: i64| applied.iter().any(|(v, _)| *v == version);
        Ok(self
            .source(db)
            .iter()
            .filter(|m| {
                !has(m.version)
                    && !self
                        .renumbered
                        .iter()
                        .any(|r| r.to == m.version && has(r.from))
            })
            .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
            .collect())
    }

    /// Whether `version` in the shared history is one of this set's (under its version now
    /// or a renumbered old one).
    pub fn knows(&self, db: &Database, version: i64) -> bool {
        self.source(db).iter().any(|m| m.version == version)
            || self.renumbered.iter().any(|r| r.from == version)
    }

    fn source(&self, db: &Database) -> &'static Migrator {
        match db.pool() {
            Pool::Postgres(_) => self.postgres,
            Pool::Sqlite(_) => self.sqlite,
        }
    }

    /// Moves the history rows of this set's renumbered migrations to their new versions.
    /// Repeating it (another process migrating at the same time) changes nothing more.
    async fn take_over_renumbered(&self, db: &Database) -> Result<(), StoreError> {
        if self.renumbered.is_empty() {
            return Ok(());
        }
        let applied = applied(db).await?;
        for r in self.renumbered {
            let old = applied
                .iter()
                .any(|(v, d)| *v == r.from && d == r.description);
            let new = applied.iter().any(|(v, _)| *v == r.to);
            if !old || new {
                continue;
            }
            let sql = format!(
                "UPDATE {HISTORY} SET version = $1 WHERE version = $2 AND description = $3"
            );
            let sql = sqlx::AssertSqlSafe(sql);
            match db.pool() {
                Pool::Postgres(pool) => {
                    sqlx::query(sql)
                        .bind(r.to)
                        .bind(r.from)
                        .bind(r.description)
                        .execute(pool)
                        .await?;
                }
                Pool::Sqlite(pool) => {
                    sqlx::query(sql)
                        .bind(r.to)
                        .bind(r.from)
                        .bind(r.description)
                        .execute(pool)
                        .await?;
                }
            };
            tracing::info!(
                from = r.from,
                to = r.to,
                migration = r.description,
                "migration renumbered to its owner's version"
            );
        }
        Ok(())
    }
}

/// The versions applied so far, of every set, in order: what `hangar doctor` compares with
/// the sets this binary ships (a version none of them knows was applied by a newer Hangar).
pub async fn applied_versions(db: &Database) -> Result<Vec<i64>, StoreError> {
    let mut versions: Vec<i64> = applied(db).await?.into_iter().map(|(v, _)| v).collect();
    versions.sort_unstable();
    Ok(versions)
}

/// The database server's version: PostgreSQL's `server_version`, SQLite's library version.
pub async fn server_version(db: &Database) -> Result<String, StoreError> {
    Ok(match db.pool() {
        Pool::Postgres(pool) => {
            sqlx::query_scalar("SHOW server_version")
                .fetch_one(pool)
                .await?
        }
        Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(pool)
                .await?
        }
    })
}

/// The migrations applied so far, `(version, description)`, of every set.
async fn applied(db: &Database) -> Result<Vec<(i64, String)>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT version, description FROM {HISTORY} WHERE success"
    ));
    let rows = match db.pool() {
        Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    };
    match rows {
        Ok(rows) => Ok(rows),
        // The history table itself is missing: nothing was ever applied.
        Err(sqlx::Error::Database(_)) => Ok(Vec::new()),
        Err(other) => Err(other.into()),
    }
}
