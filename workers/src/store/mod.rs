//! The job store: one design on two backends, PostgreSQL (production, many processes on many
//! machines) and SQLite (the embedded default). [`Store`] is the one type the rest of Hangar
//! uses for the engine's tables (jobs, attempts, events, alerts, alert channels and notices,
//! maintenance leases); its connections and its backend stay private to this module. Every
//! write that reports a worker's result is fenced by the lease token of the claim, so a
//! worker whose lease was taken over cannot overwrite a newer attempt.
//!
//! One file per responsibility, with both dialects side by side, so a change to one query
//! shows its twin: `enqueue` (inserting jobs, also inside a caller's transaction), `events`, `event_log`
//! (reading events back with their deliveries and subscribed jobs), `event_subscriptions` (jobs enqueued for new events of a type, beside the webhook fan-out),
//! `claims` (claims, wake-ups, LISTEN), `leases` (heartbeat, hand-back, expired leases),
//! `completion`, `failures`, `queue_minutes` (per-minute counters per queue, for the charts), `rescue`, `cancel`, `operator` (retry, delete a queue), `jobs`
//! (reading jobs and attempts), `stats`, `maintenance` (retention), `alerts`, `alert_channels`,
//! `notices` (the alert dispatcher's rows), `webhook_endpoints`, `webhook_secrets`, `webhook_fanout` (an event's
//! deliveries in the transaction that stores it), `webhook_attempts`, `webhook_deliveries`, `inbound_hooks` (inbound webhook material),
//! `inbound_events` (verified pushes with their processing job);
//! `rows` decodes rows of either backend.
//!
//! **Choosing the backend.** Every query chooses its dialect the same way: a `match` on
//! `Store::pool` (durable writes and reads) or `Store::lease_pool` (claims, heartbeats
//! and hand-backs, committed without waiting for the disk), with the PostgreSQL arm first:
//!
//! ```ignore
//! match self.pool() {
//!     Pool::Postgres(pool) => sqlx::query("… now() …").execute(pool).await?,
//!     Pool::Sqlite(pool) => sqlx::query("… ?2 …").bind(now_ms()).execute(pool).await?,
//! };
//! ```
//!
//! Where the SQL text is the same on both (`$N` parameters in order, times the caller
//! binds), both arms run it. PostgreSQL stores `timestamptz` and `jsonb`; SQLite integer
//! Unix milliseconds taken from this process's clock, and JSON text. Other crates keep
//! their own tables on the same database through [`Store::database`], never the job tables.

mod alert_channels;
mod alerts;
mod cancel;
mod claims;
mod completion;
mod enqueue;
mod event_log;
mod event_subscriptions;
mod events;
mod failures;
mod inbound_events;
mod inbound_hooks;
mod job_actions;
mod job_facts;
mod jobs;
mod leases;
mod maintenance;
mod notices;
mod operator;
mod processes;
mod queue_minutes;
mod queue_pauses;
mod queue_samples;
mod rescue;
mod rows;
pub mod schema;
mod stats;
mod webhook_attempts;
mod webhook_deliveries;
mod webhook_endpoints;
mod webhook_fanout;
mod webhook_gate;
mod webhook_record;
mod webhook_replays;
mod webhook_secrets;
mod webhook_series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::model::{AlertKind, Severity};
use crate::db::{Commit, Database, Pool};
use crate::error_class::ErrorClass;
use crate::job::{ClaimedJob, JobId, JobState, NewJob};
use crate::retry_policy::{Alert, Spent};

pub use alert_channels::NewChannelRow;
pub use alerts::{
    AlertFilter, AlertPage, AlertState, DEFAULT_ALERT_PAGE, MAX_ALERT_PAGE, NewAlert,
    UnknownAlertState,
};
pub use cancel::CANCELLED;
pub use claims::{ClaimKey, Wakeups};
pub(crate) use enqueue::{pg_enqueue, pg_enqueue_keyed, sqlite_enqueue, sqlite_enqueue_keyed};
pub use event_log::{EventDelivery, EventDetail, EventFilter, EventJob, EventSummary};
pub use event_subscriptions::EventSubscription;
pub(crate) use events::{pg_insert_events, sqlite_insert_events};
pub use inbound_events::{InboundEvent, NewInbound};
pub use inbound_hooks::InboundHookRow;
pub use job_actions::CHUNK as BULK_CHUNK;
pub(crate) use job_facts::{pg_job_states, sqlite_job_states};
pub use notices::{AlertFacts, Sent};
pub use processes::{ProcessBeat, ProcessRow, RunningJob};
pub use queue_minutes::{MINUTES_RETENTION, QueueSeries, SeriesPoint};
pub use queue_pauses::QueuePause;
pub(crate) use rows::millis;
pub use stats::{QueueStats, QueueThroughput};
pub use webhook_attempts::{AttemptOutcome, AttemptRow, DeliveryTarget, HealthMove};
pub use webhook_deliveries::{Attempt, Delivery};
pub use webhook_endpoints::NewEndpointRow;
pub(crate) use webhook_fanout::sqlite_fan_out;
pub use webhook_gate::{CIRCUIT_COOLDOWN, Gate, GateAsk, ordering_paths};
pub use webhook_replays::{NewReplay, REPLAY_KIND, Replay};
pub use webhook_series::{DeliveryPoint, DeliverySeries};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `postgres://…` nor `sqlite://…`.
    #[error("unsupported database URL '{0}' (expected postgres://… or sqlite://PATH)")]
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

/// What a handler leaves to be written with its job's completion
/// ([`crate::kinds::Handler::take_completion_write`]): in the completer's transaction, and
/// only if the completion passes its lease fence (a fenced-out attempt writes nothing).
#[derive(Debug, Clone)]
pub enum CompletionWrite {
    /// A successful webhook delivery attempt's record (`store/webhook_record.rs`).
    WebhookAttempt(Box<AttemptRow>),
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
    /// What kind of condition.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
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

/// The job store. Cheap to clone: clones share the connection pools.
#[derive(Clone)]
pub struct Store {
    /// Durable writes (enqueues, completions, failures, operator actions) and reads.
    db: Database,
    /// Claims, heartbeats and hand-backs, committed without waiting for the disk
    /// (PostgreSQL `synchronous_commit = off`, SQLite `synchronous=NORMAL`). Losing one of
    /// those in a crash only means a job runs again, which leases allow anyway, and it takes
    /// a disk flush off the path from enqueue to start.
    leases: Database,
    /// The URL, for PostgreSQL's LISTEN connection.
    url: Arc<str>,
    wakeups: Arc<Wakeups>,
}

/// Shows the backend only: the URL may carry a password.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
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
        // SQLite has one writer at a time: a few connections are plenty.
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let (durable, relaxed) = if postgres {
            (max_connections.max(2), 4)
        } else {
            (max_connections.clamp(1, 8), 2)
        };
        let db = Database::open(url, durable, create, Commit::Durable).await?;
        let leases = Database::open(url, relaxed, create, Commit::Relaxed).await?;
        Ok(Store {
            db,
            leases,
            url: url.into(),
            wakeups: Arc::default(),
        })
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
        self.db.backend_name()
    }

    /// The database this store is on, for *another crate's own tables* (the planner's
    /// schedules, the API's tokens, the dashboard's sessions). The job tables are reached
    /// only through the store's methods.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The pool of durable writes and reads: match on it for the backend's dialect.
    fn pool(&self) -> &Pool {
        self.db.pool()
    }

    /// The pool of claims, heartbeats and hand-backs (the `leases` database).
    fn lease_pool(&self) -> &Pool {
        self.leases.pool()
    }

    /// Closes the connections (waiting for the ones in use to come back).
    pub async fn close(&self) {
        self.db.close().await;
        self.leases.close().await;
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await?.rows_affected(),
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await?.rows_affected(),
        };
        Ok(())
    }
}

pub use crate::redact::redact_url;

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
