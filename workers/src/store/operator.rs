//! Operator actions on one job: retry (or run now), run again, cancel, each applied and
//! recorded by `job_actions.rs` as a chunk of one; and deleting a whole queue (benchmarks
//! clean up their own queue with it).

use super::job_actions::ChunkResult;
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{Job, JobId};
use crate::job_action::{Actor, JobAction};

/// How many jobs a one-job action changed (0 or 1).
fn changed(result: &ChunkResult) -> u64 {
    result
        .counts
        .iter()
        .filter(|(_, changed, _)| *changed)
        .map(|(_, _, n)| n)
        .sum()
}

impl Store {
    /// Makes a failed or cancelled job run again now (a waiting one, `scheduled` or
    /// `retryable`, runs now instead of later), with a fresh retry budget; recorded for
    /// `actor`. A completed job is a conflict: running it again is [`Store::run_again_job`].
    pub async fn retry_job(&self, id: JobId, actor: &Actor) -> Result<Job, StoreError> {
        let result = self
            .act_on_chunk(
                &[JobAction::Retry, JobAction::RunNow],
                &[id.0],
                None,
                actor,
                None,
            )
            .await?;
        self.after_transition(id, changed(&result), "retry").await
    }

    /// Queues a completed job once more, with a fresh retry budget; its attempts stay (the
    /// successful one is written to the history first). Recorded for `actor`.
    pub async fn run_again_job(&self, id: JobId, actor: &Actor) -> Result<Job, StoreError> {
        let result = self
            .act_on_chunk(&[JobAction::RunAgain], &[id.0], None, actor, None)
            .await?;
        self.after_transition(id, changed(&result), "run again")
            .await
    }

    /// Cancels a job that has not finished; a running one stops at its next heartbeat, and
    /// its attempt is recorded as cancelled (`cancel.rs`). Recorded for `actor`.
    pub async fn cancel_job(&self, id: JobId, actor: &Actor) -> Result<Job, StoreError> {
        let result = self
            .act_on_chunk(&[JobAction::Cancel], &[id.0], None, actor, None)
            .await?;
        self.after_transition(id, changed(&result), "cancel").await
    }

    /// The job after an operator action that changed `rows` rows, or why it did not apply.
    pub(super) async fn after_transition(
        &self,
        id: JobId,
        rows: u64,
        action: &'static str,
    ) -> Result<Job, StoreError> {
        let job = self.job(id).await?;
        if rows == 0 {
            return Err(StoreError::JobConflict {
                id,
                state: job.state,
                action,
            });
        }
        Ok(job)
    }

    /// Deletes every job of `queue` (benchmarks clean up their own queue with it).
    pub async fn delete_queue(&self, queue: &str) -> Result<u64, StoreError> {
        let sql = "DELETE FROM hangar_jobs WHERE queue = $1";
        let deleted = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(queue)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(queue)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(deleted)
    }
}
