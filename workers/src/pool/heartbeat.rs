//! The heartbeat: renews the leases of every job a pool holds (waiting for a slot, running,
//! or finished with its result not yet written) every third of the lease.
//!
//! It stops an attempt in two cases. The store says the lease is gone: an operator cancelled
//! the job or a rescuer took it over. Or this process could not renew the lease for longer
//! than the lease itself (the database is unreachable or too slow): from then on any other
//! worker may rescue the job, and running on would do the work twice. Finished attempts are
//! never stopped: their result is written, or rejected by the fence.
//!
//! [`Heartbeat::run_once`] is one renewal and returns what it did; the loop runs it every
//! third of the lease and logs a renewal that fails (each time: the leases are at stake) and
//! the first one that works again. How long a lease is surely held is measured on tokio's
//! monotonic clock (not the wall clock a [`crate::clock::Clock`] reads, which may jump), so a
//! test pauses and advances it.
//!
//! Shutdown: the pool stops it after the completer, so leases of unwritten results live on.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Hand, id_list};
use crate::job::JobId;
use crate::store::Store;

/// What one beat did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BeatCounts {
    /// Leases renewed.
    pub renewed: u64,
    /// Attempts stopped because their lease is gone (cancelled or rescued).
    pub lost: u64,
    /// Attempts stopped because their lease was not renewed in time.
    pub lapsed: u64,
    /// Whether the renewal failed or got no answer in time.
    pub failed: bool,
}

/// The heartbeat of one pool.
pub struct Heartbeat {
    store: Store,
    running: Hand,
    lease: Duration,
}

impl Heartbeat {
    /// A heartbeat renewing the leases in `hand` for `lease` each time.
    pub fn new(store: Store, hand: Hand, lease: Duration) -> Heartbeat {
        Heartbeat {
            store,
            running: hand,
            lease,
        }
    }

    /// Renews leases every `lease / 3` until `stop`; logs a failing renewal once, and its end.
    pub async fn run(self, stop: CancellationToken) {
        let period = self.lease / 3;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let counts = self.run_once(period).await;
            if failing && !counts.failed {
                tracing::info!(renewed = counts.renewed, "heartbeat renews leases again");
            }
            failing = counts.failed;
        }
    }

    /// One renewal of every lease in hand (given up after `wait`), then stops the attempts
    /// whose lease is gone or has not been renewed in time.
    pub async fn run_once(&self, wait: Duration) -> BeatCounts {
        beat_once(&self.store, &self.running, self.lease, wait).await
    }
}

/// One renewal of every lease in hand (given up after `wait`), then stops the attempts whose
/// lease is gone or has not been renewed in time.
async fn beat_once(store: &Store, running: &Hand, lease: Duration, wait: Duration) -> BeatCounts {
    let mut counts = BeatCounts::default();
    let held: Vec<(JobId, i64)> = {
        let running = running.lock();
        running
            .iter()
            .map(|(id, held)| (*id, held.lease_token))
            .collect()
    };
    if !held.is_empty() {
        // The database sets the new expiry after this moment: renewed leases last at least
        // until `sent + lease`.
        let sent = Instant::now();
        match tokio::time::timeout(wait, store.heartbeat(&held, lease)).await {
            Ok(Ok(still)) => {
                let still: HashSet<JobId> = still.into_iter().collect();
                let mut running = running.lock();
                for (id, _) in &held {
                    let Some(entry) = running.get_mut(id) else {
                        continue;
                    };
                    if still.contains(id) {
                        entry.lease_until = sent + lease;
                        counts.renewed += 1;
                    } else if !entry.finished {
                        tracing::info!(job = %id, "lease lost (cancelled or rescued): stopping the attempt");
                        entry.cancel.cancel();
                        counts.lost += 1;
                    }
                }
            }
            Ok(Err(error)) => {
                counts.failed = true;
                tracing::warn!(%error, jobs = held.len(), "heartbeat failed");
            }
            Err(_) => {
                counts.failed = true;
                tracing::warn!(
                    jobs = held.len(),
                    "heartbeat got no answer within {} ms",
                    wait.as_millis()
                );
            }
        }
    }
    let now = Instant::now();
    let lapsed: Vec<JobId> = {
        let running = running.lock();
        running
            .iter()
            .filter(|(_, h)| !h.finished && h.lease_until <= now && !h.cancel.is_cancelled())
            .map(|(id, h)| {
                h.cancel.cancel();
                *id
            })
            .collect()
    };
    counts.lapsed = lapsed.len() as u64;
    if !lapsed.is_empty() {
        tracing::error!(
            jobs = %id_list(&lapsed),
            "leases not renewed for longer than the lease (database unreachable?): stopping \
             these attempts; another worker will rescue them"
        );
    }
    counts
}
