//! The retention of applied inbound changes (`hangar_sync_changes`: what went to
//! `{prefix}:changes` and what `GET …/sync-runs/{id}/changes` returns): deleted
//! [`DEFAULT_RETENTION`] (30 days; the `sync_changes_retain_ms` setting) after the run that
//! applied them started, published or not. The runs stay (the audit trail keeps its counts).
//! It runs in `hangar serve`'s maintenance beside the webhook attempts' retention: one
//! process at a time (the engine's maintenance lease `prune:sync_changes`), at most 10
//! batches of 1 000 rows a pass, a pass a minute.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::store::Store;
use tokio_util::sync::CancellationToken;

use crate::store::SyncStore;

/// How long applied changes are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const LEASE: &str = "prune:sync_changes";
const BATCH: i64 = 1_000;
const MAX_BATCHES: u32 = 10;

/// Deletes applied changes past their retention.
#[derive(Debug, Clone)]
pub struct ChangesPruner {
    store: Store,
    sync: SyncStore,
    retention: Duration,
    holder: String,
    every: Duration,
}

impl ChangesPruner {
    /// A pruner of `store`'s sync changes with the default retention, as `holder` (unique per
    /// process).
    pub fn new(store: Store, holder: &str) -> ChangesPruner {
        ChangesPruner {
            sync: SyncStore::new(store.database().clone()),
            store,
            retention: DEFAULT_RETENTION,
            holder: holder.to_owned(),
            every: Duration::from_secs(60),
        }
    }

    /// Keeps changes this long instead.
    pub fn retention(mut self, retention: Duration) -> ChangesPruner {
        self.retention = retention;
        self
    }

    /// One pass; returns how many changes it deleted (0 when another process holds the
    /// lease).
    pub async fn run_once(&self) -> Result<u64, String> {
        let before = Utc::now()
            - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let mut pruned = 0;
        for _ in 0..MAX_BATCHES {
            let held = self
                .store
                .take_maintenance_lease(LEASE, &self.holder, Duration::from_secs(120))
                .await
                .map_err(|e| e.to_string())?;
            if !held {
                break;
            }
            let n = self
                .sync
                .prune_changes(before, BATCH)
                .await
                .map_err(|e| e.to_string())?;
            pruned += n;
            if n < BATCH as u64 {
                break;
            }
        }
        if pruned > 0 {
            metrics::counter!("hangar_sync_changes_pruned_total").increment(pruned);
        }
        Ok(pruned)
    }

    /// A pass every minute until `stop` (the first one at once).
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.run_once().await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned sync changes past retention"),
                Err(error) => tracing::warn!(%error, "pruning sync changes failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
