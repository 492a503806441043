//! An [apalis](https://docs.rs/apalis) 1.0 backend over Hangar's job store: an apalis worker
//! (`WorkerBuilder`, its tower layers, its events) consumes the jobs of one Hangar queue, with
//! Hangar's durable state around them:
//!
//! - **claims with a lease**: up to `concurrency` tasks running and `prefetch` more in hand,
//!   claimed ahead in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a task of its own
//!   while the worker runs) under a fresh fencing token; an idle worker wakes
//!   on NOTIFY (PostgreSQL), on an enqueue through the same `Store`, or on the poll tick;
//! - **results fenced by the claim**: successes are written in batches, failures get the
//!   retry decision of the [`PoolSpec`]'s rules (per-class budgets, backoff with jitter,
//!   `Retry-After`, alerts) and an attempt row, so `hangar jobs show` and the dashboard
//!   show them as any other job's; a result whose lease was taken over is rejected;
//! - **heartbeats and rescue**: leases in hand are renewed every third of the lease; the
//!   queue's expired leases (a crashed worker) are retried as `internal` failures;
//! - **graceful close**: claimed jobs not started yet are handed back (attempt not counted),
//!   the last results are written before the worker exits.
//!
//! ```ignore
//! let backend = HangarBackend::<Email>::new(store, HangarConfig::new("emails"));
//! let worker = WorkerBuilder::new("mailer").backend(backend).build(send_email);
//! worker.run().await?;
//! ```
//!
//! The task's args are the job's JSON args decoded as `Args`; a job whose args do not decode,
//! or of a kind the config does not list, fails at once as a `client` failure (never retried).

mod layer;
mod shared;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hangar_workers::backoff::Backoff;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobId};
use hangar_workers::kinds::JobFailure;
use hangar_workers::pool::FLUSH_TIMEOUT;
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::store::{Store, StoreError};
use serde::de::DeserializeOwned;
use tokio_util::sync::DropGuard;

pub use layer::{HangarFailure, HangarJob, HangarLayer, HangarService};
use shared::{Outcome, Shared};

/// Which queue a backend consumes and by which rules: a Hangar [`PoolSpec`] (queue, kinds,
/// concurrency, lease, batch size, poll interval, retry rules).
#[derive(Debug, Clone)]
pub struct HangarConfig {
    /// The queue, its limits and its retry rules.
    pub spec: PoolSpec,
    /// Stored as `leased_by` and on attempt rows; defaults to `apalis:<worker name>:<pid>`.
    pub worker_id: Option<String>,
}

impl HangarConfig {
    /// The built-in default pool's settings (concurrency 50, lease 15 s, the default retry
    /// rules) on `queue`, for jobs of any kind.
    pub fn new(queue: &str) -> Self {
        let mut spec = pool_config::builtin().remove(0);
        spec.name = format!("apalis-{queue}");
        spec.queue = queue.to_owned();
        spec.kinds = Vec::new();
        HangarConfig {
            spec,
            worker_id: None,
        }
    }

    /// The settings of a pool read from a pool file (`[[pool]]`), on its queue and kinds.
    pub fn from_spec(spec: PoolSpec) -> Self {
        HangarConfig {
            spec,
            worker_id: None,
        }
    }

    /// Only jobs of these kinds; others on the queue fail as `client` failures.
    pub fn kinds(mut self, kinds: &[&str]) -> Self {
        self.spec.kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        self
    }

    /// At most `n` tasks running at once, and as many claimed ahead (`prefetch`).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.spec.concurrency = n.max(1);
        self.spec.prefetch = n.max(1);
        self
    }

    /// How long a claim lasts without a heartbeat (renewed every third of it).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.spec.lease = lease;
        self
    }

    /// How often an idle worker looks for jobs without a wake-up.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.spec.poll_interval = every;
        self
    }
}

/// A claim under way, in a task of its own.
type Claiming = tokio::task::JoinHandle<Result<Vec<ClaimedJob>, StoreError>>;

/// The apalis backend: a worker's source of Hangar jobs (see the crate docs).
pub struct HangarBackend<Args> {
    shared: Arc<Shared>,
    outcomes: Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>>,
    worker_id: Option<String>,
    /// Stops the background tasks when the backend is dropped (a crashed worker).
    _guard: DropGuard,
    buffer: VecDeque<Task<Args>>,
    fetch: Option<Claiming>,
    idle: Option<BoxFuture<'static, ()>>,
    close: Option<BoxFuture<'static, ()>>,
    backoff: Backoff,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> HangarBackend<Args> {
    /// A backend on `store` (migrated) for `config`'s queue.
    pub fn new(store: Store, config: HangarConfig) -> Self {
        let worker_id = config.worker_id.clone();
        let (shared, outcomes) = Shared::new(store, config.spec);
        let guard = shared.stop.clone().drop_guard();
        HangarBackend {
            shared,
            outcomes: Some(outcomes),
            worker_id,
            _guard: guard,
            buffer: VecDeque::new(),
            fetch: None,
            idle: None,
            close: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            _args: PhantomData,
        }
    }

    /// Starts the background tasks on the first poll (inside the worker's runtime), with the
    /// worker's name in the worker id.
    fn start(&mut self, worker: &WorkerContext) {
        let Some(outcomes) = self.outcomes.take() else {
            return;
        };
        let id = self
            .worker_id
            .clone()
            .unwrap_or_else(|| format!("apalis:{}:{}", worker.name(), std::process::id()));
        self.shared.set_worker_id(id);
        self.shared.start(outcomes);
    }

    /// Turns claimed jobs into tasks; those that cannot run here fail at once.
    fn accept(&mut self, jobs: Vec<ClaimedJob>)
    where
        Args: DeserializeOwned,
    {
        self.shared.hold(&jobs);
        let kinds = &self.shared.spec.kinds;
        for job in jobs {
            let job = Arc::new(job);
            if !kinds.is_empty() && !kinds.contains(&job.kind) {
                let message = format!(
                    "no apalis handler for kind '{}' on queue '{}'",
                    job.kind, self.shared.spec.queue
                );
                let failure = JobFailure::new(ErrorClass::Client, message);
                self.shared.report(Outcome::Failed(job, failure));
                continue;
            }
            match serde_json::from_value::<Args>(job.args.clone()) {
                Ok(args) => self.buffer.push_back(task_of(args, job, &self.shared)),
                Err(error) => {
                    let message = format!("the args do not decode: {error}");
                    let failure = JobFailure::new(ErrorClass::Client, message);
                    self.shared.report(Outcome::Failed(job, failure));
                }
            }
        }
    }

    /// Waits for a wake-up of the queue or the poll tick.
    fn idle_wait(&self, after: Option<Duration>) -> BoxFuture<'static, ()> {
        let notify = self.shared.store.wakeups().queue(&self.shared.spec.queue);
        let tick = after.unwrap_or(self.shared.spec.poll_interval);
        async move {
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
        .boxed()
    }
}

/// The apalis task of a claimed job: id, attempt, budget, priority and queue from the row,
/// and the claim itself as [`HangarJob`] data.
fn task_of<Args>(args: Args, job: Arc<ClaimedJob>, shared: &Shared) -> Task<Args> {
    TaskBuilder::new(args)
        .task_id(TaskId::from_int(
            u64::try_from(job.id.0).unwrap_or_default(),
        ))
        .attempt(usize::try_from(job.attempt).unwrap_or_default())
        .max_attempts(usize::try_from(job.max_attempts).unwrap_or_default())
        .priority(usize::try_from(job.priority.max(0)).unwrap_or_default())
        .queue(shared.spec.queue.as_str().into())
        .data(HangarJob(job))
        .build()
}

impl<Args: DeserializeOwned> HangarBackend<Args> {
    /// Picks up the claim under way, if it has come back.
    fn poll_fetch(&mut self, cx: &mut Context<'_>) {
        let Some(fetch) = &mut self.fetch else {
            return;
        };
        let Poll::Ready(joined) = fetch.poll_unpin(cx) else {
            return;
        };
        self.fetch = None;
        let claimed = joined.unwrap_or_else(|error| {
            Err(StoreError::Corrupt {
                table: "hangar_jobs",
                detail: format!("the claim task ended: {error}"),
            })
        });
        match claimed {
            Ok(jobs) if jobs.is_empty() => {
                self.backoff.reset();
                self.idle = Some(self.idle_wait(None));
            }
            Ok(jobs) => {
                self.backoff.reset();
                self.accept(jobs);
            }
            Err(error) => {
                // A database that is briefly away must not end the worker: try again.
                tracing::warn!(%error, queue = %self.shared.spec.queue, "claim failed; retrying");
                let delay = self.backoff.next_delay();
                self.idle = Some(self.idle_wait(Some(delay)));
            }
        }
    }

    /// Starts a claim for the room there is (at most `batch_size`), as its own task so it
    /// runs while the worker's tasks do.
    fn start_fetch(&mut self, room: usize) {
        let store = self.shared.store.clone();
        let (queue, lease) = (self.shared.spec.queue.clone(), self.shared.spec.lease);
        let worker = self.shared.worker_id().to_owned();
        let limit = room.min(self.shared.spec.batch_size.max(1));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.fetch = Some(tokio::spawn(async move {
            store.claim(&queue, &worker, limit, lease).await
        }));
    }

    /// Claims ahead while the buffer runs low (as the native pool's prefetch): when no claim
    /// is under way, the last one found work, and a quarter of the hand is free.
    fn prefetch(&mut self) {
        let hand = self.shared.spec.concurrency + self.shared.spec.prefetch;
        let room = self.shared.room();
        if self.fetch.is_none() && self.idle.is_none() && room > 0 && room >= hand / 4 {
            self.start_fetch(room);
        }
    }
}

impl<Args: DeserializeOwned> Backend for HangarBackend<Args> {
    type Task = Task<Args>;
    type Error = StoreError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), StoreError>> {
        self.start(worker);
        self.poll_fetch(cx);
        if self.shared.can_start(cx.waker()) {
            Poll::Ready(Ok(()))
        } else {
            self.prefetch();
            Poll::Pending
        }
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Args>, StoreError>>> {
        loop {
            self.poll_fetch(cx);
            if let Some(task) = self.buffer.pop_front() {
                self.shared.started();
                self.prefetch();
                return Poll::Ready(Some(Ok(task)));
            }
            if self.fetch.is_some() {
                // Polled above: its task wakes this worker when it comes back.
                return Poll::Pending;
            }
            if let Some(idle) = &mut self.idle {
                futures_util::ready!(idle.poll_unpin(cx));
                self.idle = None;
            }
            let room = self.shared.room();
            if room == 0 {
                if self.shared.wait_for_room(cx.waker()) {
                    continue;
                }
                return Poll::Pending;
            }
            self.start_fetch(room);
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), StoreError>> {
        if self.close.is_none() {
            let fetch = self.fetch.take();
            let buffered: Vec<(JobId, i64)> = self
                .buffer
                .drain(..)
                .filter_map(|task| {
                    let job = task.ctx().data().get::<HangarJob>()?;
                    Some((job.0.id, job.0.lease_token))
                })
                .collect();
            self.close = Some(close(self.shared.clone(), fetch, buffered).boxed());
        }
        match self.close.as_mut().map(|close| close.poll_unpin(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Graceful close: hands back the jobs claimed but not started (including those of a claim
/// still under way), waits up to [`FLUSH_TIMEOUT`] for the last results to be written, then
/// stops the background tasks.
async fn close(shared: Arc<Shared>, fetch: Option<Claiming>, mut leases: Vec<(JobId, i64)>) {
    if let Some(fetch) = fetch
        && let Ok(Ok(jobs)) = fetch.await
    {
        leases.extend(jobs.iter().map(|job| (job.id, job.lease_token)));
    }
    if !leases.is_empty() {
        match shared.store.release(&leases).await {
            Ok(n) => tracing::info!(handed_back = n, "unstarted jobs handed back"),
            Err(error) => tracing::warn!(%error, "hand-back failed; the leases will run out"),
        }
        shared.let_go(leases.iter().map(|(id, _)| *id));
    }
    let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
    while shared.held() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shared.stop.cancel();
    shared.forget_process().await;
}

impl<Args> BackendConfig for HangarBackend<Args> {
    type Args = Args;
    type Id = JobId;
    type Kind = Ephemeral;
    type Config = PoolSpec;
    type Layer = HangarLayer;

    fn config(&self) -> &PoolSpec {
        &self.shared.spec
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> HangarLayer {
        HangarLayer {
            shared: self.shared.clone(),
        }
    }
}
