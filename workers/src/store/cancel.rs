//! An operator's cancel. A job that was running keeps its attempt: the attempt row is
//! written with its start, the moment of the cancel and the message [`CANCELLED`], in the
//! transaction that cancels the job. The worker learns of it at its next heartbeat and stops
//! the attempt; its late result is rejected by the lease fence.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{Job, JobId};

/// The message of a cancelled job and of the attempt a cancel interrupted.
pub const CANCELLED: &str = "cancelled by an operator";

impl Store {
    /// Cancels a job that has not finished; a running one stops at its next heartbeat, and
    /// its attempt is recorded as cancelled.
    pub async fn cancel_job(&self, id: JobId) -> Result<Job, StoreError> {
        let rows = match self.pool() {
            Pool::Postgres(pool) => postgres(pool, id).await?,
            Pool::Sqlite(pool) => sqlite(pool, id).await?,
        };
        self.after_transition(id, rows, "cancel").await
    }
}

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

async fn postgres(pool: &PgPool, id: JobId) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    // The row lock orders this cancel with a completion or failure of the same attempt: the
    // one that comes second finds the job no longer running.
    let running: Option<(i32, Option<DateTime<Utc>>, Option<String>)> = sqlx::query_as(
        "SELECT attempt, attempted_at, leased_by FROM hangar_jobs \
         WHERE id = $1 AND state = 'running' FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    let updated = sqlx::query(
        "UPDATE hangar_jobs SET state = 'cancelled', finalized_at = now(), updated_at = now(), \
             last_error = COALESCE(last_error, $2), \
             lease_token = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND state IN ('available', 'scheduled', 'running', 'retryable')",
    )
    .bind(id.0)
    .bind(CANCELLED)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if let Some((attempt, Some(started_at), worker)) = running {
        sqlx::query(
            "INSERT INTO hangar_job_attempts (job_id, attempt, started_at, finished_at, \
                 error, decision, worker) \
             VALUES ($1, $2, $3, now(), $4, $4, $5) \
             ON CONFLICT (job_id, attempt) DO NOTHING",
        )
        .bind(id.0)
        .bind(attempt)
        .bind(started_at)
        .bind(CANCELLED)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(updated)
}

async fn sqlite(pool: &SqlitePool, id: JobId) -> Result<u64, StoreError> {
    let now = Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    // Written first, so the transaction holds the write lock from its first statement on
    // (a read first could not be upgraded once another process has written).
    sqlx::query(
        "INSERT INTO hangar_job_attempts (job_id, attempt, started_at, finished_at, error, \
             decision, worker) \
         SELECT id, attempt, attempted_at, ?2, ?3, ?3, leased_by FROM hangar_jobs \
         WHERE id = ?1 AND state = 'running' AND attempted_at IS NOT NULL \
         ON CONFLICT (job_id, attempt) DO NOTHING",
    )
    .bind(id.0)
    .bind(now)
    .bind(CANCELLED)
    .execute(&mut *tx)
    .await?;
    let updated = sqlx::query(
        "UPDATE hangar_jobs SET state = 'cancelled', finalized_at = ?2, updated_at = ?2, \
             last_error = COALESCE(last_error, ?3), \
             lease_token = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND state IN ('available', 'scheduled', 'running', 'retryable')",
    )
    .bind(id.0)
    .bind(now)
    .bind(CANCELLED)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(updated)
}
