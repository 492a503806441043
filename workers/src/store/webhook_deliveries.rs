//! Reading deliveries and their attempts (the API's `…/deliveries`), choosing deliveries to
//! send again (held ones, a replay's time range) and expunging a delivery's content. A
//! `pending` delivery whose job failed for good (retries spent) or was cancelled reads as
//! `failed`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{now_ms, opt_time, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// One delivery of an event to an endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `dlv_…`, the `X-PlaneConnection-Delivery-ID` of every attempt.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The event (`webhook-id`).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `held`, `succeeded` or `failed`.
    pub state: String,
    /// The job of its latest sending.
    pub job_id: Option<i64>,
    /// Attempts made.
    pub attempt_count: i32,
    /// The last HTTP status.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was created (with its event).
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When a 2xx answered it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When its content was expunged.
    pub expunged_at: Option<DateTime<Utc>>,
    /// Its attempts, oldest first (kept 30 days by default).
    pub attempts: Vec<Attempt>,
}

/// One attempt as logged.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// The delivery's attempt number (resends and replays go on counting).
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The address connected to (`ip:port`).
    pub address: Option<String>,
    /// The request headers, signatures redacted.
    #[schema(value_type = Object)]
    pub request_headers: serde_json::Value,
    /// The HTTP status.
    pub status: Option<i32>,
    /// The response headers.
    #[schema(value_type = Object)]
    pub response_headers: serde_json::Value,
    /// The first 16 KiB of the response body (lossy UTF-8).
    pub response_body: Option<String>,
    /// Whether the body was longer than what was read.
    pub body_truncated: bool,
    /// The body's full size in bytes, when known.
    pub body_size: Option<i64>,
    /// From the start to the end of the body read, milliseconds.
    pub total_ms: i32,
    /// From the start to the response headers, milliseconds.
    pub first_byte_ms: Option<i32>,
    /// The error class of a failure.
    pub error_class: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

macro_rules! delivery_columns {
    (pg) => {
        "d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, d.job_id, d.attempts, \
         d.last_status, d.last_error, \
         CASE WHEN d.state = 'pending' AND j.state IN ('failed', 'cancelled') THEN 'failed' \
             ELSE d.state END AS state, \
         (extract(epoch FROM d.created_at) * 1000)::bigint AS created_at, \
         (extract(epoch FROM d.updated_at) * 1000)::bigint AS updated_at, \
         (extract(epoch FROM d.delivered_at) * 1000)::bigint AS delivered_at, \
         (extract(epoch FROM d.expunged_at) * 1000)::bigint AS expunged_at \
         FROM hangar_webhook_deliveries d LEFT JOIN hangar_jobs j ON j.id = d.job_id"
    };
    (sqlite) => {
        "d.id, d.endpoint_id, d.workspace_id, d.event_id, d.event_type, d.job_id, d.attempts, \
         d.last_status, d.last_error, \
         CASE WHEN d.state = 'pending' AND j.state IN ('failed', 'cancelled') THEN 'failed' \
             ELSE d.state END AS state, \
         d.created_at, d.updated_at, d.delivered_at, d.expunged_at \
         FROM hangar_webhook_deliveries d LEFT JOIN hangar_jobs j ON j.id = d.job_id"
    };
}

macro_rules! delivery_from_row {
    ($row:expr) => {{
        let row = $row;
        Delivery {
            id: row.try_get("id")?,
            endpoint_id: row.try_get("endpoint_id")?,
            workspace_id: row.try_get("workspace_id")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            state: row.try_get("state")?,
            job_id: row.try_get("job_id")?,
            attempt_count: row.try_get("attempts")?,
            last_status: row.try_get("last_status")?,
            last_error: row.try_get("last_error")?,
            created_at: to_time(row.try_get("created_at")?),
            updated_at: to_time(row.try_get("updated_at")?),
            delivered_at: opt_time(row.try_get("delivered_at")?),
            expunged_at: opt_time(row.try_get("expunged_at")?),
            attempts: Vec::new(),
        }
    }};
}

macro_rules! attempt_from_row {
    ($row:expr) => {{
        let row = $row;
        let json = |text: Option<String>| {
            text.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        let delivery: String = row.try_get("delivery_id")?;
        let attempt = Attempt {
            attempt: row.try_get("attempt")?,
            started_at: to_time(row.try_get("started_at")?),
            address: row.try_get("address")?,
            request_headers: json(row.try_get("request_headers")?),
            status: row.try_get("status")?,
            response_headers: json(row.try_get("response_headers")?),
            response_body: row.try_get("response_body")?,
            body_truncated: row.try_get("body_truncated")?,
            body_size: row.try_get("body_size")?,
            total_ms: row.try_get("total_ms")?,
            first_byte_ms: row.try_get("first_byte_ms")?,
            error_class: row.try_get("error_class")?,
            error: row.try_get("error")?,
        };
        (delivery, attempt)
    }};
}

const ATTEMPT_COLUMNS_SQLITE: &str = "delivery_id, attempt, started_at, address, \
     request_headers, status, response_headers, response_body, body_truncated, body_size, \
     total_ms, first_byte_ms, error_class, error";

impl Store {
    /// An endpoint's deliveries, newest first, at most `limit`, with their attempts.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries_where("d.endpoint_id = $1", endpoint_id, limit)
            .await
    }

    /// One delivery with its attempts.
    pub async fn webhook_delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.deliveries_where("d.id = $1", id, 1).await?.pop())
    }

    async fn deliveries_where(
        &self,
        filter: &str,
        arg: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut deliveries = Vec::new();
        let mut attempts = Vec::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        delivery_columns!(pg),
                        " WHERE {} ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
                    ),
                    filter
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(arg)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                {
                    deliveries.push(delivery_from_row!(&row));
                }
                let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
                for row in sqlx::query(
                    "SELECT delivery_id, attempt, \
                         (extract(epoch FROM started_at) * 1000)::bigint AS started_at, address, \
                         request_headers, status, response_headers, response_body, \
                         body_truncated, body_size, total_ms, first_byte_ms, error_class, error \
                     FROM hangar_webhook_attempts WHERE delivery_id = ANY($1) ORDER BY id",
                )
                .bind(ids)
                .fetch_all(pool)
                .await?
                {
                    attempts.push(attempt_from_row!(&row));
                }
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        delivery_columns!(sqlite),
                        " WHERE {} ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
                    ),
                    filter
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(arg)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                {
                    deliveries.push(delivery_from_row!(&row));
                }
                let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
                let sql = format!(
                    "SELECT {ATTEMPT_COLUMNS_SQLITE} FROM hangar_webhook_attempts \
                     WHERE delivery_id IN (SELECT value FROM json_each($1)) ORDER BY id"
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::to_string(&ids).unwrap_or_default())
                    .fetch_all(pool)
                    .await?
                {
                    attempts.push(attempt_from_row!(&row));
                }
            }
        }
        for (delivery, attempt) in attempts {
            if let Some(d) = deliveries.iter_mut().find(|d| d.id == delivery) {
                d.attempts.push(attempt);
            }
        }
        Ok(deliveries)
    }

    /// Puts a pending delivery back to `held` (its endpoint was paused or disabled meanwhile).
    pub async fn hold_webhook_delivery(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE hangar_webhook_deliveries SET state = 'held', updated_at = $2 \
                   WHERE id = $1 AND state = 'pending'";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// The endpoint's held deliveries, oldest event first.
    pub async fn held_webhook_deliveries(
        &self,
        endpoint_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT id FROM hangar_webhook_deliveries \
                   WHERE endpoint_id = $1 AND state = 'held' ORDER BY event_row, id";
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(endpoint_id)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(endpoint_id)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// The deliveries of an endpoint created in `[since, until)` that a replay sends again:
    /// every one not expunged, or with `failed_only` those that failed (given up, or whose
    /// job failed or was cancelled).
    pub async fn webhook_replay_set(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        failed_only: bool,
    ) -> Result<Vec<String>, StoreError> {
        let failed = "(d.state = 'failed' OR (d.state = 'pending' \
                      AND j.state IN ('failed', 'cancelled')))";
        let sql = format!(
            "SELECT d.id FROM hangar_webhook_deliveries d \
             LEFT JOIN hangar_jobs j ON j.id = d.job_id \
             WHERE d.endpoint_id = $1 AND d.created_at >= $2 AND d.created_at < $3 \
             AND d.expunged_at IS NULL AND d.state <> 'held' AND ($4 = false OR {failed}) \
             ORDER BY d.event_row, d.id"
        );
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(endpoint_id)
                    .bind(since)
                    .bind(until)
                    .bind(failed_only)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(endpoint_id)
                    .bind(since.timestamp_millis())
                    .bind(until.timestamp_millis())
                    .bind(failed_only)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// Erases what a delivery's attempts recorded of the exchange (request and response
    /// headers, response bodies) and marks it expunged: it can no longer be sent. False when
    /// absent.
    pub async fn expunge_webhook_delivery(&self, id: &str) -> Result<bool, StoreError> {
        let attempts = "UPDATE hangar_webhook_attempts SET request_headers = '{}', \
                        response_headers = NULL, response_body = NULL WHERE delivery_id = $1";
        let delivery = "UPDATE hangar_webhook_deliveries SET expunged_at = $2, \
                        last_error = NULL, updated_at = $2 WHERE id = $1";
        let n = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(attempts).bind(id).execute(&mut *tx).await?;
                let n = sqlx::query(delivery)
                    .bind(id)
                    .bind(Utc::now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                n
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(attempts).bind(id).execute(&mut *tx).await?;
                let n = sqlx::query(delivery)
                    .bind(id)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                n
            }
        };
        Ok(n == 1)
    }
}
