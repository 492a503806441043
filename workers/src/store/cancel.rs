//! Cancels. An operator's (one job or a bulk, applied by `job_actions.rs`): a job that was
//! running keeps its attempt: the attempt row is written with its start, the moment of the
//! cancel and the message [`CANCELLED`], in the transaction that cancels the job. The worker
//! learns of it at its next heartbeat and stops the attempt; its late result is rejected by
//! the lease fence. And the cancel of an integration's waiting jobs when it is disabled.

use chrono::Utc;

use super::{Store, StoreError};
use crate::db::Pool;

/// The message of a cancelled job and of the attempt a cancel interrupted.
pub const CANCELLED: &str = "cancelled by an operator";

impl Store {
    /// Cancels the waiting jobs (`available`, `scheduled`, `retryable`; not a running one) of
    /// `workspace` whose kind is among `kinds` and whose argument `arg` is `value`, with
    /// `reason` as their last error: what disabling an integration does to its `sync` and
    /// `token_refresh` jobs. Returns how many. A rare admin action: it reads the workspace's
    /// waiting jobs of those kinds without an index of its own.
    pub async fn cancel_waiting_jobs(
        &self,
        workspace: &str,
        kinds: &[&str],
        arg: &str,
        value: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'cancelled', finalized_at = now(), \
                     updated_at = now(), last_error = $5 \
                 WHERE workspace_id = $1 AND kind = ANY($2) AND args->>$3 = $4 \
                   AND state IN ('available', 'scheduled', 'retryable')",
            )
            .bind(workspace)
            .bind(&kinds)
            .bind(arg)
            .bind(value)
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'cancelled', finalized_at = $6, \
                     updated_at = $6, last_error = $5 \
                 WHERE workspace_id = $1 \
                   AND kind IN (SELECT value FROM json_each($2)) \
                   AND json_extract(args, '$.' || $3) = $4 \
                   AND state IN ('available', 'scheduled', 'retryable')",
            )
            .bind(workspace)
            .bind(serde_json::Value::from(kinds).to_string())
            .bind(arg)
            .bind(value)
            .bind(reason)
            .bind(Utc::now().timestamp_millis())
            .execute(pool)
            .await?
            .rows_affected(),
        })
    }
}
