//! Sync runs over time, for the sync runs page's chart and
//! `GET /api/v1/workspaces/{ws}/sync-runs/series`: per bucket of the window, the runs started
//! in it by status and the records they read and applied. One grouped statement over a range
//! of `started_at`: the workspace's index (`hangar_sync_runs_workspace`), or for every
//! workspace `hangar_sync_runs_started` (migration 3504); runs are pruned, so the table stays
//! bounded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use serde::Serialize;
use utoipa::ToSchema;

use super::sync_store::{SyncStore, SyncStoreError, ms, to_time};

/// One bucket of sync runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunPoint {
    /// The bucket's start (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// Runs started in it that succeeded.
    pub succeeded: i64,
    /// Runs started in it that failed.
    pub failed: i64,
    /// Runs started in it that stopped on the provider's rate limit.
    pub rate_limited: i64,
    /// Runs started in it still running.
    pub running: i64,
    /// Records those runs read.
    pub records_read: i64,
    /// Records those runs applied (created, updated, removed).
    pub records_applied: i64,
}

/// Sync runs over a window, buckets of `step_seconds`, oldest first, every bucket present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunSeries {
    /// The buckets' length in seconds (60 for an hour's series, 900 for a day's).
    pub step_seconds: i64,
    /// The buckets.
    pub points: Vec<RunPoint>,
}

/// Per bucket number: succeeded, failed, rate limited, running, read, applied.
type Row = (i64, i64, i64, i64, i64, i64, i64);

impl SyncStore {
    /// The runs of `workspace` (every workspace: `None`), of `integration` if given, started
    /// in the `buckets` buckets of `step` that end with the one holding `now`.
    pub async fn run_series(
        &self,
        workspace: Option<&str>,
        integration: Option<&str>,
        now: DateTime<Utc>,
        step: Duration,
        buckets: usize,
    ) -> Result<RunSeries, SyncStoreError> {
        let step_ms = i64::try_from(step.as_millis())
            .unwrap_or(i64::MAX)
            .max(60_000);
        let n = buckets.max(1);
        let last = ms(now).div_euclid(step_ms);
        let first = last - (n as i64 - 1);
        let rows: Vec<Row> = match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT floor(extract(epoch FROM started_at) * 1000 / $4)::bigint AS bucket, \
                         count(*) FILTER (WHERE status = 'succeeded'), \
                         count(*) FILTER (WHERE status = 'failed'), \
                         count(*) FILTER (WHERE status = 'rate_limited'), \
                         count(*) FILTER (WHERE status = 'running'), \
                         COALESCE(sum(records_read), 0)::bigint, \
                         COALESCE(sum(records_created + records_updated + records_removed), 0)::bigint \
                     FROM hangar_sync_runs \
                     WHERE started_at >= $1 AND ($2::text IS NULL OR workspace_id = $2) \
                         AND ($3::text IS NULL OR integration_id = $3) \
                     GROUP BY 1",
                )
                .bind(to_time(first * step_ms))
                .bind(workspace)
                .bind(integration)
                .bind(step_ms as f64)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT started_at / ?4 AS bucket, \
                         sum(status = 'succeeded'), sum(status = 'failed'), \
                         sum(status = 'rate_limited'), sum(status = 'running'), \
                         COALESCE(sum(records_read), 0), \
                         COALESCE(sum(records_created + records_updated + records_removed), 0) \
                     FROM hangar_sync_runs \
                     WHERE started_at >= ?1 AND (?2 IS NULL OR workspace_id = ?2) \
                         AND (?3 IS NULL OR integration_id = ?3) \
                     GROUP BY 1",
                )
                .bind(first * step_ms)
                .bind(workspace)
                .bind(integration)
                .bind(step_ms)
                .fetch_all(pool)
                .await?
            }
        };
        let mut points: Vec<RunPoint> = (0..n)
            .map(|i| RunPoint {
                start: to_time((first + i as i64) * step_ms),
                succeeded: 0,
                failed: 0,
                rate_limited: 0,
                running: 0,
                records_read: 0,
                records_applied: 0,
            })
            .collect();
        for (bucket, succeeded, failed, rate_limited, running, read, applied) in rows {
            let Some(p) = usize::try_from(bucket - first)
                .ok()
                .and_then(|i| points.get_mut(i))
            else {
                continue;
            };
            p.succeeded += succeeded;
            p.failed += failed;
            p.rate_limited += rate_limited;
            p.running += running;
            p.records_read += read;
            p.records_applied += applied;
        }
        Ok(RunSeries {
            step_seconds: step_ms / 1000,
            points,
        })
    }
}
