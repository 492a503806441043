//! Completions: the successes a pool's completer writes in batches, fenced by lease token.
//! On both backends one transaction marks the jobs completed and resolves the open alerts of
//! the jobs that succeeded after earlier failures, so a crash between the two cannot leave a
//! completed job with an open "failing" alert. The same transaction adds the batch to the
//! per-minute counters of its queues (one statement, `queue_minutes`), and writes what the
//! handlers left to write with their successes ([`CompletionWrite`]: a webhook delivery's
//! attempt record) for the jobs whose completion passed the fence, so such a success costs
//! one commit, not two. On PostgreSQL the webhook endpoints those records move are locked
//! first, before the jobs' rows, in the order every other transaction locks them.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

use super::queue_minutes::{Outcome, fold_adds, pg_add_minutes, sqlite_add_minutes};
use super::rows::opt_time;
use super::webhook_record::{lock_counters_pg, record_completed_pg, record_completed_sqlite};
use super::{AttemptRow, Completion, CompletionWrite, Store, StoreError, rejected};
use crate::db::Pool;
use crate::job::JobId;

impl Store {
    /// Marks jobs completed; returns the ids whose result was rejected (lease taken over).
    pub async fn complete(&self, done: &[Completion]) -> Result<Vec<JobId>, StoreError> {
        self.complete_writing(done, &[]).await
    }

    /// Marks jobs completed and, in the same transaction, writes `writes` of the jobs whose
    /// completion was accepted; returns the ids whose result was rejected (lease taken
    /// over), whose writes are dropped.
    pub async fn complete_writing(
        &self,
        done: &[Completion],
        writes: &[CompletionWrite],
    ) -> Result<Vec<JobId>, StoreError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let attempts: Vec<AttemptRow> = writes
            .iter()
            .map(|w| match w {
                CompletionWrite::WebhookAttempt(a) => (**a).clone(),
            })
            .collect();
        let (rejected, woken) = match self.pool() {
            Pool::Postgres(pool) => postgres(pool, done, &attempts).await?,
            Pool::Sqlite(pool) => sqlite(pool, done, &attempts).await?,
        };
        self.wake_woken(&woken);
        Ok(rejected)
    }
}

/// The jobs of `done` whose completion was accepted and whose attempt came after a failure:
/// their open alert is resolved.
fn retried(done: &[Completion], accepted: &[i64]) -> Vec<i64> {
    done.iter()
        .filter(|c| c.attempt > 1 && accepted.contains(&c.id.0))
        .map(|c| c.id.0)
        .collect()
}

/// A completed job's `(id, queue, attempted_at, finalized_at)`, as the update returns it.
type Completed = (i64, String, Option<DateTime<Utc>>, DateTime<Utc>);

/// A completed job's row as the counters count it.
fn counted(row: &Completed) -> (&str, DateTime<Utc>, Option<i64>, Outcome) {
    let (_, queue, started, finished) = row;
    let duration = started.map(|s| (*finished - s).num_milliseconds());
    (queue.as_str(), *finished, duration, Outcome::Completed)
}

/// The rejected jobs, and the queues whose jobs the records woke.
type Written = (Vec<JobId>, Vec<String>);

async fn postgres(
    pool: &PgPool,
    done: &[Completion],
    attempts: &[AttemptRow],
) -> Result<Written, StoreError> {
    let ids: Vec<i64> = done.iter().map(|c| c.id.0).collect();
    let tokens: Vec<i64> = done.iter().map(|c| c.lease_token).collect();
    let finished: Vec<DateTime<Utc>> = done.iter().map(|c| c.finished_at).collect();
    let mut tx = pool.begin().await?;
    let locked = if attempts.is_empty() {
        None
    } else {
        Some(lock_counters_pg(&mut tx, attempts).await?)
    };
    let rows: Vec<Completed> = sqlx::query_as(
        "UPDATE hangar_jobs j SET state = 'completed', finalized_at = d.finished_at, \
             updated_at = now(), lease_token = NULL, lease_expires_at = NULL \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[]) AS d(id, token, finished_at) \
         WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'running' \
         RETURNING j.id, j.queue, j.attempted_at, j.finalized_at",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&finished)
    .fetch_all(&mut *tx)
    .await?;
    pg_add_minutes(&mut tx, &fold_adds(rows.iter().map(counted))).await?;
    let accepted: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let retried = retried(done, &accepted);
    if !retried.is_empty() {
        sqlx::query(
            "UPDATE hangar_alerts SET resolved_at = now() \
             WHERE job_id = ANY($1) AND resolved_at IS NULL",
        )
        .bind(&retried)
        .execute(&mut *tx)
        .await?;
    }
    let woken = match locked {
        Some(locked) => record_completed_pg(&mut tx, attempts, locked, &accepted).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    Ok((rejected(done, &accepted), woken))
}

async fn sqlite(
    pool: &SqlitePool,
    done: &[Completion],
    attempts: &[AttemptRow],
) -> Result<Written, StoreError> {
    let batch: Vec<[i64; 3]> = done
        .iter()
        .map(|c| [c.id.0, c.lease_token, c.finished_at.timestamp_millis()])
        .collect();
    let now = Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, String, Option<i64>, i64)> = sqlx::query_as(
        "UPDATE hangar_jobs SET state = 'completed', finalized_at = d.finished_at, \
             updated_at = ?2, lease_token = NULL, lease_expires_at = NULL \
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS finished_at \
               FROM json_each(?1)) AS d \
         WHERE hangar_jobs.id = d.id AND hangar_jobs.lease_token = d.token \
           AND hangar_jobs.state = 'running' \
         RETURNING hangar_jobs.id, hangar_jobs.queue, hangar_jobs.attempted_at, \
             hangar_jobs.finalized_at",
    )
    .bind(serde_json::to_string(&batch).unwrap_or_default())
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let rows: Vec<Completed> = rows
        .into_iter()
        .map(|(id, queue, started, finished)| {
            (
                id,
                queue,
                opt_time(started),
                opt_time(Some(finished)).unwrap_or_default(),
            )
        })
        .collect();
    sqlite_add_minutes(&mut tx, &fold_adds(rows.iter().map(counted))).await?;
    let accepted: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let retried = retried(done, &accepted);
    if !retried.is_empty() {
        sqlx::query(
            "UPDATE hangar_alerts SET resolved_at = ?2 \
             WHERE job_id IN (SELECT value FROM json_each(?1)) AND resolved_at IS NULL",
        )
        .bind(serde_json::to_string(&retried).unwrap_or_default())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let woken = if attempts.is_empty() {
        Vec::new()
    } else {
        record_completed_sqlite(&mut tx, attempts, &accepted).await?
    };
    tx.commit().await?;
    Ok((rejected(done, &accepted), woken))
}
