//! The heartbeat: renews the leases of every job a pool holds (waiting for a slot, running,
//! or finished with its result not yet written) every third of the lease.
//!
//! It stops an attempt in two cases. The store says the lease is gone: an operator cancelled
//! the job or a rescuer took it over. Or this process could not renew the lease for longer
//! than the lease itself (the database is unreachable or too slow): from then on any other
//! worker may rescue the job, and running on would do the work twice. Finished attempts are
//! never stopped: their result is written, or rejected by the fence.
//!
//! Shutdown: the pool stops it after the completer, so leases of unwritten results live on.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Running, id_list};
use crate::job::JobId;
use crate::store::Store;

/// Renews leases every `lease / 3` until `stop`.
pub(super) async fn run(store: Store, running: Running, lease: Duration, stop: CancellationToken) {
    let period = lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        beat_once(&store, &running, lease, period).await;
    }
}

/// One renewal of every lease in hand (given up after `wait`), then stops the attempts whose
/// lease is gone or has not been renewed in time.
async fn beat_once(store: &Store, running: &Running, lease: Duration, wait: Duration) {
    let held: Vec<(JobId, i64)> = {
        let running = running.lock().unwrap_or_else(|e| e.into_inner());
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
                let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
                for (id, _) in &held {
                    let Some(entry) = running.get_mut(id) else {
                        continue;
                    };
                    if still.contains(id) {
                        entry.lease_until = sent + lease;
                    } else if !entry.finished {
                        tracing::info!(job = %id, "lease lost (cancelled or rescued): stopping the attempt");
                        entry.cancel.cancel();
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, jobs = held.len(), "heartbeat failed"),
            Err(_) => tracing::warn!(
                jobs = held.len(),
                "heartbeat got no answer within {} ms",
                wait.as_millis()
            ),
        }
    }
    let now = Instant::now();
    let lapsed: Vec<JobId> = {
        let running = running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter(|(_, h)| !h.finished && h.lease_until <= now && !h.cancel.is_cancelled())
            .map(|(id, h)| {
                h.cancel.cancel();
                *id
            })
            .collect()
    };
    if !lapsed.is_empty() {
        tracing::error!(
            jobs = %id_list(&lapsed),
            "leases not renewed for longer than the lease (database unreachable?): stopping \
             these attempts; another worker will rescue them"
        );
    }
}
