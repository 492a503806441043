//! The job store: one design on two backends, PostgreSQL (production, many processes on many
//! machines) and SQLite (the embedded default). [`Store`] is the one type the rest of Hangar
//! uses; each backend module holds that backend's SQL. Every write that reports a worker's
//! result is fenced by the lease token of the claim, so a worker whose lease was taken over
//! cannot overwrite a newer attempt.

mod alerts;
mod cancel;
mod completion;
mod job_facts;
mod maintenance;
mod postgres;
mod rescue;
pub mod schema;
mod sqlite;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error_class::ErrorClass;
use crate::ingress::EventEnvelope;
use crate::job::{ClaimedJob, Enqueued, Job, JobFilter, JobId, JobState, NewJob};
use crate::retry_policy::{Alert, Spent};

pub use alerts::{
    AlertFilter, AlertPage, AlertState, DEFAULT_ALERT_PAGE, MAX_ALERT_PAGE, NewAlert,
    UnknownAlertState,
};
pub use cancel::CANCELLED;
pub(crate) use job_facts::{pg_job_states, sqlite_job_states};
pub use postgres::PgStore;
pub(crate) use postgres::{
    enqueue as pg_enqueue, enqueue_keyed as pg_enqueue_keyed, insert_events as pg_insert_events,
};
pub use sqlite::SqliteStore;
pub(crate) use sqlite::{
    enqueue as sqlite_enqueue, enqueue_keyed as sqlite_enqueue_keyed,
    insert_events as sqlite_insert_events,
};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `postgres://…` nor `sqlite://…`.
    #[error(
        "HANGAR_DATABASE_URL: unsupported database URL '{0}' (expected postgres://… or sqlite://PATH)"
    )]
    UnsupportedUrl(String),
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite file does not exist (and this command does not create it).
    #[error("no database at {0}: run `hangar migrate` or `hangar serve` to create it")]
    NoDatabase(String),
    /// The schema lacks migrations this binary needs.
    #[error(
        "the database schema is not up to date ({pending} migration(s) pending): run `hangar migrate` first"
    )]
    NotMigrated {
        /// How many migrations are missing.
        pending: usize,
    },
    /// No job with this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The job is in a state the action does not apply to.
    #[error("job {id} is {state}: cannot {action} it")]
    JobConflict {
        /// The job.
        id: JobId,
        /// Its current state.
        state: JobState,
        /// What was asked.
        action: &'static str,
    },
    /// No alert with this id.
    #[error("alert {0} not found")]
    AlertNotFound(i64),
    /// A stored value that Hangar does not understand (a row written by something else).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A position in a queue's claim order `(priority, run_at, id)`.
///
/// On PostgreSQL every claimed row leaves a dead entry at the front of the runnable index
/// until VACUUM removes it, so under a large backlog each claim that scans from the start
/// steps over more of them (a 1M-job drain slowed to a fifth). A busy pool therefore claims
/// after the last key it claimed, and from the start at least every 100 ms and whenever such
/// a claim comes back short: jobs that arrive out of order (a higher priority, a past
/// `run_at`, a transaction that committed late) wait at most that long, and only while the
/// pool has a backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimKey {
    /// The job's priority.
    pub priority: i16,
    /// The job's `run_at`.
    pub run_at: DateTime<Utc>,
    /// The job's id.
    pub id: JobId,
}

impl ClaimKey {
    /// The key of a claimed job.
    pub fn of(job: &ClaimedJob) -> ClaimKey {
        ClaimKey {
            priority: job.priority,
            run_at: job.run_at,
            id: job.id,
        }
    }
}

/// A successful attempt reported by a worker, fenced by its lease token.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// The job.
    pub id: JobId,
    /// The lease token of the claim that ran it.
    pub lease_token: i64,
    /// The attempt number (attempts after the first may have an alert to resolve).
    pub attempt: i32,
    /// When the handler returned.
    pub finished_at: DateTime<Utc>,
}

/// What to do with a job after a failed attempt: the retry decision, made durable.
#[derive(Debug, Clone)]
pub struct FailureRecord {
    /// The job.
    pub id: JobId,
    /// The lease token of the claim that ran it.
    pub lease_token: i64,
    /// The attempt number.
    pub attempt: i32,
    /// The job's workspace (for the alert).
    pub workspace_id: Option<String>,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The class of the failure.
    pub class: ErrorClass,
    /// The failure's message.
    pub error: String,
    /// The HTTP status, when the attempt got a response.
    pub http_status: Option<i32>,
    /// The state the job moves to: retryable, scheduled (snooze) or failed.
    pub next_state: JobState,
    /// Wait before the next attempt.
    pub delay: Duration,
    /// What the job has used of its budget once this failure is counted (the job row's
    /// counters are set to it).
    pub spent: Spent,
    /// This failure's number in the budget (`None` for a rate limit, which uses none).
    pub budget_failure: Option<i32>,
    /// This failure's number in its class (the snooze's number for a rate limit; `None` for
    /// a client error, which is never retried).
    pub class_failure: Option<i32>,
    /// The decision in words.
    pub decision: String,
    /// The alert to raise (deduplicated while open).
    pub alert: Option<Alert>,
    /// The worker that ran it.
    pub worker: String,
}

/// A running job whose lease ran out: its worker is gone or stuck.
#[derive(Debug, Clone)]
pub struct ExpiredLease {
    /// The job as it was claimed.
    pub job: ClaimedJob,
    /// The worker that held the lease.
    pub leased_by: Option<String>,
}

/// An alert row (CONTRACT.md, alert JSON, plus its derived `state`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    /// The alert's id.
    pub id: i64,
    /// The workspace it concerns.
    pub workspace_id: Option<String>,
    /// What kind of condition (`job_failing`, `job_failed`, `reauth_required`).
    pub kind: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// What happened, for a person.
    pub message: String,
    /// The job it concerns.
    pub job_id: Option<JobId>,
    /// The integration it concerns.
    pub integration: Option<String>,
    /// When the incident was first seen.
    pub created_at: DateTime<Utc>,
    /// When it was last seen.
    pub last_seen_at: DateTime<Utc>,
    /// How many times it was seen while open.
    pub occurrences: i32,
    /// When an operator acknowledged it.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When the condition cleared.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Open, acknowledged or resolved: derived from the two times above.
    pub state: AlertState,
}

/// Depth and lag of one queue, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs per non-final state, plus `failed`.
    pub counts: Vec<(JobState, i64)>,
    /// Seconds the oldest runnable job (available, scheduled or retryable) has waited past
    /// its `run_at`; 0 when none is due. Running and finished jobs never count.
    pub lag_seconds: f64,
}

/// Jobs of one queue that finished since a moment, for the dashboard's throughput and
/// failure rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueThroughput {
    /// The queue.
    pub queue: String,
    /// Jobs that completed since then.
    pub completed: i64,
    /// Jobs that failed for good since then.
    pub failed: i64,
}

/// Wakes idle pools of this process when a queue gets a runnable job. PostgreSQL feeds it
/// from LISTEN/NOTIFY (so enqueues from any process count); both backends feed it from
/// enqueues made through this process's [`Store`].
#[derive(Debug, Default)]
pub struct Wakeups {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// The notifier of one queue; a pool awaits `notified()` on it when idle.
    pub fn queue(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    /// Wakes the pools of `queue`.
    pub fn wake(&self, queue: &str) {
        let notify = {
            let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.get(queue).cloned()
        };
        if let Some(notify) = notify {
            notify.notify_one();
        }
    }

    /// Wakes every pool (after a lost LISTEN connection, when notifications may be missed).
    pub fn wake_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for notify in queues.values() {
            notify.notify_one();
        }
    }
}

/// The scope of an idempotency key: `(workspace, kind, key)`, with `""` for a job without a
/// workspace (as the unique index has it, see migration 0006).
pub type KeyScope = (String, String, String);

/// Jobs inserted by [`crate::client::Client::enqueue_keyed`]: how many were new, and every
/// job's id by (workspace, kind, idempotency key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyed {
    /// Jobs created (the others' keys were taken).
    pub created: u64,
    /// Each job's id by [`Keyed::scope_of`], the existing job's where the key was taken.
    pub ids: HashMap<KeyScope, JobId>,
}

impl Keyed {
    /// The map key of `job` (an absent idempotency key counts as `""`).
    pub fn scope_of(job: &NewJob) -> KeyScope {
        (
            job.workspace_id.clone().unwrap_or_default(),
            job.kind.clone(),
            job.idempotency_key.clone().unwrap_or_default(),
        )
    }

    /// Records a job; one without a key cannot be looked up and is left out.
    fn insert(&mut self, workspace: Option<String>, kind: String, key: Option<String>, id: i64) {
        if let Some(key) = key {
            self.ids
                .insert((workspace.unwrap_or_default(), kind, key), JobId(id));
        }
    }
}

/// What [`Store::ingest`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored for the first time.
    pub events_new: u64,
    /// Events already stored (same workspace and id).
    pub events_duplicate: u64,
    /// Jobs created.
    pub jobs_new: u64,
    /// Jobs whose workspace, kind and idempotency key already existed.
    pub jobs_duplicate: u64,
}

/// The job store. Cheap to clone: clones share the connection pool.
#[derive(Clone, Debug)]
pub enum Store {
    /// PostgreSQL.
    Postgres(PgStore),
    /// SQLite.
    Sqlite(SqliteStore),
}

/// Dispatches one method call to the backend.
macro_rules! backend {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Postgres($store) => $call,
            Store::Sqlite($store) => $call,
        }
    };
}

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite://PATH`, created when missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::open(url, max_connections, true).await
    }

    /// Connects to an existing database: a missing SQLite file is an error, not created.
    pub async fn connect_existing(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::open(url, max_connections, false).await
    }

    async fn open(url: &str, max_connections: u32, create: bool) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(
                SqliteStore::connect(url, max_connections, create).await?,
            ))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// Fails with [`StoreError::NotMigrated`] unless every engine migration has been applied;
    /// for the processes that must not change the schema themselves (`worker`, operator
    /// commands). The other crates check their own sets ([`schema`]).
    pub async fn check_migrated(&self) -> Result<(), StoreError> {
        match schema::ENGINE.pending(self.database()).await? {
            0 => Ok(()),
            pending => Err(StoreError::NotMigrated { pending }),
        }
    }

    /// Applies the engine's pending migrations (its own tables only: the other crates apply
    /// theirs, see [`schema`]); returns the names of those it applied (`0006_x`), in
    /// order, empty when the schema was already up to date.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        schema::ENGINE.apply(self.database()).await
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Turns PostgreSQL NOTIFYs into wake-ups until `shutdown` (see [`PgStore::listen`]);
    /// returns at once on SQLite, whose wake-ups come from this process's own enqueues.
    pub async fn listen(&self, shutdown: CancellationToken) {
        if let Store::Postgres(pg) = self {
            pg.listen(shutdown).await;
        }
    }

    /// The database this store is on, for *another crate's own tables* (the planner's
    /// schedules, the API's tokens, the dashboard's sessions). The job tables are reached
    /// only through the store's methods.
    pub fn database(&self) -> &crate::db::Database {
        backend!(self, s => &s.database)
    }

    /// The wake-ups of this process's pools.
    pub fn wakeups(&self) -> &Arc<Wakeups> {
        backend!(self, s => &s.wakeups)
    }

    /// Closes the connections (waiting for the ones in use to come back).
    pub async fn close(&self) {
        backend!(self, s => s.close().await)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        backend!(self, s => s.ping().await)
    }

    /// Enqueues one job; with an idempotency key that already exists for its workspace and
    /// kind, returns that job instead.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        let enqueued = backend!(self, s => s.enqueue(job).await)?;
        if enqueued.created {
            self.wakeups().wake(&job.queue);
        }
        Ok(enqueued)
    }

    /// Enqueues many jobs in one statement (jobs whose idempotency key exists are skipped).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let n = backend!(self, s => s.enqueue_many(jobs).await)?;
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            self.wakeups().wake(queue);
        }
        Ok(n)
    }

    /// Stores one event once per `(workspace_id, id)`; false when it was already stored.
    pub async fn publish_event(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        let inserted = match self {
            Store::Postgres(s) => {
                postgres::insert_events(
                    &mut *s.pool().acquire().await?,
                    std::slice::from_ref(event),
                )
                .await?
            }
            Store::Sqlite(s) => {
                sqlite::insert_events(&mut *s.pool().acquire().await?, std::slice::from_ref(event))
                    .await?
            }
        };
        Ok(inserted == 1)
    }

    /// Writes a batch of ingress entries in one transaction: events once per
    /// `(workspace_id, id)`, jobs once per (workspace, kind, idempotency key). Nothing is written unless all of
    /// it is (the Redis consumer acknowledges the entries only after this returns).
    pub async fn ingest(
        &self,
        events: &[EventEnvelope],
        jobs: &[NewJob],
    ) -> Result<Ingested, StoreError> {
        let (events_new, jobs_new) = match self {
            Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                let e = postgres::insert_events(&mut tx, events).await?;
                let j = postgres::enqueue_many(&mut tx, jobs).await?;
                tx.commit().await?;
                (e, j)
            }
            Store::Sqlite(s) => {
                let mut tx = s.pool().begin().await?;
                let e = sqlite::insert_events(&mut tx, events).await?;
                let j = sqlite::enqueue_many(&mut tx, jobs).await?;
                tx.commit().await?;
                (e, j)
            }
        };
        if jobs_new > 0 {
            let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
            queues.sort_unstable();
            queues.dedup();
            for queue in queues {
                self.wakeups().wake(queue);
            }
        }
        Ok(Ingested {
            events_new,
            events_duplicate: events.len() as u64 - events_new,
            jobs_new,
            jobs_duplicate: jobs.len() as u64 - jobs_new,
        })
    }

    /// Claims up to `limit` runnable jobs of `queue` for `worker`, leasing them for `lease`.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim_after(queue, worker, limit, lease, None).await
    }

    /// Like [`Store::claim`], but only rows ordered after `after` (see [`ClaimKey`]).
    pub async fn claim_after(
        &self,
        queue: &str,
        worker: &str,
        limit: i64,
        lease: Duration,
        after: Option<&ClaimKey>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let token = fastrand::i64(1..i64::MAX);
        match self {
            Store::Postgres(s) => s.claim(queue, worker, limit, lease, token, after).await,
            // SQLite deletes index entries in place: there is nothing to step over.
            Store::Sqlite(s) => s.claim(queue, worker, limit, lease, token).await,
        }
    }

    /// Records a failed attempt and the retry decision; false when the result was rejected
    /// because the lease was taken over (nothing is written then).
    pub async fn record_failure(&self, failure: &FailureRecord) -> Result<bool, StoreError> {
        backend!(self, s => s.record_failure(failure).await)
    }

    /// Extends the leases of running jobs; returns the ids whose lease is still held (the
    /// others were cancelled or rescued and must stop).
    pub async fn heartbeat(
        &self,
        leases: &[(JobId, i64)],
        lease: Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        backend!(self, s => s.heartbeat(leases, lease).await)
    }

    /// Hands running jobs back unfinished (graceful shutdown): they become available again
    /// at once and the interrupted attempt is not counted.
    pub async fn release(&self, leases: &[(JobId, i64)]) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        backend!(self, s => s.release(leases).await)
    }

    /// Running jobs whose lease ran out, oldest first.
    pub async fn expired_leases(
        &self,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<ExpiredLease>, StoreError> {
        backend!(self, s => s.expired_leases(queue, limit).await)
    }

    /// The earliest `run_at` of a job of `queue` that waits for its time.
    pub async fn next_run_at(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        backend!(self, s => s.next_run_at(queue).await)
    }

    /// One job with its attempts.
    pub async fn job(&self, id: JobId) -> Result<Job, StoreError> {
        backend!(self, s => s.job(id).await)
    }

    /// Jobs matching `filter`, newest first, without their attempts.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        backend!(self, s => s.jobs(filter).await)
    }

    /// Makes a finished or waiting job run again now, with room for one more failure.
    pub async fn retry_job(&self, id: JobId) -> Result<Job, StoreError> {
        let rows = backend!(self, s => s.retry_job(id).await)?;
        let job = self.after_transition(id, rows, "retry").await?;
        self.wakeups().wake(&job.queue);
        Ok(job)
    }

    /// The job after an operator action that changed `rows` rows, or why it did not apply.
    async fn after_transition(
        &self,
        id: JobId,
        rows: u64,
        action: &'static str,
    ) -> Result<Job, StoreError> {
        let job = self.job(id).await?;
        if rows == 0 {
            return Err(StoreError::JobConflict {
                id,
                state: job.state,
                action,
            });
        }
        Ok(job)
    }

    /// Deletes every job of `queue` (benchmarks clean up their own queue with it).
    pub async fn delete_queue(&self, queue: &str) -> Result<u64, StoreError> {
        backend!(self, s => s.delete_queue(queue).await)
    }

    /// Counts jobs of `queue` in `state` (`equal`) or in any other state (`!equal`).
    pub async fn count_in_queue(
        &self,
        queue: &str,
        state: JobState,
        equal: bool,
    ) -> Result<i64, StoreError> {
        backend!(self, s => s.count_in_queue(queue, state, equal).await)
    }

    /// Depth and lag per queue.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        backend!(self, s => s.queue_stats().await)
    }

    /// Per queue, the jobs that completed or failed for good since `since` (by
    /// `finalized_at`, which the finalized-at index covers), ordered by queue.
    pub async fn queue_throughput(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<QueueThroughput>, StoreError> {
        backend!(self, s => s.queue_throughput(since).await)
    }
}

pub use crate::redact::redact_url;

/// Groups `(queue, state, count, lag seconds)` rows, ordered by queue, into one
/// [`QueueStats`] per queue.
pub(crate) fn fold_queue_stats(rows: Vec<(String, JobState, i64, f64)>) -> Vec<QueueStats> {
    let mut stats: Vec<QueueStats> = Vec::new();
    for (queue, state, n, lag) in rows {
        match stats.last_mut() {
            Some(last) if last.queue == queue => {
                last.counts.push((state, n));
                last.lag_seconds = last.lag_seconds.max(lag);
            }
            _ => stats.push(QueueStats {
                queue,
                counts: vec![(state, n)],
                lag_seconds: lag,
            }),
        }
    }
    stats
}

/// The ids of `done` that are not in `accepted`: results rejected by the lease fence.
pub(crate) fn rejected(done: &[Completion], accepted: &[i64]) -> Vec<JobId> {
    let accepted: std::collections::HashSet<i64> = accepted.iter().copied().collect();
    done.iter()
        .filter(|c| !accepted.contains(&c.id.0))
        .map(|c| c.id)
        .collect()
}

/// Alert incident key for a job: one open alert per job.
pub(crate) fn job_incident_key(id: JobId) -> String {
    format!("job:{id}")
}

/// The budget counters of a job row, in the order of [`BUDGET_COLUMNS`]; a count past
/// `i32::MAX` is stored as `i32::MAX`.
pub(crate) fn budget_counts(spent: &Spent) -> [i32; 6] {
    [
        spent.failures,
        spent.snoozes,
        spent.timeout,
        spent.server,
        spent.internal,
        spent.auth,
    ]
    .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The job row's budget counters, as [`Spent::from_row`] and [`budget_counts`] order them.
pub(crate) const BUDGET_COLUMNS: [&str; 6] = [
    "budget_failures",
    "snoozes",
    "timeout_failures",
    "server_failures",
    "internal_failures",
    "auth_failures",
];

/// The budget a claimed row has used (see [`BUDGET_COLUMNS`]), on either backend.
pub(crate) fn spent_from_row<'r, R>(row: &'r R) -> Result<Spent, StoreError>
where
    R: sqlx::Row,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let mut counts = [0i32; 6];
    for (count, column) in counts.iter_mut().zip(BUDGET_COLUMNS) {
        *count = row.try_get(column)?;
    }
    Ok(Spent::from_row(counts, row.try_get("budget_from_attempt")?))
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Parses a stored state name.
pub(crate) fn parse_state(table: &'static str, s: &str) -> Result<JobState, StoreError> {
    s.parse()
        .map_err(|e: crate::job::UnknownJobState| StoreError::Corrupt {
            table,
            detail: e.to_string(),
        })
}

/// Parses a stored error class name (absent stays absent).
pub(crate) fn parse_class(
    table: &'static str,
    s: Option<String>,
) -> Result<Option<ErrorClass>, StoreError> {
    s.map(|s| {
        s.parse().map_err(
            |e: crate::error_class::UnknownErrorClass| StoreError::Corrupt {
                table,
                detail: e.to_string(),
            },
        )
    })
    .transpose()
}

/// The attempt of a job that succeeded is not written as its own row (it would double the
/// writes on the hot path); it is rebuilt from the job row's `attempted_at`/`finalized_at`.
pub(crate) fn synthesize_success(
    job: &mut Job,
    attempted_at: Option<DateTime<Utc>>,
    finalized_at: Option<DateTime<Utc>>,
) {
    if job.state == JobState::Completed
        && let Some(started_at) = attempted_at
        && !job.attempts.iter().any(|a| a.attempt == job.attempt)
    {
        job.attempts.push(crate::job::AttemptRecord {
            attempt: job.attempt,
            started_at,
            finished_at: finalized_at,
            error_class: None,
            error: None,
            http_status: None,
            next_delay_ms: None,
            decision: Some("completed".to_owned()),
        });
    }
}
