//! Per-minute counters per queue (`hangar_queue_minutes`): what the completer and a failed
//! attempt add in the transaction that records them (one upsert per batch, one row per queue
//! and minute), the series the dashboard's charts and `GET /api/v1/queues/series` read, and
//! the pruning of rows past their retention.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, SqliteConnection};
use utoipa::ToSchema;

use super::rows::{millis, now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// How long the per-minute counters are kept.
pub const MINUTES_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One minute's additions to one queue's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct MinuteAdd {
    /// The queue.
    pub queue: String,
    /// The minute's start, Unix milliseconds.
    pub minute_ms: i64,
    /// Jobs completed.
    pub completed: i64,
    /// Jobs failed for good.
    pub failed: i64,
    /// Failed attempts that will run again.
    pub retried: i64,
    /// Sum of the attempts' durations, milliseconds.
    pub duration_ms_sum: i64,
    /// Attempts whose duration is in the sum.
    pub duration_count: i64,
}

/// The start of the minute of `at`, Unix milliseconds.
pub(super) fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(60_000) * 60_000
}

/// The additions of finished attempts `(queue, finished_at, duration if known, outcome)`,
/// merged to one per queue and minute.
pub(super) fn fold_adds<'a>(
    finished: impl IntoIterator<Item = (&'a str, DateTime<Utc>, Option<i64>, Outcome)>,
) -> Vec<MinuteAdd> {
    let mut adds: BTreeMap<(String, i64), MinuteAdd> = BTreeMap::new();
    for (queue, at, duration_ms, outcome) in finished {
        let minute_ms = minute_of(at);
        let add = adds
            .entry((queue.to_owned(), minute_ms))
            .or_insert_with(|| MinuteAdd {
                queue: queue.to_owned(),
                minute_ms,
                ..MinuteAdd::default()
            });
        match outcome {
            Outcome::Completed => add.completed += 1,
            Outcome::Failed => add.failed += 1,
            Outcome::Retried => add.retried += 1,
        }
        if let Some(ms) = duration_ms {
            add.duration_ms_sum += ms.max(0);
            add.duration_count += 1;
        }
    }
    adds.into_values().collect()
}

/// How an attempt ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The job completed.
    Completed,
    /// The job failed for good.
    Failed,
    /// The attempt failed and the job runs again (or waits).
    Retried,
}

/// Adds `adds` to the counters in the caller's PostgreSQL transaction (one statement).
pub(super) async fn pg_add_minutes(
    tx: &mut PgConnection,
    adds: &[MinuteAdd],
) -> Result<(), StoreError> {
    if adds.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&MinuteAdd) -> i64| adds.iter().map(f).collect::<Vec<i64>>();
    let queues: Vec<&str> = adds.iter().map(|a| a.queue.as_str()).collect();
    let minutes: Vec<DateTime<Utc>> = adds.iter().map(|a| to_time(a.minute_ms)).collect();
    sqlx::query(
        "INSERT INTO hangar_queue_minutes AS m (queue, minute, completed, failed, retried, \
             duration_ms_sum, duration_count) \
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::bigint[], $7::bigint[]) \
         ON CONFLICT (queue, minute) DO UPDATE SET \
             completed = m.completed + EXCLUDED.completed, failed = m.failed + EXCLUDED.failed, \
             retried = m.retried + EXCLUDED.retried, \
             duration_ms_sum = m.duration_ms_sum + EXCLUDED.duration_ms_sum, \
             duration_count = m.duration_count + EXCLUDED.duration_count",
    )
    .bind(queues)
    .bind(minutes)
    .bind(column(|a| a.completed))
    .bind(column(|a| a.failed))
    .bind(column(|a| a.retried))
    .bind(column(|a| a.duration_ms_sum))
    .bind(column(|a| a.duration_count))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds `adds` to the counters in the caller's SQLite transaction (one statement).
pub(super) async fn sqlite_add_minutes(
    tx: &mut SqliteConnection,
    adds: &[MinuteAdd],
) -> Result<(), StoreError> {
    if adds.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = adds
        .iter()
        .map(|a| {
            serde_json::json!([
                a.queue,
                a.minute_ms,
                a.completed,
                a.failed,
                a.retried,
                a.duration_ms_sum,
                a.duration_count
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO hangar_queue_minutes (queue, minute, completed, failed, retried, \
             duration_ms_sum, duration_count) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
             value ->> 6 FROM json_each(?1) WHERE true \
         ON CONFLICT (queue, minute) DO UPDATE SET \
             completed = completed + excluded.completed, failed = failed + excluded.failed, \
             retried = retried + excluded.retried, \
             duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum, \
             duration_count = duration_count + excluded.duration_count",
    )
    .bind(serde_json::Value::from(rows).to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A counters row: queue, minute (as the backend stores it), completed, failed, retried,
/// duration sum and count.
type MinuteRow<T> = (String, T, i64, i64, i64, i64, i64);

/// A bucket's sums: completed, failed, retried, duration sum and count.
type Sums = (i64, i64, i64, i64, i64);

/// One bucket of a queue's series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The bucket's start (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// Jobs that completed in it.
    pub completed: i64,
    /// Jobs that failed for good in it.
    pub failed: i64,
    /// Failed attempts in it whose job runs again.
    pub retried: i64,
    /// The mean duration of its attempts in milliseconds; null when none ran.
    pub mean_duration_ms: Option<f64>,
}

/// One queue's counters over a window, in buckets of `step_seconds`, oldest first; every
/// bucket of the window is present (zero when nothing finished in it).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueueSeries {
    /// The queue.
    pub queue: String,
    /// The buckets' length in seconds (60 for an hour's series, 900 for a day's).
    pub step_seconds: i64,
    /// The buckets.
    pub points: Vec<SeriesPoint>,
}

impl Store {
    /// Per queue with counters in the window, `buckets` buckets of `step` ending with the one
    /// that holds `now`, oldest first; queues by name.
    pub async fn queue_series(
        &self,
        now: DateTime<Utc>,
        step: Duration,
        buckets: usize,
    ) -> Result<Vec<QueueSeries>, StoreError> {
        let step_ms = millis(step).max(60_000);
        let last = now.timestamp_millis().div_euclid(step_ms) * step_ms;
        let first = last - step_ms * (buckets.max(1) as i64 - 1);
        let rows: Vec<MinuteRow<i64>> = match self.pool() {
            Pool::Postgres(pool) => {
                let rows: Vec<MinuteRow<DateTime<Utc>>> = sqlx::query_as(
                    "SELECT queue, minute, completed, failed, retried, duration_ms_sum, \
                         duration_count FROM hangar_queue_minutes WHERE minute >= $1",
                )
                .bind(to_time(first))
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|(q, m, c, f, r, s, n)| (q, m.timestamp_millis(), c, f, r, s, n))
                    .collect()
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT queue, minute, completed, failed, retried, duration_ms_sum, \
                         duration_count FROM hangar_queue_minutes WHERE minute >= ?1",
                )
                .bind(first)
                .fetch_all(pool)
                .await?
            }
        };
        let n = buckets.max(1);
        let mut series: BTreeMap<String, Vec<Sums>> = BTreeMap::new();
        for (queue, minute, completed, failed, retried, sum, count) in rows {
            let index = (minute - first).div_euclid(step_ms);
            let Ok(index) = usize::try_from(index) else {
                continue;
            };
            if index >= n {
                continue;
            }
            let points = series
                .entry(queue)
                .or_insert_with(|| vec![(0, 0, 0, 0, 0); n]);
            let p = &mut points[index];
            p.0 += completed;
            p.1 += failed;
            p.2 += retried;
            p.3 += sum;
            p.4 += count;
        }
        Ok(series
            .into_iter()
            .map(|(queue, points)| QueueSeries {
                queue,
                step_seconds: step_ms / 1000,
                points: points
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (completed, failed, retried, sum, count))| SeriesPoint {
                            start: to_time(first + step_ms * i as i64),
                            completed,
                            failed,
                            retried,
                            mean_duration_ms: (count > 0).then(|| sum as f64 / count as f64),
                        },
                    )
                    .collect(),
            })
            .collect())
    }

    /// Deletes `queue`'s counters of minutes that started more than `retention` ago; returns
    /// how many rows.
    pub async fn prune_queue_minutes(
        &self,
        queue: &str,
        retention: Duration,
    ) -> Result<u64, StoreError> {
        let before = now_ms().saturating_sub(millis(retention));
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM hangar_queue_minutes WHERE queue = $1 AND minute < $2")
                    .bind(queue)
                    .bind(to_time(before))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Pool::Sqlite(pool) => {
                sqlx::query("DELETE FROM hangar_queue_minutes WHERE queue = $1 AND minute < $2")
                    .bind(queue)
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        })
    }
}
