//! Counting jobs: per queue and state with the queue's lag (for `/metrics`), finished jobs
//! per queue since a moment (the dashboard's throughput and failure rate), and one queue's
//! jobs in or out of one state.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{now_ms, parse_state};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::JobState;

/// Depth and lag of one queue, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs per non-final state, plus `failed`.
    pub counts: Vec<(JobState, i64)>,
    /// Seconds the oldest runnable job (available, scheduled or retryable) has waited past
    /// its `run_at`; 0 when none is due. Running and finished jobs never count.
    pub lag_seconds: f64,
}

/// Jobs of one queue that finished since a moment, for the dashboard's throughput and
/// failure rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueThroughput {
    /// The queue.
    pub queue: String,
    /// Jobs that completed since then.
    pub completed: i64,
    /// Jobs that failed for good since then.
    pub failed: i64,
}

impl Store {
    /// Counts jobs of `queue` in `state` (`equal`) or in any other state (`!equal`).
    pub async fn count_in_queue(
        &self,
        queue: &str,
        state: JobState,
        equal: bool,
    ) -> Result<i64, StoreError> {
        let sql = "SELECT count(*) FROM hangar_jobs WHERE queue = $1 AND (state = $2) = $3";
        let state = state.as_str();
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(queue)
                    .bind(state)
                    .bind(equal)
                    .fetch_one(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(queue)
                    .bind(state)
                    .bind(equal)
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// Depth and lag per queue.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.queue_stats_of(None).await
    }

    /// Depth and lag per queue of one workspace's jobs (a workspace token's overview): the
    /// partial index `hangar_jobs_workspace_open` (migration 0029) holds exactly the rows it
    /// counts.
    pub async fn workspace_queue_stats(
        &self,
        workspace: &str,
    ) -> Result<Vec<QueueStats>, StoreError> {
        self.queue_stats_of(Some(workspace)).await
    }

    async fn queue_stats_of(&self, workspace: Option<&str>) -> Result<Vec<QueueStats>, StoreError> {
        let rows = match self.pool() {
            Pool::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT queue, state, count(*) AS n, \
                         COALESCE(EXTRACT(EPOCH FROM max(now() - run_at) \
                             FILTER (WHERE state IN ('available', 'scheduled', 'retryable') \
                                 AND run_at <= now()))::float8, 0) AS lag \
                     FROM hangar_jobs \
                     WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'failed') \
                       AND ($1::text IS NULL OR workspace_id = $1) \
                     GROUP BY queue, state ORDER BY queue",
                )
                .bind(workspace)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let state = parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?;
                        Ok((
                            row.try_get("queue")?,
                            state,
                            row.try_get("n")?,
                            row.try_get("lag")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
            Pool::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT queue, state, count(*) AS n, \
                         COALESCE(max(CASE WHEN state IN ('available', 'scheduled', 'retryable') \
                                           AND run_at <= ?1 THEN ?1 - run_at END), 0) AS lag_ms \
                     FROM hangar_jobs \
                     WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'failed') \
                       AND (?2 IS NULL OR workspace_id = ?2) \
                     GROUP BY queue, state ORDER BY queue",
                )
                .bind(now_ms())
                .bind(workspace)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let state = parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?;
                        let lag = row.try_get::<i64, _>("lag_ms")? as f64 / 1000.0;
                        Ok((row.try_get("queue")?, state, row.try_get("n")?, lag))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
        };
        Ok(fold_queue_stats(rows))
    }

    /// Per queue, the jobs that completed or failed for good since `since` (by
    /// `finalized_at`, which the finalized-at index covers), ordered by queue.
    pub async fn queue_throughput(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<QueueThroughput>, StoreError> {
        let rows: Vec<(String, i64, i64)> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT queue, \
                         count(*) FILTER (WHERE state = 'completed') AS completed, \
                         count(*) FILTER (WHERE state = 'failed') AS failed \
                     FROM hangar_jobs \
                     WHERE finalized_at >= $1 AND state IN ('completed', 'failed') \
                     GROUP BY queue ORDER BY queue",
                )
                .bind(since)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT queue, \
                         sum(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed, \
                         sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed \
                     FROM hangar_jobs \
                     WHERE finalized_at >= ?1 AND state IN ('completed', 'failed') \
                     GROUP BY queue ORDER BY queue",
                )
                .bind(since.timestamp_millis())
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(queue, completed, failed)| QueueThroughput {
                queue,
                completed,
                failed,
            })
            .collect())
    }
}

/// Groups `(queue, state, count, lag seconds)` rows, ordered by queue, into one
/// [`QueueStats`] per queue.
fn fold_queue_stats(rows: Vec<(String, JobState, i64, f64)>) -> Vec<QueueStats> {
    let mut stats: Vec<QueueStats> = Vec::new();
    for (queue, state, n, lag) in rows {
        match stats.last_mut() {
            Some(last) if last.queue == queue => {
                last.counts.push((state, n));
                last.lag_seconds = last.lag_seconds.max(lag);
            }
            _ => stats.push(QueueStats {
                queue,
                counts: vec![(state, n)],
                lag_seconds: lag,
            }),
        }
    }
    stats
}
