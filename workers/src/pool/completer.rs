//! The completer: writes a pool's successes in batches. It waits for one completion, takes
//! whatever else has queued (up to `batch_size`) and writes them in one statement, fenced by
//! lease token. A failed write is retried with backoff; the jobs stay in hand meanwhile, so
//! the heartbeat keeps their leases alive and no rescuer runs a job that succeeded. A job
//! leaves the pool's hands once its completion is written (or rejected by the fence).
//!
//! Shutdown: it ends when every sender is gone and the queue is written; the pool waits for
//! that at most its flush timeout, then aborts it and logs the ids still in hand.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Running;
use crate::backoff::Backoff;
use crate::store::{Completion, Store};

/// Writes completions from `rx` until every sender is gone.
pub(super) async fn run(
    store: Store,
    running: Running,
    mut rx: mpsc::Receiver<Completion>,
    batch: usize,
) {
    let mut buffer = Vec::with_capacity(batch);
    while rx.recv_many(&mut buffer, batch).await > 0 {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match store.complete(&buffer).await {
                Ok(rejected) => {
                    let accepted = buffer.len() - rejected.len();
                    metrics::counter!("hangar_jobs_total", "outcome" => "completed")
                        .increment(accepted as u64);
                    if !rejected.is_empty() {
                        metrics::counter!("hangar_stale_results_total")
                            .increment(rejected.len() as u64);
                        tracing::info!(?rejected, "completions rejected: leases were taken over");
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, jobs = buffer.len(), "writing completions failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        {
            let mut held = running.lock().unwrap_or_else(|e| e.into_inner());
            for done in &buffer {
                held.remove(&done.id);
            }
        }
        buffer.clear();
    }
}
