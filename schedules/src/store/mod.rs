//! Schedules in the database (`hangar_schedules`, the planner's own table: its migrations are
//! [`MIGRATIONS`]), on the same two backends as the job store: [`Schedules`] is the API the
//! integrations and the CLI use (upsert by name, enable/disable, change the spec, delete,
//! list) and the planner's batch (claim due rows, insert their jobs, move them on) in one
//! transaction. Each backend module holds its SQL, which reads and writes the planner's table
//! only: jobs are inserted through the engine's [`Conn`] and their states asked of it.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use hangar_workers::client::Conn;
use hangar_workers::db::{Database, Pool};
use hangar_workers::job::{JobId, JobState};
use hangar_workers::store::Store;
use hangar_workers::store::schema::{Migrations, Renumbered};
use serde::Serialize;
use sqlx::migrate::Migrator;

use crate::batch::{Planned, SpecCache};
use crate::file::{FileSchedule, valid_name};
use crate::spec::{Spec, SpecError};
use hangar_workers::routes::Routes;

/// The planner's migrations: `migrations/planner/{postgres,sqlite}`, versions 1001–1999.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
    renumbered: &[Renumbered {
        from: 3,
        description: "schedules",
        to: 1001,
    }],
};

static POSTGRES: Migrator = sqlx::migrate!("../migrations/planner/postgres");
static SQLITE: Migrator = sqlx::migrate!("../migrations/planner/sqlite");

/// What can go wrong with stored schedules.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The name is empty, too long, or has characters other than letters, digits and `-_.:/`.
    #[error("schedule name '{0}': use 1 to 200 letters, digits, '-', '_', '.', ':' and '/'")]
    InvalidName(String),
    /// The spec is neither a frequency keyword nor a 6-field cron expression.
    #[error("schedule '{name}': spec: {source}")]
    InvalidSpec {
        /// The schedule.
        name: String,
        /// Why the spec was refused.
        #[source]
        source: SpecError,
    },
    /// No schedule with this name.
    #[error("schedule '{0}' not found")]
    NotFound(String),
    /// The name belongs to a schedule of the other source (a file schedule cannot be replaced
    /// through the API, nor an API schedule by a file).
    #[error("schedule '{name}': name: already used by a schedule from {owner}")]
    NameTaken {
        /// The schedule.
        name: String,
        /// `a schedule file` or `the API`.
        owner: &'static str,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value Hangar does not understand.
    #[error("corrupt row in hangar_schedules: {0}")]
    Corrupt(String),
    /// The job store failed.
    #[error(transparent)]
    Store(#[from] hangar_workers::store::StoreError),
}

/// Where a schedule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A schedule file, synced at planner start.
    File,
    /// Created through [`Schedules`] (the integrations).
    Api,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }

    fn parse(s: &str) -> Result<Source, ScheduleError> {
        match s {
            "file" => Ok(Source::File),
            "api" => Ok(Source::Api),
            other => Err(ScheduleError::Corrupt(format!("unknown source '{other}'"))),
        }
    }

    fn owner(self) -> &'static str {
        match self {
            Source::File => "a schedule file",
            Source::Api => "the API",
        }
    }
}

/// A schedule to create or replace (by name).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// Unique name (letters, digits, `-_.:/`), e.g. `ws_1:quickbooks:payments`.
    pub name: String,
    /// A frequency keyword (`hourly`, `every_6_hours`, `daily`, `realtime`, `manual`) or a
    /// 6-field cron expression.
    pub spec: String,
    /// The job kind to enqueue.
    pub kind: String,
    /// The job's arguments.
    pub args: serde_json::Value,
    /// The queue; `None`: the queue of the pool that runs the kind.
    pub queue: Option<String>,
    /// The job's priority (smaller runs first).
    pub priority: i16,
    /// Whether the planner plans it.
    pub enabled: bool,
    /// The workspace its jobs belong to.
    pub workspace_id: Option<String>,
    /// The integration it syncs (informational, for lookups).
    pub integration: Option<String>,
    /// The data type it syncs (informational, for lookups).
    pub data_type: Option<String>,
}

impl NewSchedule {
    /// An enabled schedule of `kind` with empty args and no workspace.
    pub fn new(name: impl Into<String>, spec: impl Into<String>, kind: impl Into<String>) -> Self {
        NewSchedule {
            name: name.into(),
            spec: spec.into(),
            kind: kind.into(),
            args: serde_json::json!({}),
            queue: None,
            priority: 0,
            enabled: true,
            workspace_id: None,
            integration: None,
            data_type: None,
        }
    }
}

impl From<&FileSchedule> for NewSchedule {
    fn from(f: &FileSchedule) -> Self {
        NewSchedule {
            name: f.name.clone(),
            spec: f.spec.as_str().to_owned(),
            kind: f.kind.clone(),
            args: f.args.clone(),
            queue: f.queue.clone(),
            priority: f.priority,
            enabled: f.enabled,
            workspace_id: None,
            integration: None,
            data_type: None,
        }
    }
}

/// A stored schedule, as `hangar schedules list --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// `file` or `api`.
    pub source: Source,
    /// The workspace its jobs belong to.
    pub workspace_id: Option<String>,
    /// The integration it syncs.
    pub integration: Option<String>,
    /// The data type it syncs.
    pub data_type: Option<String>,
    /// Cron expression or frequency keyword.
    pub spec: String,
    /// Job kind.
    pub kind: String,
    /// Job args.
    pub args: serde_json::Value,
    /// Queue (`None`: the kind's pool).
    pub queue: Option<String>,
    /// Job priority.
    pub priority: i16,
    /// Whether it is planned.
    pub enabled: bool,
    /// Due time = slot + this.
    pub offset_ms: i64,
    /// The next due time.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The slot of the last job enqueued.
    pub last_slot_at: Option<DateTime<Utc>>,
    /// The last job enqueued.
    pub last_job_id: Option<JobId>,
    /// That job's state now (`None` once it was pruned): the last outcome.
    pub last_job_state: Option<JobState>,
    /// When the last job was enqueued.
    pub last_enqueued_at: Option<DateTime<Utc>>,
    /// Slots skipped because the previous run was still active.
    pub skipped_count: i64,
    /// When a slot was last skipped.
    pub last_skipped_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing schedules.
#[derive(Debug, Clone)]
pub struct ScheduleFilter {
    /// Only this workspace's schedules.
    pub workspace_id: Option<String>,
    /// At most this many, by name.
    pub limit: i64,
}

impl Default for ScheduleFilter {
    fn default() -> Self {
        ScheduleFilter {
            workspace_id: None,
            limit: 1_000,
        }
    }
}

/// What a sync of the file schedules changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncCounts {
    /// File schedules inserted or updated.
    pub upserted: u64,
    /// File schedules deleted because they are not in the files (only when pruning).
    pub deleted: u64,
    /// File schedules in the database that are not in the files and were kept (another
    /// process's files, or removed ones awaiting `hangar schedules sync --prune`).
    pub stale: u64,
}

/// Whether a sync of file schedules removes the stored file schedules it did not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Keep them (every process start): processes with different files never delete each
    /// other's schedules.
    Keep,
    /// Delete them (`hangar schedules sync --prune`, an operator's explicit decision).
    Delete,
}

/// What one planner batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// Due rows claimed.
    pub claimed: usize,
    /// Jobs inserted.
    pub enqueued: u64,
    /// Slots whose job already existed (another planner, or an earlier run of this one).
    pub deduplicated: u64,
    /// Slots skipped because the previous run was still active.
    pub skipped: Vec<crate::batch::Skipped>,
    /// How late the most overdue claimed row was.
    pub lateness: chrono::Duration,
    /// Queues that got jobs.
    pub queues: Vec<String>,
}

/// A schedule prepared for writing: spec parsed, offset and first due time computed.
#[derive(Debug, Clone)]
struct Prepared {
    row: NewSchedule,
    offset_ms: i64,
    next_run_at: Option<DateTime<Utc>>,
}

fn prepare(row: &NewSchedule, now: DateTime<Utc>) -> Result<Prepared, ScheduleError> {
    if !valid_name(&row.name) {
        return Err(ScheduleError::InvalidName(row.name.clone()));
    }
    let spec = Spec::parse(&row.spec).map_err(|source| ScheduleError::InvalidSpec {
        name: row.name.clone(),
        source,
    })?;
    let offset_ms = spec.offset_ms(&row.name);
    let next_run_at = if row.enabled {
        spec.next_due_after(offset_ms, now)
    } else {
        None
    };
    let mut row = row.clone();
    row.spec = spec.as_str().to_owned();
    Ok(Prepared {
        row,
        offset_ms,
        next_run_at,
    })
}

/// Stored schedules on the job store's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Schedules {
    store: Store,
    db: Database,
}

/// Dispatches one call to the backend's functions, passing its pool.
macro_rules! backend {
    ($self:ident, $function:ident ( $($arg:expr),* )) => {
        match $self.db.pool() {
            Pool::Postgres(pool) => postgres::$function(pool $(, $arg)*).await,
            Pool::Sqlite(pool) => sqlite::$function(pool $(, $arg)*).await,
        }
    };
}

impl Schedules {
    /// Schedules on `store`'s database (migrated, [`MIGRATIONS`] included).
    pub fn new(store: Store) -> Schedules {
        let db = store.database().clone();
        Schedules { store, db }
    }

    /// The job store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates or replaces the API schedule `schedule.name`. A changed spec recomputes the
    /// next due time; an unchanged one keeps it (no run is lost or added by a re-upsert).
    pub async fn upsert(&self, schedule: &NewSchedule) -> Result<ScheduleRow, ScheduleError> {
        self.upsert_many(std::slice::from_ref(schedule)).await?;
        self.get(&schedule.name).await
    }

    /// Creates or replaces many API schedules in one statement; returns how many.
    pub async fn upsert_many(&self, schedules: &[NewSchedule]) -> Result<u64, ScheduleError> {
        self.write(schedules, Source::Api, Prune::Keep)
            .await
            .map(|c| c.upserted)
    }

    /// Upserts `files` as file schedules (source `file`), in name order, in one statement.
    /// Every planner calls it at start with [`Prune::Keep`]: a process never deletes what it
    /// did not declare, so processes with different files (or none) keep each other's rows,
    /// and concurrent starts neither deadlock nor lose rows. [`Prune::Delete`] also deletes
    /// the file schedules that are not in `files`. API schedules are never touched.
    pub async fn sync_files(
        &self,
        files: &[FileSchedule],
        prune: Prune,
    ) -> Result<SyncCounts, ScheduleError> {
        let rows: Vec<NewSchedule> = files.iter().map(NewSchedule::from).collect();
        self.write(&rows, Source::File, prune).await
    }

    async fn write(
        &self,
        rows: &[NewSchedule],
        source: Source,
        prune: Prune,
    ) -> Result<SyncCounts, ScheduleError> {
        let now = Utc::now();
        let mut prepared = rows
            .iter()
            .map(|r| prepare(r, now))
            .collect::<Result<Vec<_>, _>>()?;
        // One lock order for every writer: concurrent syncs wait instead of deadlocking.
        prepared.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        prepared.dedup_by(|a, b| a.row.name == b.row.name);
        backend!(self, write(&prepared, source, prune))
    }

    /// Enables or disables a schedule. Enabling plans it from its next due time after now
    /// (the slots it missed while disabled are not run); disabling clears its next run.
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ScheduleRow, ScheduleError> {
        let found = backend!(self, set_enabled(name, enabled, Utc::now()))?;
        if !found {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        self.get(name).await
    }

    /// Changes a schedule's spec (and so its offset and next due time).
    pub async fn set_spec(&self, name: &str, spec: &str) -> Result<ScheduleRow, ScheduleError> {
        let parsed = Spec::parse(spec).map_err(|source| ScheduleError::InvalidSpec {
            name: name.to_owned(),
            source,
        })?;
        let offset_ms = parsed.offset_ms(name);
        let next = parsed.next_due_after(offset_ms, Utc::now());
        let found = backend!(self, set_spec(name, parsed.as_str(), offset_ms, next))?;
        if !found {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        self.get(name).await
    }

    /// Deletes a schedule; false when there was none. Its jobs are left alone.
    pub async fn delete(&self, name: &str) -> Result<bool, ScheduleError> {
        backend!(self, delete(name))
    }

    /// One schedule with its last job's state.
    pub async fn get(&self, name: &str) -> Result<ScheduleRow, ScheduleError> {
        let filter = ScheduleFilter {
            workspace_id: None,
            limit: 1,
        };
        backend!(self, list(&filter, Some(name)))?
            .pop()
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))
    }

    /// Schedules by name, with their last job's state.
    pub async fn list(&self, filter: &ScheduleFilter) -> Result<Vec<ScheduleRow>, ScheduleError> {
        backend!(self, list(filter, None))
    }

    /// One planner batch: claims up to `limit` due rows, enqueues their jobs and moves them
    /// on, in one transaction (see [`crate::planner`]). `at` is the planner's now when its
    /// clock is controlled (tests); `None` takes the database's (PostgreSQL) or the system's.
    pub async fn plan_batch(
        &self,
        limit: i64,
        routes: &Routes,
        specs: &mut SpecCache,
        at: Option<DateTime<Utc>>,
    ) -> Result<BatchReport, ScheduleError> {
        backend!(self, plan_batch(limit, routes, specs, at))
    }

    /// The earliest due time of an enabled schedule, and the database's now.
    pub async fn next_due(&self) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), ScheduleError> {
        backend!(self, next_due())
    }

    /// How many schedules have a name starting with `prefix`, and how many of those have
    /// enqueued a job for some slot (`hangar bench planner` waits on it).
    pub async fn count_planned(&self, prefix: &str) -> Result<(u64, u64), ScheduleError> {
        backend!(self, count_planned(&like_prefix(prefix)))
    }

    /// Makes every schedule whose name starts with `prefix` due now, as if it had never
    /// enqueued a job (`hangar bench planner`'s burst); returns how many.
    pub async fn make_due_now(&self, prefix: &str) -> Result<u64, ScheduleError> {
        backend!(self, make_due_now(&like_prefix(prefix), Utc::now()))
    }

    /// Deletes every schedule whose name starts with `prefix`; returns how many.
    pub async fn delete_prefixed(&self, prefix: &str) -> Result<u64, ScheduleError> {
        backend!(self, delete_prefixed(&like_prefix(prefix)))
    }
}

/// A `LIKE` pattern (escape `\`) matching the names that start with `prefix`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The states of the schedules' last jobs (those that still exist), asked of the engine
/// through `conn`: the planner's SQL never reads the engine's tables.
async fn last_job_states<C: Conn + ?Sized>(
    conn: &mut C,
    last_job_ids: Vec<Option<i64>>,
) -> Result<HashMap<JobId, JobState>, ScheduleError> {
    let ids: Vec<JobId> = last_job_ids.into_iter().flatten().map(JobId).collect();
    Ok(conn.job_states(&ids).await?)
}

/// The report of a planned batch once its jobs are written.
fn report(planned: Planned, claimed: usize, enqueued: u64) -> BatchReport {
    let with_slot = planned.jobs.len() as u64;
    BatchReport {
        claimed,
        enqueued,
        deduplicated: with_slot.saturating_sub(enqueued),
        queues: planned.queues(),
        skipped: planned.skipped,
        lateness: planned.lateness,
    }
}
