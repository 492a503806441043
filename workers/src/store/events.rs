//! Events (`hangar_events`): stored once per `(workspace_id, event_id)`, on their own or with
//! the jobs of an ingress batch (see [`Store::ingest`]). The connection-level functions also
//! run inside a caller's own transaction (see [`crate::client::Conn`]).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, SqliteConnection};

use super::rows::now_ms;
use super::{Store, StoreError};
use crate::db::Pool;
use crate::wire::EventEnvelope;

impl Store {
    /// Stores one event once per `(workspace_id, id)`; false when it was already stored.
    pub async fn publish_event(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        let event = std::slice::from_ref(event);
        let inserted = match self.pool() {
            Pool::Postgres(pool) => pg_insert_events(&mut *pool.acquire().await?, event).await?,
            Pool::Sqlite(pool) => sqlite_insert_events(&mut *pool.acquire().await?, event).await?,
        };
        Ok(inserted == 1)
    }
}

/// Stores events once per `(workspace_id, event_id)`; returns how many were new.
pub(crate) async fn pg_insert_events(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.timestamp).collect();
    let data: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::Value::Object(e.data.clone()))
        .collect();
    let result = sqlx::query(
        "INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) \
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    )
    .bind(workspaces)
    .bind(ids)
    .bind(types)
    .bind(times)
    .bind(data)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// Stores events once per `(workspace_id, event_id)`; returns how many were new.
pub(crate) async fn sqlite_insert_events(
    conn: &mut SqliteConnection,
    events: &[EventEnvelope],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!([
                e.workspace_id,
                e.id,
                e.event_type,
                e.timestamp.timestamp_millis(),
                serde_json::Value::Object(e.data.clone()).to_string()
            ])
        })
        .collect();
    let result = sqlx::query(
        "INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data, received_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}
