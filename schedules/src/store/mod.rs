//! Schedules in the database (`hangar_schedules`, the planner's own table: its migrations are
//! [`MIGRATIONS`]), on the same two backends as the job store: [`Schedules`] is the API the
//! integrations and the CLI use (upsert by name, enable/disable, change the spec, delete,
//! list) and the planner's batch (claim due rows, insert their jobs, move them on) in one
//! transaction. Its SQL reads and writes the planner's table only: jobs are inserted through
//! the engine's [`Conn`](hangar_workers::client::Conn) and their states asked of it.
//!
//! One file per responsibility, with both dialects side by side, so a change to one query
//! shows its twin: `upsert` (the schedules API, and the file sync with its pruning, which is
//! the same statement), `plan` (the planner's batch and its next due time), `bench` (what
//! `hangar bench planner` needs); `rows` decodes rows of either backend. This file holds the
//! types and the validation of a schedule before it is written.
//!
//! **Choosing the backend.** As in the engine's store, every query chooses its dialect with a
//! `match` on the database's [`Pool`](hangar_workers::db::Pool), PostgreSQL arm first.
//! PostgreSQL stores `timestamptz` and `jsonb` and takes its `now()`; SQLite integer Unix
//! milliseconds from this process's clock, and JSON text.

mod bench;
pub mod operator;
mod plan;
mod rows;
mod upsert;

use chrono::{DateTime, Utc};

use hangar_workers::db::Database;
use hangar_workers::job::{JobId, JobState};
use hangar_workers::store::Store;
use hangar_workers::store::schema::{Migrations, Renumbered};
use serde::Serialize;
use sqlx::migrate::Migrator;

use crate::file::{FileSchedule, valid_name};
use crate::spec::{Spec, SpecError};

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
    /// "Run now" while a run of the schedule is still active (one run at a time).
    #[error(
        "schedule '{name}': a run is still active (job {job} is {state}); wait for it or cancel it"
    )]
    RunActive {
        /// The schedule.
        name: String,
        /// The active job.
        job: JobId,
        /// Its state.
        state: JobState,
    },
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// The schedule file it comes from (file schedules only).
    pub source_file: Option<String>,
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
            source_file: None,
        }
    }

    /// A digest of what the schedule's owner declares (spec, kind, args, queue, priority,
    /// enabled, workspace, integration, data type): an unchanged digest on a re-sync keeps
    /// an operator's enable or disable, a changed one ends it.
    fn digest(&self) -> String {
        let definition = serde_json::json!([
            self.spec,
            self.kind,
            self.args,
            self.queue,
            self.priority,
            self.enabled,
            self.workspace_id,
            self.integration,
            self.data_type,
        ]);
        format!(
            "{:016x}",
            crate::spec::fnv1a64(definition.to_string().as_bytes())
        )
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
            source_file: Some(f.file.clone()),
        }
    }
}

/// A stored schedule, as `hangar schedules list --json` and `GET /api/v1/schedules` show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// `file` or `api`.
    pub source: Source,
    /// The schedule file it was last synced from (file schedules; `null` for API ones).
    pub source_file: Option<String>,
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
    /// An operator's enable (`true`) or disable (`false`), which holds across re-syncs until
    /// the schedule's file (or API owner) changes its definition; `null`: the definition's.
    pub operator_enabled: Option<bool>,
    /// When an operator last enabled or disabled it.
    pub operator_changed_at: Option<DateTime<Utc>>,
    /// Due time = slot + this.
    pub offset_ms: i64,
    /// The next due time.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The slot of the last job enqueued.
    pub last_slot_at: Option<DateTime<Utc>>,
    /// The job of the last slot.
    #[schema(value_type = Option<i64>)]
    pub last_job_id: Option<JobId>,
    /// That job's state now (`None` once it was pruned): the last slot's outcome.
    pub last_job_state: Option<JobState>,
    /// When the last job was enqueued.
    pub last_enqueued_at: Option<DateTime<Utc>>,
    /// Slots skipped because the previous run was still active.
    pub skipped_count: i64,
    /// When a slot was last skipped.
    pub last_skipped_at: Option<DateTime<Utc>>,
    /// The last job an operator started with "run now" (outside the slots).
    #[schema(value_type = Option<i64>)]
    pub run_now_job_id: Option<JobId>,
    /// That job's state now (`None` once it was pruned).
    pub run_now_job_state: Option<JobState>,
    /// When an operator last ran it now.
    pub run_now_at: Option<DateTime<Utc>>,
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
    digest: String,
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
    let digest = row.digest();
    Ok(Prepared {
        row,
        offset_ms,
        next_run_at,
        digest,
    })
}

/// Stored schedules on the job store's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Schedules {
    store: Store,
    db: Database,
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
}
