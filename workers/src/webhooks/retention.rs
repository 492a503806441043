//! The retention of attempt rows (request and response headers, response excerpts) and of
//! inbound provider pushes (raw body and headers, once processed): deleted
//! [`DEFAULT_RETENTION`] (30 days) after the attempt or the push, by one process at a time
//! (the maintenance lease `prune:webhook_attempts`), at most 10 batches of 1 000 rows of each
//! a pass, a pass a minute. The deliveries themselves stay (their state, attempt count, last
//! status). An inbound row is also what makes a repeated push a duplicate: a push older than
//! the retention would be taken again (Avinode retries for 48 h, Stripe's signatures expire
//! after 300 s; QuickBooks' have no time, so one replayed after 30 days is taken again).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// How long attempt rows are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const LEASE: &str = "prune:webhook_attempts";
const BATCH: i64 = 1_000;
const MAX_BATCHES: u32 = 10;

/// Deletes attempt rows and processed inbound rows past their retention.
#[derive(Debug, Clone)]
pub struct AttemptPruner {
    store: Store,
    retention: Duration,
    holder: String,
    every: Duration,
}

impl AttemptPruner {
    /// A pruner with the default retention, as `holder` (unique per process).
    pub fn new(store: Store, holder: &str) -> AttemptPruner {
        AttemptPruner {
            store,
            retention: DEFAULT_RETENTION,
            holder: holder.to_owned(),
            every: Duration::from_secs(60),
        }
    }

    /// Keeps attempt rows this long instead.
    pub fn retention(mut self, retention: Duration) -> AttemptPruner {
        self.retention = retention;
        self
    }

    /// One pass; returns how many rows it deleted, attempts and inbound pushes (0 when
    /// another process holds the lease).
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let before = Utc::now()
            - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let mut pruned = 0;
        for inbound in [false, true] {
            for _ in 0..MAX_BATCHES {
                if !self
                    .store
                    .take_maintenance_lease(LEASE, &self.holder, Duration::from_secs(120))
                    .await?
                {
                    return Ok(pruned);
                }
                let n = if inbound {
                    self.store.prune_inbound_events(before, BATCH).await?
                } else {
                    self.store.prune_webhook_attempts(before, BATCH).await?
                };
                pruned += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    /// A pass every minute until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.run_once().await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::info!(
                        pruned,
                        "pruned webhook attempts and inbound pushes past retention"
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "pruning webhook attempts or inbound pushes failed")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
