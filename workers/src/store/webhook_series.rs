//! An endpoint's deliveries over time, for its dashboard chart and
//! `GET …/webhook-endpoints/{id}/series`: per bucket of the window, the deliveries created in
//! it by where they stand now (succeeded, failed, retrying, waiting). One grouped statement,
//! a range of the `(endpoint_id, created_at)` index (`hangar_webhook_deliveries_endpoint`):
//! it reads only the window's deliveries of that endpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::rows::{millis, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// One bucket of an endpoint's deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryPoint {
    /// The bucket's start (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// Deliveries created in it that succeeded.
    pub succeeded: i64,
    /// Deliveries created in it that failed for good (410, a client error, retries spent).
    pub failed: i64,
    /// Deliveries created in it that failed at least once and will be tried again.
    pub retrying: i64,
    /// Deliveries created in it not tried yet, or held (endpoint paused or disabled).
    pub waiting: i64,
}

/// An endpoint's deliveries over a window, buckets of `step_seconds`, oldest first, every
/// bucket present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliverySeries {
    /// The endpoint.
    pub endpoint_id: String,
    /// The buckets' length in seconds (60 for an hour's series, 900 for a day's).
    pub step_seconds: i64,
    /// The buckets.
    pub points: Vec<DeliveryPoint>,
}

/// Per bucket number: succeeded, failed, retrying, waiting.
type Row = (i64, i64, i64, i64, i64);

impl Store {
    /// The deliveries of `endpoint` created in the `buckets` buckets of `step` that end with
    /// the one holding `now`.
    pub async fn webhook_delivery_series(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        step: Duration,
        buckets: usize,
    ) -> Result<DeliverySeries, StoreError> {
        let step_ms = millis(step).max(60_000);
        let n = buckets.max(1);
        let last = now.timestamp_millis().div_euclid(step_ms);
        let first = last - (n as i64 - 1);
        let rows: Vec<Row> =
            match self.pool() {
                Pool::Postgres(pool) => sqlx::query_as(
                    "SELECT floor(extract(epoch FROM created_at) * 1000 / $3)::bigint AS bucket, \
                         count(*) FILTER (WHERE state = 'succeeded'), \
                         count(*) FILTER (WHERE state = 'failed'), \
                         count(*) FILTER (WHERE state = 'pending' AND attempts > 0), \
                         count(*) FILTER (WHERE state NOT IN ('succeeded', 'failed') \
                             AND NOT (state = 'pending' AND attempts > 0)) \
                     FROM hangar_webhook_deliveries \
                     WHERE endpoint_id = $1 AND created_at >= $2 GROUP BY 1",
                )
                .bind(endpoint)
                .bind(to_time(first * step_ms))
                .bind(step_ms as f64)
                .fetch_all(pool)
                .await?,
                Pool::Sqlite(pool) => {
                    sqlx::query_as(
                        "SELECT created_at / ?3 AS bucket, \
                         sum(state = 'succeeded'), sum(state = 'failed'), \
                         sum(state = 'pending' AND attempts > 0), \
                         sum(state NOT IN ('succeeded', 'failed') \
                             AND NOT (state = 'pending' AND attempts > 0)) \
                     FROM hangar_webhook_deliveries \
                     WHERE endpoint_id = ?1 AND created_at >= ?2 GROUP BY 1",
                    )
                    .bind(endpoint)
                    .bind(first * step_ms)
                    .bind(step_ms)
                    .fetch_all(pool)
                    .await?
                }
            };
        let mut points: Vec<DeliveryPoint> = (0..n)
            .map(|i| DeliveryPoint {
                start: to_time((first + i as i64) * step_ms),
                succeeded: 0,
                failed: 0,
                retrying: 0,
                waiting: 0,
            })
            .collect();
        for (bucket, succeeded, failed, retrying, waiting) in rows {
            let Some(p) = usize::try_from(bucket - first)
                .ok()
                .and_then(|i| points.get_mut(i))
            else {
                continue;
            };
            p.succeeded += succeeded;
            p.failed += failed;
            p.retrying += retrying;
            p.waiting += waiting;
        }
        Ok(DeliverySeries {
            endpoint_id: endpoint.to_owned(),
            step_seconds: step_ms / 1000,
            points,
        })
    }
}
