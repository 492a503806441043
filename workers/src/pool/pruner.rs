//! The pruner: deletes a queue's completed jobs once they are older than the queue's
//! retention (the `retention_ms` of its pool), which also frees their idempotency keys.
//! Failed and cancelled jobs are kept for replay.
//!
//! One process at a time prunes a queue: before each batch the pruner takes or renews the
//! maintenance lease `prune:<queue>` (a row in `hangar_maintenance_leases`); while another
//! process holds it, a pass does nothing. Each statement deletes at most `batch` rows, and a
//! pass at most `max_batches` of them, so pruning a large backlog never holds long locks.
//! Rows pruned are counted in `hangar_jobs_pruned_total{queue}`. Once a pass it also deletes
//! the queue's per-minute counters and samples older than a week (`MINUTES_RETENTION`), and
//! once a minute it samples the queue's depth and lag (`hangar_queue_samples`): the lease
//! makes one process the sampler, and a minute that has its sample keeps it.
//!
//! Shutdown: its loop ends when the pool stops its background tasks; the lease expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneCounts {
    /// Whether this pruner held the queue's lease (false: another process prunes it).
    pub held: bool,
    /// Completed jobs deleted.
    pub pruned: u64,
}

/// The pruner of one queue.
#[derive(Debug, Clone)]
pub struct Pruner {
    store: Store,
    queue: String,
    retention: Duration,
    holder: String,
    lease: Duration,
    batch: i64,
    max_batches: u32,
    every: Duration,
    /// The minute (minutes since the Unix epoch) this pruner last sampled the queue in.
    sampled: Arc<AtomicI64>,
}

impl Pruner {
    /// Prunes `queue` with `retention`, as `holder` (unique per process and pool). Defaults:
    /// a lease of 30 s, batches of 1 000 rows, at most 10 batches a pass, a pass every 5 s.
    pub fn new(store: Store, queue: &str, retention: Duration, holder: &str) -> Pruner {
        Pruner {
            store,
            queue: queue.to_owned(),
            retention,
            holder: holder.to_owned(),
            lease: Duration::from_secs(30),
            batch: 1_000,
            max_batches: 10,
            every: Duration::from_secs(5),
            sampled: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Rows deleted by one statement (at least 1).
    pub fn batch(mut self, rows: i64) -> Pruner {
        self.batch = rows.max(1);
        self
    }

    /// How long the queue's lease lasts without renewal (another process takes over after).
    pub fn lease(mut self, lease: Duration) -> Pruner {
        self.lease = lease;
        self
    }

    /// Time between passes of [`Pruner::run`].
    pub fn every(mut self, every: Duration) -> Pruner {
        self.every = every;
        self
    }

    /// The lease's name: one per queue, whatever pool or process prunes it.
    fn lease_name(&self) -> String {
        format!("prune:{}", self.queue)
    }

    /// One pass: while this pruner holds the queue's lease, deletes batches until one comes
    /// back short or the pass has done `max_batches`.
    pub async fn run_once(&self) -> Result<PruneCounts, StoreError> {
        let mut counts = PruneCounts::default();
        let name = self.lease_name();
        for _ in 0..self.max_batches {
            if !self
                .store
                .take_maintenance_lease(&name, &self.holder, self.lease)
                .await?
            {
                break;
            }
            if !counts.held {
                // The queue's per-minute counters past their week, once a pass.
                self.store
                    .prune_queue_minutes(&self.queue, crate::store::MINUTES_RETENTION)
                    .await?;
                self.store
                    .prune_queue_samples(&self.queue, crate::store::MINUTES_RETENTION)
                    .await?;
                self.sample().await?;
            }
            counts.held = true;
            let pruned = self
                .store
                .prune_completed(&self.queue, self.retention, self.batch)
                .await?;
            counts.pruned += pruned;
            metrics::counter!("hangar_jobs_pruned_total", "queue" => self.queue.clone())
                .increment(pruned);
            if pruned < self.batch as u64 {
                break;
            }
        }
        Ok(counts)
    }

    /// Samples the queue's depth and lag once per minute (the first pass of a minute that
    /// holds the lease; the store keeps a minute's first sample).
    async fn sample(&self) -> Result<(), StoreError> {
        let minute = chrono::Utc::now().timestamp_millis().div_euclid(60_000);
        if self.sampled.load(Ordering::Relaxed) == minute {
            return Ok(());
        }
        self.store.sample_queue(&self.queue).await?;
        self.sampled.store(minute, Ordering::Relaxed);
        Ok(())
    }

    /// A pass every `every` until `stop`; a pass that did all its batches goes again at once.
    /// Logs what it pruned, and a failing pass once until one works again.
    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        let mut busy = false;
        loop {
            if !busy {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.every) => {}
                }
            }
            busy = false;
            match self.run_once().await {
                Ok(counts) => {
                    failing = false;
                    busy = counts.pruned >= self.batch as u64 * u64::from(self.max_batches);
                    if counts.pruned > 0 {
                        tracing::info!(queue = %self.queue, pruned = counts.pruned, "pruned completed jobs past retention");
                    }
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(queue = %self.queue, %error, "pruning failed");
                }
                Err(_) => {}
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }
}
