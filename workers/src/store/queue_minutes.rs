//! Per-minute counters per queue (`hangar_queue_minutes`): what the completer and a failed
//! attempt add in the transaction that records them (one upsert per batch, one row per queue
//! and minute), the series the dashboard's charts and `GET /api/v1/queues/series` read, and
//! the pruning of rows past their retention. Beside the counts, each row holds the minute's
//! attempt durations as a histogram (`d0` … `d46`, see `duration_histogram`), added to by the
//! same upsert, from which the series computes p50, p95 and p99; the series also carries the
//! depth and lag the pruner samples once a minute (`queue_samples`).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, SqliteConnection};
use utoipa::ToSchema;

use super::queue_samples::{Sample, samples_since};
use super::rows::{millis, now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::duration_histogram::{BUCKETS, bucket_of, column, percentile};

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
    /// The same attempts by duration bucket (`BUCKETS` counts once any is added).
    pub durations: Vec<i64>,
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
            add.durations.resize(BUCKETS, 0);
            add.durations[bucket_of(ms)] += 1;
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

/// The histogram's columns, comma-separated: `d0, d1, …, d46`.
fn bucket_columns() -> String {
    (0..BUCKETS).map(column).collect::<Vec<_>>().join(", ")
}

/// `d0 = <table>.d0 + <excluded>.d0, …` for the upserts.
fn bucket_sums(table: &str, excluded: &str) -> String {
    (0..BUCKETS)
        .map(|k| {
            let c = column(k);
            format!("{c} = {table}{c} + {excluded}.{c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The PostgreSQL upsert of a batch's additions, built once: counts and histogram as one
/// `UNNEST` of arrays, one row per queue and minute.
static PG_ADD: LazyLock<String> = LazyLock::new(|| {
    let arrays = (0..BUCKETS)
        .map(|k| format!("${}::bigint[]", k + 8))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO hangar_queue_minutes AS m (queue, minute, completed, failed, retried, \
             duration_ms_sum, duration_count, {columns}) \
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::bigint[], $7::bigint[], {arrays}) \
         ON CONFLICT (queue, minute) DO UPDATE SET \
             completed = m.completed + EXCLUDED.completed, failed = m.failed + EXCLUDED.failed, \
             retried = m.retried + EXCLUDED.retried, \
             duration_ms_sum = m.duration_ms_sum + EXCLUDED.duration_ms_sum, \
             duration_count = m.duration_count + EXCLUDED.duration_count, {sums}",
        columns = bucket_columns(),
        sums = bucket_sums("m.", "EXCLUDED"),
    )
});

/// The SQLite upsert of a batch's additions, built once: one JSON array per row.
static SQLITE_ADD: LazyLock<String> = LazyLock::new(|| {
    let values = (0..BUCKETS + 7)
        .map(|i| format!("value ->> {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO hangar_queue_minutes (queue, minute, completed, failed, retried, \
             duration_ms_sum, duration_count, {columns}) \
         SELECT {values} FROM json_each(?1) WHERE true \
         ON CONFLICT (queue, minute) DO UPDATE SET \
             completed = completed + excluded.completed, failed = failed + excluded.failed, \
             retried = retried + excluded.retried, \
             duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum, \
             duration_count = duration_count + excluded.duration_count, {sums}",
        columns = bucket_columns(),
        sums = bucket_sums("", "excluded"),
    )
});

/// Bucket `k` of an addition (0 when it has no durations).
fn bucket(a: &MinuteAdd, k: usize) -> i64 {
    a.durations.get(k).copied().unwrap_or(0)
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
    let query = sqlx::query(sqlx::AssertSqlSafe(PG_ADD.as_str()))
        .bind(queues)
        .bind(minutes)
        .bind(column(|a| a.completed))
        .bind(column(|a| a.failed))
        .bind(column(|a| a.retried))
        .bind(column(|a| a.duration_ms_sum))
        .bind(column(|a| a.duration_count));
    (0..BUCKETS)
        .fold(query, |query, k| {
            query.bind(adds.iter().map(|a| bucket(a, k)).collect::<Vec<i64>>())
        })
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
            let mut row = vec![
                serde_json::Value::from(a.queue.as_str()),
                a.minute_ms.into(),
                a.completed.into(),
                a.failed.into(),
                a.retried.into(),
                a.duration_ms_sum.into(),
                a.duration_count.into(),
            ];
            row.extend((0..BUCKETS).map(|k| serde_json::Value::from(bucket(a, k))));
            serde_json::Value::from(row)
        })
        .collect();
    sqlx::query(sqlx::AssertSqlSafe(SQLITE_ADD.as_str()))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A counters row: queue, minute (Unix milliseconds), completed, failed, retried, duration
/// sum and count, then the histogram.
struct MinuteRow {
    queue: String,
    minute_ms: i64,
    counts: [i64; 5],
    durations: Vec<i64>,
}

/// The counters' columns as the series reads them.
static SELECT_MINUTES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT queue, minute, completed, failed, retried, duration_ms_sum, duration_count, \
             {} FROM hangar_queue_minutes WHERE minute >= $1",
        bucket_columns()
    )
});

/// Decodes a counters row of either backend (the minute decoded by `minute`).
fn minute_row<R: sqlx::Row>(
    row: &R,
    minute: impl Fn(&R) -> Result<i64, sqlx::Error>,
) -> Result<MinuteRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut counts = [0; 5];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = row.try_get(i + 2)?;
    }
    Ok(MinuteRow {
        queue: row.try_get(0)?,
        minute_ms: minute(row)?,
        counts,
        durations: (0..BUCKETS)
            .map(|k| row.try_get(k + 7))
            .collect::<Result<_, _>>()?,
    })
}

/// One bucket's sums while a series is built.
#[derive(Clone)]
struct Sums {
    /// Completed, failed, retried, duration sum and count.
    counts: [i64; 5],
    /// The histogram.
    durations: Vec<i64>,
    /// The highest depth and lag (ms) sampled in it, if any.
    depth: Option<i64>,
    lag_ms: Option<i64>,
}

impl Sums {
    fn empty() -> Sums {
        Sums {
            counts: [0; 5],
            durations: vec![0; BUCKETS],
            depth: None,
            lag_ms: None,
        }
    }

    fn point(self, start: DateTime<Utc>) -> SeriesPoint {
        let [completed, failed, retried, sum, count] = self.counts;
        SeriesPoint {
            start,
            completed,
            failed,
            retried,
            mean_duration_ms: (count > 0).then(|| sum as f64 / count as f64),
            p50_ms: percentile(&self.durations, 0.50),
            p95_ms: percentile(&self.durations, 0.95),
            p99_ms: percentile(&self.durations, 0.99),
            depth: self.depth,
            lag_seconds: self.lag_ms.map(|ms| ms as f64 / 1000.0),
        }
    }
}

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
    /// The median attempt duration, ms: the upper bound of its histogram bucket (buckets √2
    /// apart, so at most 41 % above the true value); null when none ran.
    pub p50_ms: Option<i64>,
    /// The 95th percentile of the attempt durations, ms, as `p50_ms`.
    pub p95_ms: Option<i64>,
    /// The 99th percentile of the attempt durations, ms, as `p50_ms`.
    pub p99_ms: Option<i64>,
    /// Jobs waiting to run (available, scheduled, retryable): the highest of the bucket's
    /// once-a-minute samples; null when none was taken.
    pub depth: Option<i64>,
    /// Seconds the oldest due job had waited past its `run_at`: the highest of the bucket's
    /// samples; null when none was taken.
    pub lag_seconds: Option<f64>,
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
    /// Per queue with counters or samples in the window, `buckets` buckets of `step` ending
    /// with the one that holds `now`, oldest first; queues by name.
    pub async fn queue_series(
        &self,
        now: DateTime<Utc>,
        step: Duration,
        buckets: usize,
    ) -> Result<Vec<QueueSeries>, StoreError> {
        let step_ms = millis(step).max(60_000);
        let last = now.timestamp_millis().div_euclid(step_ms) * step_ms;
        let first = last - step_ms * (buckets.max(1) as i64 - 1);
        let rows: Vec<MinuteRow> = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(SELECT_MINUTES.as_str())
                .bind(to_time(first))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    minute_row(row, |r| {
                        Ok(sqlx::Row::try_get::<DateTime<Utc>, _>(r, 1)?.timestamp_millis())
                    })
                })
                .collect::<Result<_, _>>()?,
            Pool::Sqlite(pool) => sqlx::query(SELECT_MINUTES.as_str())
                .bind(first)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| minute_row(row, |r| sqlx::Row::try_get(r, 1)))
                .collect::<Result<_, _>>()?,
        };
        let samples: Vec<Sample> = samples_since(self.pool(), first).await?;
        let n = buckets.max(1);
        let index = |minute: i64| {
            usize::try_from((minute - first).div_euclid(step_ms))
                .ok()
                .filter(|i| *i < n)
        };
        let mut series: BTreeMap<String, Vec<Sums>> = BTreeMap::new();
        for row in rows {
            let Some(i) = index(row.minute_ms) else {
                continue;
            };
            let points = series
                .entry(row.queue)
                .or_insert_with(|| vec![Sums::empty(); n]);
            let p = &mut points[i];
            for (sum, add) in p.counts.iter_mut().zip(row.counts) {
                *sum += add;
            }
            for (sum, add) in p.durations.iter_mut().zip(row.durations) {
                *sum += add;
            }
        }
        for sample in samples {
            let Some(i) = index(sample.minute_ms) else {
                continue;
            };
            let points = series
                .entry(sample.queue)
                .or_insert_with(|| vec![Sums::empty(); n]);
            let p = &mut points[i];
            p.depth = Some(p.depth.unwrap_or(0).max(sample.depth));
            p.lag_ms = Some(p.lag_ms.unwrap_or(0).max(sample.lag_ms));
        }
        Ok(series
            .into_iter()
            .map(|(queue, points)| QueueSeries {
                queue,
                step_seconds: step_ms / 1000,
                points: points
                    .into_iter()
                    .enumerate()
                    .map(|(i, sums)| sums.point(to_time(first + step_ms * i as i64)))
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
