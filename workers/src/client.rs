//! Enqueueing from Rust, inside the caller's own transaction: a job or an event written with
//! the caller's business rows commits or rolls back with them, so no job is enqueued for a row
//! that was never saved, and none is lost for one that was.
//!
//! ```ignore
//! let client = Client::builtin();
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO trips …").execute(&mut *tx).await?;
//! let job = client.job("http", json!({"url": "https://example.com/hook"}))?;
//! client.enqueue(&mut *tx, &job).await?;
//! tx.commit().await?; // PostgreSQL's NOTIFY reaches the workers at commit
//! ```
//!
//! The [`Client`] also turns wire-format job requests (Redis ingress, `POST /api/v1/jobs`)
//! into jobs: it knows the registered kinds and, through [`Routes`], which pool (queue,
//! attempt budget) runs each.
//! That is the outside edge: [`Client::resolve`] (and [`Client::check_caller_job`] for the
//! CLI) refuses what only the engine may enqueue, internal kinds and reserved idempotency-key
//! prefixes, while [`Client::job`] and the store serve the engine's own jobs as well.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use sqlx::{PgConnection, SqliteConnection};

use crate::job::{Enqueued, JobId, JobState, NewJob};
use crate::kinds::Registry;
use crate::routes::{Route, Routes};
use crate::store::{self, Keyed, StoreError};
use crate::wire::{self, EventEnvelope, JobRequest, Rejection};

/// A database connection a [`Client`] can write through: `&mut *tx` of a PostgreSQL or
/// SQLite transaction (or a plain connection).
pub trait Conn: Send + sealed::Sealed {
    /// Inserts a job; an existing `(workspace_id, kind, idempotency_key)` returns that job
    /// instead.
    fn insert_job(
        &mut self,
        job: &NewJob,
    ) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;
    /// Inserts jobs in one statement; every job's id by (workspace, kind, idempotency key).
    fn insert_jobs_keyed(
        &mut self,
        jobs: &[NewJob],
    ) -> impl Future<Output = Result<Keyed, StoreError>> + Send;
    /// Inserts an event once per `(workspace_id, id)` with its webhook deliveries (jobs
    /// routed by `webhooks`); false when it already existed.
    fn insert_event(
        &mut self,
        event: &EventEnvelope,
        webhooks: &Route,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The states of the jobs among `ids` that still exist (a pruned job is absent): what
    /// other crates ask about the jobs they enqueued, inside their own transaction.
    fn job_states(
        &mut self,
        ids: &[JobId],
    ) -> impl Future<Output = Result<HashMap<JobId, JobState>, StoreError>> + Send;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::PgConnection {}
    impl Sealed for sqlx::SqliteConnection {}
}

impl Conn for PgConnection {
    async fn insert_job(&mut self, job: &NewJob) -> Result<Enqueued, StoreError> {
        store::pg_enqueue(self, job).await
    }
    async fn insert_jobs_keyed(&mut self, jobs: &[NewJob]) -> Result<Keyed, StoreError> {
        store::pg_enqueue_keyed(self, jobs).await
    }
    async fn insert_event(
        &mut self,
        event: &EventEnvelope,
        webhooks: &Route,
    ) -> Result<bool, StoreError> {
        let (new, _) = store::pg_insert_events(self, std::slice::from_ref(event), webhooks).await?;
        Ok(new == 1)
    }
    async fn job_states(&mut self, ids: &[JobId]) -> Result<HashMap<JobId, JobState>, StoreError> {
        store::pg_job_states(self, ids).await
    }
}

impl Conn for SqliteConnection {
    async fn insert_job(&mut self, job: &NewJob) -> Result<Enqueued, StoreError> {
        store::sqlite_enqueue(self, job).await
    }
    async fn insert_jobs_keyed(&mut self, jobs: &[NewJob]) -> Result<Keyed, StoreError> {
        store::sqlite_enqueue_keyed(self, jobs).await
    }
    async fn insert_event(
        &mut self,
        event: &EventEnvelope,
        webhooks: &Route,
    ) -> Result<bool, StoreError> {
        let rows = store::sqlite_insert_events(self, std::slice::from_ref(event)).await?;
        store::sqlite_fan_out(self, &rows, webhooks).await?;
        Ok(rows.len() == 1)
    }
    async fn job_states(&mut self, ids: &[JobId]) -> Result<HashMap<JobId, JobState>, StoreError> {
        store::sqlite_job_states(self, ids).await
    }
}

/// Builds and writes jobs and events the way every entry point does.
#[derive(Clone)]
pub struct Client {
    registry: Arc<Registry>,
    routes: Arc<Routes>,
}

impl Client {
    /// A client for these kinds and routes (those of the pools that will run the jobs).
    pub fn new(registry: Arc<Registry>, routes: Arc<Routes>) -> Client {
        Client { registry, routes }
    }

    /// The built-in kinds and pools.
    pub fn builtin() -> Client {
        Client::new(Arc::new(Registry::builtin()), Arc::new(Routes::builtin()))
    }

    /// Where each kind goes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// A job of `kind` with `args`, checked (and its secrets sealed) by the kind's handler, on
    /// the queue of the pool
    /// that runs the kind, with that pool's attempt budget. Set the other public fields of
    /// the result (workspace, idempotency key, run_at, priority) before enqueueing.
    pub fn job(&self, kind: &str, args: Value) -> Result<NewJob, Rejection> {
        let Some(handler) = self.registry.get(kind) else {
            return Err(Rejection::UnknownJobKind {
                kind: kind.to_owned(),
                known: self.registry.public_kinds().join(", "),
            });
        };
        let route = self.routes.route(kind, None)?;
        let args = handler.prepare(args).map_err(Rejection::InvalidArgs)?;
        let mut job = NewJob::new(kind, args);
        job.queue = route.queue;
        job.max_attempts = route.max_attempts;
        Ok(job)
    }

    /// Refuses what a caller may not enqueue: an internal kind, or an idempotency key with a
    /// prefix the engine keeps for its own jobs.
    pub fn check_caller_job(
        &self,
        kind: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(), Rejection> {
        if self.registry.is_internal(kind) || self.routes.is_internal(kind) {
            return Err(Rejection::InternalKind(kind.to_owned()));
        }
        idempotency_key.map_or(Ok(()), wire::check_key_prefix)
    }

    /// The job a wire-format request asks for (Redis ingress, `POST /api/v1/jobs`); refuses
    /// internal kinds and reserved keys (see [`Client::check_caller_job`]).
    pub fn resolve(&self, request: JobRequest) -> Result<NewJob, Rejection> {
        self.check_caller_job(&request.kind, Some(&request.idempotency_key))?;
        let mut job = self.job(&request.kind, Value::Object(request.args))?;
        if let Some(queue) = request.queue {
            // The same rule as every other route: the queue moves the job, the budget stays
            // the kind's pool's.
            job.queue = self.routes.route(&request.kind, Some(&queue))?.queue;
        }
        job.workspace_id = Some(request.workspace_id);
        job.idempotency_key = Some(request.idempotency_key);
        job.run_at = request.run_at;
        job.priority = request.priority.unwrap_or(0);
        Ok(job)
    }

    /// Enqueues `job` through `conn` (typically `&mut *tx`): it becomes visible to workers when
    /// the caller commits. With an idempotency key that already exists for the workspace and
    /// kind, returns the existing job (`created: false`).
    pub async fn enqueue<C: Conn + ?Sized>(
        &self,
        conn: &mut C,
        job: &NewJob,
    ) -> Result<Enqueued, StoreError> {
        conn.insert_job(job).await
    }

    /// Enqueues many jobs through `conn` in one statement and tells every job's id by
    /// (workspace, kind, idempotency key), the existing job's where the key was taken (the
    /// planner's batches).
    /// Jobs without an idempotency key are inserted but not in the map.
    pub async fn enqueue_keyed<C: Conn + ?Sized>(
        &self,
        conn: &mut C,
        jobs: &[NewJob],
    ) -> Result<Keyed, StoreError> {
        conn.insert_jobs_keyed(jobs).await
    }

    /// Stores `event` through `conn`, once per `(workspace_id, id)`, with one delivery job
    /// per subscribed webhook endpoint in the same transaction; false when it was already
    /// stored. Check it first with [`crate::wire::parse_event`] when it comes from outside.
    pub async fn publish_event<C: Conn + ?Sized>(
        &self,
        conn: &mut C,
        event: &EventEnvelope,
    ) -> Result<bool, StoreError> {
        conn.insert_event(event, &self.webhook_route()).await
    }

    /// Where `webhook_delivery` jobs go.
    pub fn webhook_route(&self) -> Route {
        self.routes.route_or_default(crate::webhooks::KIND, None)
    }
}
