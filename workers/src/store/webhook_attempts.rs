//! One delivery attempt in the store: what the handler reads before it sends
//! ([`DeliveryTarget`]), and the attempt's record written after, in one transaction with the
//! delivery's state and the endpoint's health counters; the retention of attempt rows.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::webhooks::endpoint::CIRCUIT_AFTER;

/// What an attempt of one delivery needs.
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    /// `dlv_…`.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The compact envelope, the same bytes on every attempt.
    pub body: String,
    /// `pending`, `held`, `succeeded` or `failed`.
    pub state: String,
    /// Whether its content was expunged.
    pub expunged: bool,
    /// When the event was stored (the latency metric starts there).
    pub event_stored_at: DateTime<Utc>,
}

/// How an attempt ended, for the delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Succeeded,
    /// Failed; the retry rules may send it again.
    Failed,
    /// Failed for good (410, another 4xx, a refused target): no retry.
    FailedForGood,
}

/// The record of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// The delivery.
    pub delivery_id: String,
    /// Its endpoint (whose health counters move).
    pub endpoint_id: String,
    /// The job that made it.
    pub job_id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The address connected to.
    pub address: Option<String>,
    /// The request headers, JSON, signatures redacted.
    pub request_headers: String,
    /// The HTTP status.
    pub status: Option<i32>,
    /// The response headers, JSON.
    pub response_headers: Option<String>,
    /// The first 16 KiB of the response body.
    pub response_body: Option<String>,
    /// Whether the body was longer.
    pub body_truncated: bool,
    /// The body's full size when known (read, or `Content-Length`).
    pub body_size: Option<i64>,
    /// Start to the end of the body, milliseconds.
    pub total_ms: i32,
    /// Start to the response headers, milliseconds.
    pub first_byte_ms: Option<i32>,
    /// The error class of a failure.
    pub error_class: Option<&'static str>,
    /// What went wrong.
    pub error: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// The endpoint's health counters around an attempt.
#[derive(Debug, Clone, Copy)]
pub struct HealthMove {
    /// Failed attempts in a row before this one.
    pub streak_before: i32,
    /// The first failure since the last success, after this attempt.
    pub failing_since: Option<DateTime<Utc>>,
}

/// A failed delivery's job is retried behind every fresh one: the claim order is priority
/// first, so a backlog of due retries never delays a new event (the retry lane; its share of
/// the slots is capped by the gate).
const RETRY_LANE: &str = "UPDATE hangar_jobs SET priority = 1 WHERE id = $1 AND priority < 1";

impl Store {
    /// The delivery `id` with its event's body; `None` when it no longer exists (endpoint
    /// deleted).
    pub async fn webhook_delivery_target(
        &self,
        id: &str,
    ) -> Result<Option<DeliveryTarget>, StoreError> {
        macro_rules! target {
            ($row:expr) => {{
                let row = $row;
                let body: Option<String> = row.try_get("body")?;
                DeliveryTarget {
                    id: row.try_get("id")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    body: body.ok_or_else(|| StoreError::Corrupt {
                        table: "hangar_events",
                        detail: "an event with deliveries has no body".to_owned(),
                    })?,
                    state: row.try_get("state")?,
                    expunged: row.try_get::<Option<i64>, _>("expunged_at")?.is_some(),
                    event_stored_at: to_time(row.try_get("received_at")?),
                }
            }};
        }
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "SELECT d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, e.body, \
                     d.state, (extract(epoch FROM d.expunged_at) * 1000)::bigint AS expunged_at, \
                     (extract(epoch FROM e.received_at) * 1000)::bigint AS received_at \
                 FROM hangar_webhook_deliveries d JOIN hangar_events e ON e.id = d.event_row \
                 WHERE d.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, StoreError>(target!(&row)))
            .transpose()?,
            Pool::Sqlite(pool) => sqlx::query(
                "SELECT d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, e.body, \
                     d.state, d.expunged_at, e.received_at \
                 FROM hangar_webhook_deliveries d JOIN hangar_events e ON e.id = d.event_row \
                 WHERE d.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, StoreError>(target!(&row)))
            .transpose()?,
        })
    }

    /// Records an attempt, the delivery's new state and the endpoint's health counters in
    /// one transaction; returns the counters around it.
    pub async fn record_webhook_attempt(&self, a: &AttemptRow) -> Result<HealthMove, StoreError> {
        let state = match a.outcome {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "pending",
            AttemptOutcome::FailedForGood => "failed",
        };
        let success = a.outcome == AttemptOutcome::Succeeded;
        macro_rules! write {
            ($tx:expr, $now:expr, $started:expr, $lock:literal) => {{
                let tx = $tx;
                sqlx::query(
                    "INSERT INTO hangar_webhook_attempts (delivery_id, job_id, attempt, \
                         started_at, address, request_headers, status, response_headers, \
                         response_body, body_truncated, body_size, total_ms, first_byte_ms, \
                         error_class, error) \
                     SELECT $1, $2, attempts + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                         $13, $14 FROM hangar_webhook_deliveries WHERE id = $1",
                )
                .bind(&a.delivery_id)
                .bind(a.job_id)
                .bind($started)
                .bind(&a.address)
                .bind(&a.request_headers)
                .bind(a.status)
                .bind(&a.response_headers)
                .bind(&a.response_body)
                .bind(a.body_truncated)
                .bind(a.body_size)
                .bind(a.total_ms)
                .bind(a.first_byte_ms)
                .bind(a.error_class)
                .bind(&a.error)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_webhook_deliveries SET attempts = attempts + 1, \
                         last_status = $2, last_error = $3, updated_at = $4, \
                         state = CASE WHEN state = 'pending' THEN $5 ELSE state END, \
                         delivered_at = CASE WHEN $6 THEN $4 ELSE delivered_at END \
                     WHERE id = $1",
                )
                .bind(&a.delivery_id)
                .bind(a.status)
                .bind(&a.error)
                .bind($now)
                .bind(state)
                .bind(success)
                .execute(&mut **tx)
                .await?;
                let streak_before: Option<i32> = sqlx::query_scalar(concat!(
                    "SELECT failure_streak FROM hangar_webhook_endpoints WHERE id = $1",
                    $lock
                ))
                .bind(&a.endpoint_id)
                .fetch_optional(&mut **tx)
                .await?;
                let sql = if success {
                    "UPDATE hangar_webhook_endpoints SET last_success_at = $2, \
                         failure_streak = 0, failing_since = NULL WHERE id = $1"
                } else {
                    "UPDATE hangar_webhook_endpoints SET last_failure_at = $2, \
                         failure_streak = failure_streak + 1, \
                         failing_since = COALESCE(failing_since, $2) WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(&a.endpoint_id)
                    .bind($now)
                    .execute(&mut **tx)
                    .await?;
                streak_before.unwrap_or(0)
            }};
        }
        let (streak_before, failing_since) = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let now = Utc::now();
                // NO KEY UPDATE: an ingress batch that inserts deliveries of this endpoint (a
                // key-share lock through the foreign key) is not held up by it.
                let streak = write!(&mut tx, now, a.started_at, " FOR NO KEY UPDATE");
                super::webhook_gate::release_pg(
                    &mut tx,
                    &a.delivery_id,
                    &a.endpoint_id,
                    Some(success),
                    CIRCUIT_AFTER,
                )
                .await?;
                if a.outcome == AttemptOutcome::Failed {
                    sqlx::query(RETRY_LANE)
                        .bind(a.job_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let since: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
                    "SELECT failing_since FROM hangar_webhook_endpoints WHERE id = $1",
                )
                .bind(&a.endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                (streak, since.flatten())
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let now = now_ms();
                let streak = write!(&mut tx, now, a.started_at.timestamp_millis(), "");
                super::webhook_gate::release_sqlite(
                    &mut tx,
                    &a.delivery_id,
                    &a.endpoint_id,
                    Some(success),
                    CIRCUIT_AFTER,
                )
                .await?;
                if a.outcome == AttemptOutcome::Failed {
                    sqlx::query(RETRY_LANE)
                        .bind(a.job_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let since: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT failing_since FROM hangar_webhook_endpoints WHERE id = $1",
                )
                .bind(&a.endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                (streak, since.flatten().map(to_time))
            }
        };
        Ok(HealthMove {
            streak_before,
            failing_since,
        })
    }

    /// Deletes at most `batch` attempt rows that started before `before` (retention);
    /// returns how many.
    pub async fn prune_webhook_attempts(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let sql = "DELETE FROM hangar_webhook_attempts WHERE id IN \
                   (SELECT id FROM hangar_webhook_attempts WHERE started_at < $1 LIMIT $2)";
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(before)
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(before.timestamp_millis())
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }
}
