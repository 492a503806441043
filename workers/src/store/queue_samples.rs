//! Depth and lag per queue over time (`hangar_queue_samples`): one sample per queue and
//! minute, taken by the pruner while it holds the queue's lease (one process writes), read by
//! the series of `queue_minutes`, deleted after the counters' retention. Depth = jobs waiting
//! to run (available, scheduled, retryable; `waiting` in `GET /api/v1/queues`), lag = how long
//! the oldest of them that is due has waited past its `run_at`. Both come from the runnable
//! index (`hangar_jobs_runnable`, partial on those states), never from finished rows.

use std::time::Duration;

use super::queue_minutes::minute_of;
use super::rows::{millis, now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// One minute's sample of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sample {
    /// The queue.
    pub queue: String,
    /// The minute's start, Unix milliseconds.
    pub minute_ms: i64,
    /// Jobs waiting to run.
    pub depth: i64,
    /// The oldest due job's wait past its `run_at`, milliseconds.
    pub lag_ms: i64,
}

/// The samples of every queue from `first` (Unix milliseconds) on.
pub(super) async fn samples_since(pool: &Pool, first: i64) -> Result<Vec<Sample>, StoreError> {
    let rows: Vec<(String, i64, i64, i64)> = match pool {
        Pool::Postgres(pool) => {
            sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>, i64, i64)>(
                "SELECT queue, minute, depth, lag_ms FROM hangar_queue_samples WHERE minute >= $1",
            )
            .bind(to_time(first))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|(q, m, d, l)| (q, m.timestamp_millis(), d, l))
            .collect()
        }
        Pool::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT queue, minute, depth, lag_ms FROM hangar_queue_samples WHERE minute >= ?1",
            )
            .bind(first)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(queue, minute_ms, depth, lag_ms)| Sample {
            queue,
            minute_ms,
            depth,
            lag_ms,
        })
        .collect())
}

impl Store {
    /// Samples `queue`'s depth and lag for the current minute; false when this minute already
    /// has its sample (written by this or another process), which stays as it was.
    pub async fn sample_queue(&self, queue: &str) -> Result<bool, StoreError> {
        let written = match self.pool() {
            // The database's clock, like the lag of `queue_stats`.
            Pool::Postgres(pool) => sqlx::query(
                "INSERT INTO hangar_queue_samples (queue, minute, depth, lag_ms) \
                 SELECT $1, date_trunc('minute', now()), count(*), \
                     COALESCE((EXTRACT(EPOCH FROM max(now() - run_at) \
                         FILTER (WHERE run_at <= now())) * 1000)::bigint, 0) \
                 FROM hangar_jobs \
                 WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable') \
                 ON CONFLICT (queue, minute) DO NOTHING",
            )
            .bind(queue)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => {
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO hangar_queue_samples (queue, minute, depth, lag_ms) \
                     SELECT ?1, ?2, count(*), \
                         COALESCE(max(CASE WHEN run_at <= ?3 THEN ?3 - run_at END), 0) \
                     FROM hangar_jobs \
                     WHERE queue = ?1 AND state IN ('available', 'scheduled', 'retryable') \
                     ON CONFLICT (queue, minute) DO NOTHING",
                )
                .bind(queue)
                .bind(minute_of(to_time(now)))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
            }
        };
        Ok(written > 0)
    }

    /// Deletes `queue`'s samples of minutes that started more than `retention` ago; returns
    /// how many rows.
    pub async fn prune_queue_samples(
        &self,
        queue: &str,
        retention: Duration,
    ) -> Result<u64, StoreError> {
        let before = now_ms().saturating_sub(millis(retention));
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM hangar_queue_samples WHERE queue = $1 AND minute < $2")
                    .bind(queue)
                    .bind(to_time(before))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Pool::Sqlite(pool) => {
                sqlx::query("DELETE FROM hangar_queue_samples WHERE queue = ?1 AND minute < ?2")
                    .bind(queue)
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        })
    }
}
