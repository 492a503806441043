//! The pool runtime: runs one [`PoolSpec`] against the store until shutdown.
//!
//! Six parts per pool. The **producer** (`pool/producer.rs`) claims as many jobs as there
//! is room in hand (`concurrency + prefetch`, at most `batch_size` a claim; `FOR UPDATE SKIP
//! LOCKED LIMIT n`) and queues them, leased, for the dispatcher; when a claim comes back
//! short it sleeps until a wake-up (NOTIFY or an in-process enqueue), the next `run_at`, or
//! the poll tick. The
//! **dispatcher** starts a queued job whenever one of `concurrency` slots is free. The
//! **completer** ([`completer`]) writes successes in batches, fenced by lease token. The
//! **heartbeat** ([`heartbeat`]) renews the leases of every job in hand, until its result is
//! written, and stops attempts whose lease is gone or could not be renewed in time. The
//! **rescuer** ([`rescuer`]) retries jobs of dead workers (expired leases); the **pruner**
//! ([`pruner`]) deletes the queue's completed jobs past retention. Each background service
//! has a `run_once` that returns what it did and a loop around it that sleeps by the result
//! (busy: again at once; idle: until a wake-up or its tick) and logs only when something
//! changed.
//!
//! Shutdown: the producer and dispatcher stop; running attempts get `shutdown_grace` to
//! finish; the rest, and the jobs still queued, are handed back (available again, attempt not
//! counted); the completer flushes what it holds. Writing those last results and hand-backs
//! takes at most [`FLUSH_TIMEOUT`], even with the database down: what could not be written is
//! logged with the job ids, and their leases run out so another worker rescues them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error_class::ErrorClass;
pub use crate::failure::{decide_failure, failure_record};
use crate::job::{ClaimedJob, JobId};
use crate::kinds::{JobFailure, Registry};
use crate::pool_config::PoolSpec;
use crate::refresher::TokenRefresher;
use crate::store::{Completion, Store, StoreError};

pub mod completer;
pub mod heartbeat;
pub mod producer;
pub mod pruner;
mod rescuer;
mod shutdown;

use completer::{Completer, Finished};
use heartbeat::Heartbeat;
use producer::{Producer, Ready};
use pruner::Pruner;
use rescuer::Rescuer;

/// How long shutdown waits, after the grace period, to write the last completions and hand
/// back the unfinished jobs; the database may be down, and the lease covers the rest.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a pool needs besides its spec.
#[derive(Clone)]
pub struct PoolDeps {
    /// The job store.
    pub store: Store,
    /// The handlers of this process.
    pub registry: Arc<Registry>,
    /// Refreshes credentials after a 401.
    pub refresher: Arc<dyn TokenRefresher>,
    /// This process's name in leases and attempt rows (host:pid).
    pub worker_id: String,
}

/// Counts of one maintenance pass, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceCounts {
    /// Jobs of dead workers made runnable again (or failed when out of budget).
    pub rescued: u64,
    /// Completed jobs deleted.
    pub pruned: u64,
}

/// A job this pool holds a lease on, from its claim until its result is written.
struct Held {
    /// The lease token of the claim.
    lease_token: i64,
    /// Stops the attempt (lease lost, or not renewed in time).
    cancel: CancellationToken,
    /// Until when the lease is surely held: the claim or last renewal, plus the lease.
    lease_until: tokio::time::Instant,
    /// The attempt has ended and its result is being written; the lease is still renewed.
    finished: bool,
}

/// The jobs a pool holds a lease on, from their claim until their result is written: what
/// the producer fills, the heartbeat renews, the completer and the attempts empty, and
/// shutdown hands back. Cloning shares it.
#[derive(Clone, Default)]
pub struct Hand(Arc<Mutex<HashMap<JobId, Held>>>);

impl Hand {
    /// An empty hand.
    pub fn new() -> Hand {
        Hand::default()
    }

    /// The leases, locked (a panic elsewhere does not make them unreadable).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Held>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether job `id` is held.
    pub fn holds(&self, id: JobId) -> bool {
        self.lock().contains_key(&id)
    }

    /// The jobs held, in id order.
    pub fn ids(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// The pool's hand (the old name inside the pool).
type Running = Hand;

/// Job ids for a log line: `12, 13, 20`.
fn id_list(ids: &[JobId]) -> String {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.join(", ")
}

/// Sets the `finished` mark of `id` (its result is on the way to the store).
fn mark_finished(running: &Running, id: JobId, lease_token: i64) {
    let mut running = running.lock();
    if let Some(held) = running.get_mut(&id)
        && held.lease_token == lease_token
    {
        held.finished = true;
    }
}

/// One pool, ready to run.
pub struct Pool {
    spec: Arc<PoolSpec>,
    deps: PoolDeps,
    running: Running,
}

impl Pool {
    /// A pool for `spec`.
    pub fn new(spec: PoolSpec, deps: PoolDeps) -> Self {
        Pool {
            spec: Arc::new(spec),
            deps,
            running: Hand::new(),
        }
    }

    /// Runs until `shutdown` is cancelled, then drains as the module doc says.
    pub async fn run(self, shutdown: CancellationToken) {
        let (done_tx, done_rx) = mpsc::channel::<Finished>(self.spec.batch_size * 4);
        let stop_background = CancellationToken::new();
        let completer = Completer::new(
            self.deps.store.clone(),
            self.running.clone(),
            self.spec.batch_size,
            &self.spec.queue,
        );
        let mut completer = tokio::spawn(completer.run(done_rx));
        let heartbeat = Heartbeat::new(
            self.deps.store.clone(),
            self.running.clone(),
            self.spec.lease,
        );
        let heartbeat = tokio::spawn(heartbeat.run(stop_background.clone()));
        let rescuer = tokio::spawn(self.rescuer().run(stop_background.clone()));
        let pruner = tokio::spawn(self.pruner().run(stop_background.clone()));

        // Claimed jobs wait in `ready` (leased and heartbeated) until a slot frees up. At most
        // `concurrency + prefetch` jobs are in hand, so a claim can fill a whole batch even
        // while every slot is busy, without taking more than a pool can start soon.
        let in_hand = Arc::new(Semaphore::new(self.spec.concurrency + self.spec.prefetch));
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let producer = Producer::new(
            self.spec.clone(),
            self.deps.clone(),
            self.running.clone(),
            in_hand,
            ready_tx,
        );
        let mut producer = tokio::spawn(producer.run(shutdown.clone()));
        let mut attempts = JoinSet::new();
        self.dispatch(&mut attempts, ready_rx, done_tx, &shutdown)
            .await;

        // Drain: finish within the grace period, then hand back what is left.
        let grace = tokio::time::sleep(self.spec.shutdown_grace);
        tokio::pin!(grace);
        while !attempts.is_empty() {
            tokio::select! {
                _ = attempts.join_next() => {}
                _ = &mut grace => break,
            }
        }
        attempts.abort_all();
        while attempts.join_next().await.is_some() {}
        // From here on every wait is bounded: the database may be down.
        let flush_end = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        if tokio::time::timeout_at(flush_end, &mut producer)
            .await
            .is_err()
        {
            // A claim that commits after this is not in hand: its lease runs out.
            producer.abort();
        }
        self.hand_back(flush_end).await;
        // The completer ends once every sender (the attempts' clones) is gone.
        if tokio::time::timeout_at(flush_end, &mut completer)
            .await
            .is_err()
        {
            completer.abort();
        }
        stop_background.cancel();
        for task in [heartbeat, rescuer, pruner] {
            task.abort();
            let _ = task.await;
        }
        self.log_unwritten();
    }

    /// The rescuer of this pool's queue.
    fn rescuer(&self) -> Rescuer {
        Rescuer {
            spec: self.spec.clone(),
            deps: self.deps.clone(),
        }
    }

    /// The pruner of this pool's queue, with the pool's retention; its lease names this
    /// process and pool.
    fn pruner(&self) -> Pruner {
        let every = (self.spec.lease / 3).max(Duration::from_millis(500));
        Pruner::new(
            self.deps.store.clone(),
            &self.spec.queue,
            self.spec.retention,
            &format!("{}/{}", self.deps.worker_id, self.spec.name),
        )
        .every(every)
        .lease(self.spec.lease.max(every * 3))
    }

    /// Starts claimed jobs as slots free up, until shutdown.
    async fn dispatch(
        &self,
        attempts: &mut JoinSet<()>,
        mut ready: mpsc::UnboundedReceiver<Ready>,
        done_tx: mpsc::Sender<Finished>,
        shutdown: &CancellationToken,
    ) {
        let slots = Arc::new(Semaphore::new(self.spec.concurrency));
        loop {
            // Reap finished attempts so the set does not grow.
            while attempts.try_join_next().is_some() {}
            let slot = tokio::select! {
                _ = shutdown.cancelled() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let (job, cancel, in_hand) = tokio::select! {
                _ = shutdown.cancelled() => return,
                ready = ready.recv() => match ready {
                    Some(ready) => ready,
                    None => return,
                },
            };
            let attempt = Attempt {
                spec: self.spec.clone(),
                deps: self.deps.clone(),
                running: self.running.clone(),
                done_tx: done_tx.clone(),
            };
            // Every line the attempt logs (its handler's, its failure's) carries the job's
            // fields: the JSON logs of `hangar` put them under "span".
            let span = tracing::info_span!(
                "job",
                job_id = job.id.0,
                kind = %job.kind,
                queue = %self.spec.queue,
                attempt = job.attempt,
                workspace = job.workspace_id.as_deref(),
            );
            attempts.spawn(
                async move {
                    attempt.run(job, cancel).await;
                    drop((slot, in_hand));
                }
                .instrument(span),
            );
        }
    }

    /// One rescue pass and one prune pass over this pool's queue.
    pub async fn maintain_once(&self) -> Result<MaintenanceCounts, StoreError> {
        Ok(MaintenanceCounts {
            rescued: self.rescuer().run_once().await?,
            pruned: self.pruner().run_once().await?.pruned,
        })
    }
}

/// One attempt of one job: run the handler, then report the result.
struct Attempt {
    spec: Arc<PoolSpec>,
    deps: PoolDeps,
    running: Running,
    done_tx: mpsc::Sender<Finished>,
}

enum Outcome {
    Succeeded,
    Failed(JobFailure),
    Stopped,
}

impl Attempt {
    async fn run(self, job: ClaimedJob, cancel: CancellationToken) {
        let queue = self.spec.queue.clone();
        let start_lag = (Utc::now() - job.run_at).to_std().unwrap_or_default();
        metrics::histogram!("hangar_job_start_lag_seconds", "queue" => queue.clone())
            .record(start_lag.as_secs_f64());
        let started = Instant::now();
        let outcome = self.execute(&job, &cancel).await;
        let elapsed = started.elapsed();
        // The job stays in hand, its lease renewed, until its result is written.
        mark_finished(&self.running, job.id, job.lease_token);
        metrics::histogram!("hangar_attempt_duration_seconds", "queue" => queue.clone(), "kind" => job.kind.clone())
            .record(elapsed.as_secs_f64());
        match outcome {
            Outcome::Succeeded => {
                let completion = Completion {
                    id: job.id,
                    lease_token: job.lease_token,
                    attempt: job.attempt,
                    finished_at: Utc::now(),
                };
                let write = self
                    .deps
                    .registry
                    .get(&job.kind)
                    .and_then(|handler| handler.take_completion_write(job.id));
                // The completer only stops after every sender is gone, so this cannot fail
                // while the attempt runs; if it did, the lease expires and the job reruns.
                // The completer takes the job out of hand once it is written.
                let _ = self.done_tx.send(Finished { completion, write }).await;
            }
            Outcome::Failed(failure) => {
                self.fail(&job, failure).await;
                self.release_hold(&job);
            }
            Outcome::Stopped => {
                self.release_hold(&job);
                metrics::counter!("hangar_jobs_total", "queue" => queue, "outcome" => "stopped")
                    .increment(1);
            }
        }
    }

    /// Takes `id` out of hand: its result is written, or it was stopped.
    /// Only this claim's: a handler that put its job back may see it claimed again (woken)
    /// before this attempt ends, and that claim's hold is not this one's to drop.
    fn release_hold(&self, job: &ClaimedJob) {
        let mut running = self.running.lock();
        if running
            .get(&job.id)
            .is_some_and(|held| held.lease_token == job.lease_token)
        {
            running.remove(&job.id);
        }
    }

    async fn execute(&self, job: &ClaimedJob, cancel: &CancellationToken) -> Outcome {
        if cancel.is_cancelled() {
            return Outcome::Stopped; // Cancelled or rescued while it waited for a slot.
        }
        let Some(handler) = self.deps.registry.get(&job.kind) else {
            return Outcome::Failed(JobFailure::new(
                ErrorClass::Internal,
                format!("no handler for kind '{}' in this worker", job.kind),
            ));
        };
        // A panic in the handler becomes a failed attempt, not a dead worker.
        let run = AssertUnwindSafe(handler.run(job.clone())).catch_unwind();
        let result = tokio::select! {
            result = run => result,
            _ = tokio::time::sleep(self.spec.timeout) => {
                return Outcome::Failed(JobFailure::new(
                    ErrorClass::Timeout,
                    format!("attempt exceeded the pool timeout of {} ms", self.spec.timeout.as_millis()),
                ));
            }
            _ = cancel.cancelled() => return Outcome::Stopped,
        };
        match result {
            Ok(Ok(())) => Outcome::Succeeded,
            Ok(Err(failure)) => Outcome::Failed(failure),
            Err(_panic) => Outcome::Failed(JobFailure::new(
                ErrorClass::Internal,
                "the handler panicked",
            )),
        }
    }

    async fn fail(&self, job: &ClaimedJob, failure: JobFailure) {
        crate::failure::handle(&self.spec, &self.deps, job, failure).await;
    }
}
