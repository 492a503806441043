//! What a backend shares with its layer and its background tasks: the leases in hand, the
//! waker of a worker waiting for room, and the loops that keep Hangar's guarantees while the
//! apalis worker runs its tasks. The **writer** records results (successes in batches,
//! fenced by lease token; failures with the pool spec's retry decision), the **heartbeat**
//! renews every lease in hand, the **rescuer** gives the queue's expired leases the decision
//! of an `internal` failure, as the native pool's rescuer does.
//!
//! All of them stop with the backend's token: a graceful close cancels it after the last
//! results are written, and dropping the backend (a crashed worker) cancels it at once, so
//! its leases run out and another worker's rescuer takes the jobs over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use chrono::Utc;
use hangar_workers::backoff::Backoff;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::failure::{decide_failure, failure_record, log_decision};
use hangar_workers::job::{ClaimedJob, JobId};
use hangar_workers::kinds::JobFailure;
use hangar_workers::pool_config::PoolSpec;
use hangar_workers::store::{Completion, ProcessBeat, Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the worker records itself in the processes table (as `hangar worker` does: the
/// Workers page counts a process gone after three silent periods).
const PROCESS_BEAT: Duration = Duration::from_secs(10);

/// Most expired leases looked at in one rescue pass.
const RESCUE_PER_PASS: i64 = 500;

/// The result of one attempt, on its way to the store.
pub(crate) enum Outcome {
    /// The service returned `Ok`.
    Done(Arc<ClaimedJob>),
    /// The service returned an error (or the args did not decode).
    Failed(Arc<ClaimedJob>, JobFailure),
}

/// State shared by a backend, its layer and its background tasks.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) spec: PoolSpec,
    /// Stored as `leased_by` and on attempt rows (set when the worker starts).
    worker_id: std::sync::OnceLock<String>,
    /// Jobs claimed whose result is not written yet, with their lease tokens.
    held: Mutex<HashMap<JobId, i64>>,
    /// Tasks handed to the worker whose service has not returned yet.
    running: std::sync::atomic::AtomicUsize,
    /// The worker waiting for a free slot or room to claim.
    waker: Mutex<Option<Waker>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    pub(crate) stop: CancellationToken,
}

impl Shared {
    /// The shared state and the receiving end of the outcomes (for [`Shared::start`]).
    pub(crate) fn new(
        store: Store,
        spec: PoolSpec,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<Outcome>) {
        let (outcomes, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            store,
            spec,
            worker_id: std::sync::OnceLock::new(),
            held: Mutex::default(),
            running: std::sync::atomic::AtomicUsize::new(0),
            waker: Mutex::default(),
            outcomes,
            stop: CancellationToken::new(),
        };
        (Arc::new(shared), rx)
    }

    /// Starts the writer, heartbeat, rescuer and (on PostgreSQL) the LISTEN loop.
    pub(crate) fn start(self: &Arc<Shared>, outcomes: mpsc::UnboundedReceiver<Outcome>) {
        tokio::spawn(self.clone().write_loop(outcomes));
        tokio::spawn(self.clone().heartbeat_loop());
        tokio::spawn(self.clone().rescue_loop());
        tokio::spawn(self.clone().process_loop());
        let store = self.store.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move { store.listen(stop).await });
    }

    /// Names the worker (once; later calls keep the first name).
    pub(crate) fn set_worker_id(&self, id: String) {
        let _ = self.worker_id.set(id);
    }

    /// The worker's id, as stored in `leased_by` and on attempt rows.
    pub(crate) fn worker_id(&self) -> &str {
        self.worker_id.get().map_or("apalis", String::as_str)
    }

    /// How many jobs are in hand.
    pub(crate) fn held(&self) -> usize {
        self.lock_held().len()
    }

    /// Room to claim: `concurrency + prefetch` minus the jobs in hand (running, waiting in
    /// the backend's buffer, or with their result on its way to the store).
    pub(crate) fn room(&self) -> usize {
        (self.spec.concurrency + self.spec.prefetch).saturating_sub(self.held())
    }

    /// Registers `waker` for a freed slot or claim room; returns whether the worker may start
    /// another task now (checked after registering, so a slot freed meanwhile is not missed).
    pub(crate) fn can_start(&self, waker: &Waker) -> bool {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
        self.running.load(std::sync::atomic::Ordering::Acquire) < self.spec.concurrency
    }

    /// Registers `waker` for claim room; returns whether there is room now.
    pub(crate) fn wait_for_room(&self, waker: &Waker) -> bool {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
        self.room() > 0
    }

    /// A task goes to the worker.
    pub(crate) fn started(&self) {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A task's service returned: its slot is free.
    pub(crate) fn finished(&self) {
        self.running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }

    /// Takes jobs in hand (their leases are renewed from now on).
    pub(crate) fn hold(&self, jobs: &[ClaimedJob]) {
        let mut held = self.lock_held();
        for job in jobs {
            held.insert(job.id, job.lease_token);
        }
    }

    /// Lets jobs go (result written, handed back or lease lost) and wakes a waiting worker.
    pub(crate) fn let_go(&self, ids: impl IntoIterator<Item = JobId>) {
        {
            let mut held = self.lock_held();
            for id in ids {
                held.remove(&id);
            }
        }
        self.wake();
    }

    /// Queues an attempt's result for the writer.
    pub(crate) fn report(&self, outcome: Outcome) {
        if let Err(mpsc::error::SendError(outcome)) = self.outcomes.send(outcome) {
            // The writer is gone (the backend was dropped): the lease runs out and the
            // rescuer of another worker retries the job.
            let job = match &outcome {
                Outcome::Done(job) | Outcome::Failed(job, _) => job,
            };
            tracing::warn!(job_id = job.id.0, "result not written: the backend stopped");
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, i64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes results as they come: successes in batches of up to `batch_size`, failures
    /// one by one with their retry decision. Ends when the backend stops and every sender
    /// is gone or the stop token fires.
    async fn write_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return,
                outcome = rx.recv() => match outcome { Some(o) => o, None => return },
            };
            batch.push(first);
            while batch.len() < self.spec.batch_size.max(1) {
                match rx.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            self.write(std::mem::take(&mut batch)).await;
        }
    }

    async fn write(&self, batch: Vec<Outcome>) {
        let mut done = Vec::new();
        let mut ids = Vec::new();
        for outcome in batch {
            match outcome {
                Outcome::Done(job) => {
                    ids.push(job.id);
                    done.push(Completion {
                        id: job.id,
                        lease_token: job.lease_token,
                        attempt: job.attempt,
                        finished_at: Utc::now(),
                    });
                }
                Outcome::Failed(job, failure) => {
                    self.record_failure(&job, failure).await;
                    self.let_go([job.id]);
                }
            }
        }
        if !done.is_empty() {
            let written = self
                .persist("completions", || self.store.complete(&done))
                .await;
            if let Some(rejected) = written
                && !rejected.is_empty()
            {
                tracing::info!(?rejected, "results rejected: the leases were taken over");
            }
            self.let_go(ids);
        }
    }

    async fn record_failure(&self, job: &ClaimedJob, failure: JobFailure) {
        let decision = decide_failure(&self.spec, job, &failure, None);
        let record = failure_record(job, &failure, &decision, self.worker_id());
        match self
            .persist("a failure", || self.store.record_failure(&record))
            .await
        {
            Some(true) => log_decision(&self.spec.queue, job, &failure, &decision),
            Some(false) => {
                tracing::info!(
                    job_id = job.id.0,
                    "result rejected: the lease was taken over"
                )
            }
            None => {}
        }
    }

    /// Runs a store write, trying again while a lease lasts; `None` when it never worked
    /// (the leases then run out and the rescuer retries the jobs).
    async fn persist<T, F, Fut>(&self, what: &str, mut write: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + self.spec.lease;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match write().await {
                Ok(value) => return Some(value),
                Err(error) if Instant::now() < deadline => {
                    tracing::warn!(%error, "writing {what} failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => {
                    tracing::error!(%error, "could not write {what}; the rescuer will retry the jobs");
                    return None;
                }
            }
        }
    }

    /// Renews the leases in hand every third of the lease; jobs whose lease is gone
    /// (cancelled, or rescued after a stall) are let go: their result would be rejected.
    async fn heartbeat_loop(self: Arc<Self>) {
        let period = self.spec.lease / 3;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let leases: Vec<(JobId, i64)> =
                self.lock_held().iter().map(|(id, t)| (*id, *t)).collect();
            match self.store.heartbeat(&leases, self.spec.lease).await {
                Ok(kept) => {
                    let lost: Vec<JobId> = leases
                        .iter()
                        .map(|(id, _)| *id)
                        .filter(|id| !kept.contains(id))
                        .collect();
                    if !lost.is_empty() {
                        tracing::warn!(?lost, "leases lost: their results will be rejected");
                        self.let_go(lost);
                    }
                }
                Err(error) => tracing::warn!(%error, "lease heartbeat failed"),
            }
        }
    }

    /// Records this worker on the Workers page (command `apalis`, its queue's pool name)
    /// every [`PROCESS_BEAT`] until the backend stops.
    async fn process_loop(self: Arc<Self>) {
        let beat = ProcessBeat {
            id: self.worker_id().to_owned(),
            host: host_name(),
            pid: i64::from(std::process::id()),
            version: format!("apalis-hangar {}", env!("CARGO_PKG_VERSION")),
            command: "apalis".to_owned(),
            pools: vec![self.spec.name.clone()],
        };
        loop {
            if let Err(error) = self.store.heartbeat_process(&beat).await {
                tracing::debug!(%error, "cannot record the apalis worker's heartbeat");
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(PROCESS_BEAT) => {}
            }
        }
    }

    /// Removes this worker from the Workers page (graceful close).
    pub(crate) async fn forget_process(&self) {
        if let Err(error) = self.store.remove_process(self.worker_id()).await {
            tracing::debug!(%error, "cannot remove the apalis worker's process row");
        }
    }

    /// Rescues the queue's expired leases every third of the lease (at least 500 ms).
    async fn rescue_loop(self: Arc<Self>) {
        let period = (self.spec.lease / 3).max(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if let Err(error) = self.rescue_once().await {
                tracing::warn!(%error, "rescue failed");
            }
        }
    }

    async fn rescue_once(&self) -> Result<u64, StoreError> {
        let mut rescued = 0;
        let queue = &self.spec.queue;
        for expired in self.store.expired_leases(queue, RESCUE_PER_PASS).await? {
            let failure = JobFailure::new(
                ErrorClass::Internal,
                format!(
                    "lease expired: worker {} stopped heartbeating",
                    expired.leased_by.as_deref().unwrap_or("?")
                ),
            );
            let decision = decide_failure(&self.spec, &expired.job, &failure, None);
            let record = failure_record(&expired.job, &failure, &decision, self.worker_id());
            if self.store.rescue(&record, self.spec.lease).await? {
                log_decision(queue, &expired.job, &failure, &decision);
                rescued += 1;
                self.store.wakeups().wake(queue);
            }
        }
        Ok(rescued)
    }
}

/// The machine's name, as `hangar worker` reports it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}
