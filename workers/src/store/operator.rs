//! Operator actions on jobs (besides the cancel, in `cancel.rs`): retrying a job, and
//! deleting a whole queue (benchmarks clean up their own queue with it).

use super::rows::now_ms;
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{Job, JobId};

impl Store {
    /// Makes a finished or waiting job run again now, with room for one more failure.
    pub async fn retry_job(&self, id: JobId) -> Result<Job, StoreError> {
        let rows = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'available', run_at = now(), updated_at = now(), \
                     finalized_at = NULL, budget_from_attempt = attempt, \
                     budget_failures = 0, snoozes = 0, timeout_failures = 0, \
                     server_failures = 0, internal_failures = 0, auth_failures = 0 \
                 WHERE id = $1 \
                   AND state IN ('scheduled', 'retryable', 'completed', 'failed', 'cancelled')",
            )
            .bind(id.0)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'available', run_at = ?2, updated_at = ?2, \
                     finalized_at = NULL, budget_from_attempt = attempt, \
                     budget_failures = 0, snoozes = 0, timeout_failures = 0, \
                     server_failures = 0, internal_failures = 0, auth_failures = 0 \
                 WHERE id = ?1 \
                   AND state IN ('scheduled', 'retryable', 'completed', 'failed', 'cancelled')",
            )
            .bind(id.0)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        let job = self.after_transition(id, rows, "retry").await?;
        self.wakeups().wake(&job.queue);
        Ok(job)
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
