//! One delivery attempt in the store: what the handler reads before it sends
//! ([`DeliveryTarget`], a batch of them in one statement), the shape of the attempt's record
//! (written by `webhook_record.rs`) and the retention of attempt rows.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::to_time;
use super::{Store, StoreError};
use crate::db::Pool;

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

impl Store {
    /// The delivery `id` with its event's body; `None` when it no longer exists (endpoint
    /// deleted).
    pub async fn webhook_delivery_target(
        &self,
        id: &str,
    ) -> Result<Option<DeliveryTarget>, StoreError> {
        Ok(self
            .webhook_delivery_targets(&[id.to_owned()])
            .await?
            .pop()
            .flatten())
    }

    /// [`Store::webhook_delivery_target`] of each of `ids`, in one statement, in order.
    pub async fn webhook_delivery_targets(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<DeliveryTarget>>, StoreError> {
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
        let mut found = std::collections::HashMap::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                for row in sqlx::query(
                    "SELECT d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, \
                         e.body, d.state, \
                         (extract(epoch FROM d.expunged_at) * 1000)::bigint AS expunged_at, \
                         (extract(epoch FROM e.received_at) * 1000)::bigint AS received_at \
                     FROM hangar_webhook_deliveries d JOIN hangar_events e ON e.id = d.event_row \
                     WHERE d.id = ANY($1)",
                )
                .bind(ids)
                .fetch_all(pool)
                .await?
                {
                    let target = target!(&row);
                    found.insert(target.id.clone(), target);
                }
            }
            Pool::Sqlite(pool) => {
                for row in sqlx::query(
                    "SELECT d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, \
                         e.body, d.state, d.expunged_at, e.received_at \
                     FROM hangar_webhook_deliveries d JOIN hangar_events e ON e.id = d.event_row \
                     WHERE d.id IN (SELECT value FROM json_each($1))",
                )
                .bind(serde_json::to_string(ids).unwrap_or_default())
                .fetch_all(pool)
                .await?
                {
                    let target = target!(&row);
                    found.insert(target.id.clone(), target);
                }
            }
        }
        Ok(ids.iter().map(|id| found.remove(id)).collect())
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
