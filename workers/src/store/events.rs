//! Events (`hangar_events`): stored once per `(workspace_id, event_id)`, on their own or with
//! the jobs of an ingress batch (see [`Store::ingest`]), each with its compact webhook body
//! and, in the same transaction, its deliveries to the subscribed webhook endpoints (see
//! `webhook_fanout`). The connection-level functions also run inside a caller's own
//! transaction (see [`crate::client::Conn`]).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, SqliteConnection};

use super::event_subscriptions::pg_subscription_cte;
use super::rows::now_ms;
use super::webhook_fanout::{pg_fan_out_ctes, sqlite_fan_out};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::routes::Route;
use crate::webhooks::envelope_body;
use crate::wire::EventEnvelope;

impl Store {
    /// Stores one event once per `(workspace_id, id)` with its webhook deliveries (their jobs
    /// on `webhooks`, the route of `webhook_delivery`); false when it was already stored.
    pub async fn publish_event(
        &self,
        event: &EventEnvelope,
        webhooks: &Route,
    ) -> Result<bool, StoreError> {
        let event = std::slice::from_ref(event);
        let (inserted, jobs) = match self.pool() {
            Pool::Postgres(pool) => {
                let (new, jobs) =
                    pg_insert_events(&mut *pool.acquire().await?, event, webhooks).await?;
                (new as usize, jobs)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let rows = sqlite_insert_events(&mut tx, event).await?;
                let jobs = sqlite_fan_out(&mut tx, &rows, webhooks).await?;
                tx.commit().await?;
                (rows.len(), jobs)
            }
        };
        if jobs > 0 {
            self.wakeups().wake(&webhooks.queue);
        }
        Ok(inserted == 1)
    }

    /// The stored event `event_id` of `workspace`, if any.
    pub async fn event(
        &self,
        workspace: &str,
        event_id: &str,
    ) -> Result<Option<EventEnvelope>, StoreError> {
        let row: Option<(String, DateTime<Utc>, String)> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT type, occurred_at, data::text FROM hangar_events \
                     WHERE workspace_id = $1 AND event_id = $2",
                )
                .bind(workspace)
                .bind(event_id)
                .fetch_optional(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                let row: Option<(String, i64, String)> = sqlx::query_as(
                    "SELECT type, occurred_at, data FROM hangar_events \
                     WHERE workspace_id = $1 AND event_id = $2",
                )
                .bind(workspace)
                .bind(event_id)
                .fetch_optional(pool)
                .await?;
                row.map(|(t, at, data)| (t, super::rows::to_time(at), data))
            }
        };
        row.map(|(event_type, timestamp, data)| {
            let data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                table: "hangar_events",
                detail: format!("data: {e}"),
            })?;
            Ok(EventEnvelope {
                id: event_id.to_owned(),
                event_type,
                workspace_id: workspace.to_owned(),
                timestamp,
                data,
            })
        })
        .transpose()
    }
}

/// Stores events once per `(workspace_id, event_id)` with their webhook deliveries and jobs
/// (routed by `webhooks`), in one statement; returns how many events were new and how many
/// jobs were created.
pub(crate) async fn pg_insert_events(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    webhooks: &Route,
) -> Result<(u64, u64), StoreError> {
    if events.is_empty() {
        return Ok((0, 0));
    }
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH e AS (INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, \
                 data, body) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
                 $5::jsonb[], $6::text[]) \
             ON CONFLICT (workspace_id, event_id) DO NOTHING \
             RETURNING id, workspace_id, event_id, type), {}, {} \
             SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM j)",
            pg_fan_out_ctes(7, 8, 9),
            pg_subscription_cte()
        )
    });
    let workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.timestamp).collect();
    let data: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::Value::Object(e.data.clone()))
        .collect();
    let bodies: Vec<String> = events.iter().map(envelope_body).collect();
    let (new, jobs): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(SQL.as_str()))
        .bind(workspaces)
        .bind(ids)
        .bind(types)
        .bind(times)
        .bind(data)
        .bind(bodies)
        .bind(crate::webhooks::KIND)
        .bind(&webhooks.queue)
        .bind(webhooks.max_attempts)
        .fetch_one(&mut *conn)
        .await?;
    Ok((new as u64, jobs as u64))
}

/// Stores events once per `(workspace_id, event_id)`; returns the row ids of the new ones.
pub(crate) async fn sqlite_insert_events(
    conn: &mut SqliteConnection,
    events: &[EventEnvelope],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!([
                e.workspace_id,
                e.id,
                e.event_type,
                e.timestamp.timestamp_millis(),
                serde_json::Value::Object(e.data.clone()).to_string(),
                envelope_body(e)
            ])
        })
        .collect();
    let rows = sqlx::query_scalar(
        "INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data, body, \
             received_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, ?2 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now_ms())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}
