//! The end of a pool's shutdown, after the grace period: hand back the unfinished jobs and
//! say which jobs are left without a written result. Both are bounded by the pool's flush
//! deadline ([`super::FLUSH_TIMEOUT`]): the database may be down, and then the leases of
//! those jobs run out and another worker rescues them.

use super::{Pool, id_list};
use crate::job::JobId;

impl Pool {
    /// Hands the unfinished jobs in hand back (available again, attempt not counted), giving
    /// up at `deadline`.
    pub(super) async fn hand_back(&self, deadline: tokio::time::Instant) {
        let leftover: Vec<(JobId, i64)> = {
            let running = self.running.lock();
            running
                .iter()
                .filter(|(_, held)| !held.finished)
                .map(|(id, held)| (*id, held.lease_token))
                .collect()
        };
        if leftover.is_empty() {
            return;
        }
        let released = tokio::time::timeout_at(deadline, self.deps.store.release(&leftover)).await;
        match released {
            Ok(Ok(n)) => {
                tracing::info!(pool = %self.spec.name, released = n, "handed unfinished jobs back");
                let mut running = self.running.lock();
                for (id, _) in &leftover {
                    running.remove(id);
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(pool = %self.spec.name, %error, "could not hand jobs back; their leases will expire")
            }
            Err(_) => {
                tracing::warn!(pool = %self.spec.name, "handing jobs back timed out; their leases will expire")
            }
        }
    }

    /// Logs, with their ids, the jobs still in hand at exit: results not written (the
    /// database was unreachable) and jobs not handed back.
    pub(super) fn log_unwritten(&self) {
        let unwritten: Vec<JobId> = {
            let running = self.running.lock();
            running.keys().copied().collect()
        };
        if !unwritten.is_empty() {
            tracing::error!(
                pool = %self.spec.name,
                jobs = %id_list(&unwritten),
                "could not write these jobs' results or hand them back before exit; \
                 their leases will expire and the rescuer will run them again"
            );
        }
    }
}
