//! The completer: writes a pool's successes in batches. [`Completer::run_once`] writes one
//! batch in one transaction, fenced by lease token, with what their handlers left to write
//! with them ([`Finished::write`]: written only for the jobs whose completion passes the
//! fence), and takes the written jobs out of the pool's hands. Its loop waits for one completion, takes whatever else has queued (up to
//! `batch_size`) and writes them; a failed write is retried with [`Backoff`] (the first
//! failure is logged, and the recovery), and the jobs stay in hand meanwhile, so the heartbeat
//! keeps their leases alive and no rescuer runs a job that succeeded.
//!
//! Shutdown: it ends when every sender is gone and the queue is written; the pool waits for
//! that at most its flush timeout, then aborts it and logs the ids still in hand.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Hand;
use crate::backoff::Backoff;
use crate::store::{Completion, CompletionWrite, Store, StoreError};

/// A success on its way to the completer: the completion, and what its handler left to be
/// written with it ([`crate::kinds::Handler::take_completion_write`]).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The completion.
    pub completion: Completion,
    /// Written in the completion's transaction if the completion is accepted.
    pub write: Option<CompletionWrite>,
}

/// What one batch write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompleteCounts {
    /// Completions written.
    pub completed: u64,
    /// Completions refused by the fence: another worker took the lease over.
    pub rejected: u64,
}

/// The completer of one pool.
pub struct Completer {
    store: Store,
    running: Hand,
    batch: usize,
    /// The pool's queue, the label of its metrics.
    queue: String,
}

impl Completer {
    /// A completer of `queue`'s jobs held in `hand`, writing at most `batch` a statement.
    pub fn new(store: Store, hand: Hand, batch: usize, queue: &str) -> Completer {
        Completer {
            store,
            running: hand,
            batch,
            queue: queue.to_owned(),
        }
    }

    /// Writes `batch` and takes its jobs out of hand.
    pub async fn run_once(&self, batch: &[Completion]) -> Result<CompleteCounts, StoreError> {
        self.run_once_writing(batch, &[]).await
    }

    /// Writes `batch` with `writes` (of its jobs whose completion is accepted) and takes its
    /// jobs out of hand.
    pub async fn run_once_writing(
        &self,
        batch: &[Completion],
        writes: &[CompletionWrite],
    ) -> Result<CompleteCounts, StoreError> {
        let rejected = self.store.complete_writing(batch, writes).await?;
        let counts = CompleteCounts {
            completed: (batch.len() - rejected.len()) as u64,
            rejected: rejected.len() as u64,
        };
        // The same labels as every other outcome (`failure::record`).
        metrics::counter!("hangar_jobs_total", "queue" => self.queue.clone(), "outcome" => "completed")
            .increment(counts.completed);
        if !rejected.is_empty() {
            metrics::counter!("hangar_stale_results_total", "queue" => self.queue.clone())
                .increment(counts.rejected);
            tracing::info!(?rejected, "completions rejected: leases were taken over");
        }
        let mut held = self.running.lock();
        for done in batch {
            held.remove(&done.id);
        }
        Ok(counts)
    }

    /// Writes completions from `rx` until every sender is gone.
    pub async fn run(self, mut rx: mpsc::Receiver<Finished>) {
        let mut buffer = Vec::with_capacity(self.batch);
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        while rx.recv_many(&mut buffer, self.batch).await > 0 {
            let done: Vec<Completion> = buffer.iter().map(|f| f.completion).collect();
            let writes: Vec<CompletionWrite> =
                buffer.iter_mut().filter_map(|f| f.write.take()).collect();
            loop {
                match self.run_once_writing(&done, &writes).await {
                    Ok(_) => {
                        if backoff.failures() > 0 {
                            tracing::info!(jobs = buffer.len(), "completions written again");
                        }
                        backoff.reset();
                        break;
                    }
                    Err(error) => {
                        if backoff.failures() == 0 {
                            tracing::warn!(%error, jobs = buffer.len(), "writing completions failed; retrying");
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
            buffer.clear();
        }
    }
}
