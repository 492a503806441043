//! Inbound events (`hangar_inbound_events`): a verified push stored once per (workspace,
//! provider, dedup key) with its raw body and headers, **and its `inbound_event` job in the
//! same transaction** (nothing stored without its job, no job without its row); a duplicate
//! stores nothing. Then what the job reads and records (`processed` with its outcome), and
//! the workspace's listing.
//!
//! On PostgreSQL the row and its job are one statement (the row takes its job id from the
//! jobs' identity sequence, the job is inserted from the row's `RETURNING`, as the webhook
//! fan-out does); SQLite inserts the row, then the job, then links them, in one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{now_ms, opt_time, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::JobId;
use crate::routes::Route;

/// A verified push to store.
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// The workspace of the URL.
    pub workspace_id: String,
    /// The provider id.
    pub provider: String,
    /// The provider's id of the push.
    pub event_id: String,
    /// What makes it a duplicate (see `inbound::mapping::Identified`).
    pub dedup_key: String,
    /// The provider's type, when it names one.
    pub event_type: Option<String>,
    /// A safety event (append-only).
    pub safety: bool,
    /// The raw body.
    pub body: String,
    /// The headers, without credentials and signatures (a JSON object).
    pub headers: serde_json::Value,
}

/// A stored push as the job, the API and the dashboard read it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InboundEvent {
    /// The row id.
    pub id: i64,
    /// The workspace.
    pub workspace_id: String,
    /// The provider id.
    pub provider: String,
    /// The provider's id of the push.
    pub event_id: String,
    /// The provider's type, when it names one.
    pub event_type: Option<String>,
    /// A safety event (kept beside any other report of the same id).
    pub safety: bool,
    /// The raw body, as received.
    pub body: String,
    /// The headers, without credentials and signatures.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The `inbound_event` job that processes it.
    pub job_id: Option<i64>,
    /// `received` (its job has not finished: see the job for retries) or `processed`.
    pub state: String,
    /// What processing did (the Hangar event published, the job enqueued, or why nothing).
    pub outcome: Option<String>,
    /// When it was processed.
    pub processed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, workspace_id, provider, event_id, event_type, safety, body, headers, \
     received_at, job_id, state, outcome, processed_at";

fn from_pg(row: &sqlx::postgres::PgRow) -> Result<InboundEvent, StoreError> {
    Ok(InboundEvent {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        provider: row.try_get(2)?,
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        safety: row.try_get(5)?,
        body: row.try_get(6)?,
        headers: row.try_get(7)?,
        received_at: row.try_get(8)?,
        job_id: row.try_get(9)?,
        state: row.try_get(10)?,
        outcome: row.try_get(11)?,
        processed_at: row.try_get(12)?,
    })
}

fn from_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<InboundEvent, StoreError> {
    let headers: String = row.try_get(7)?;
    Ok(InboundEvent {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        provider: row.try_get(2)?,
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        safety: row.try_get(5)?,
        body: row.try_get(6)?,
        headers: serde_json::from_str(&headers).map_err(|e| StoreError::Corrupt {
            table: "hangar_inbound_events",
            detail: format!("headers: {e}"),
        })?,
        received_at: to_time(row.try_get(8)?),
        job_id: row.try_get(9)?,
        state: row.try_get(10)?,
        outcome: row.try_get(11)?,
        processed_at: opt_time(row.try_get(12)?),
    })
}

impl Store {
    /// Stores a verified push with its job (`kind` on `route`, args `{"inbound_id"}`) in one
    /// transaction; `None` when it was already stored (a duplicate: nothing new).
    pub async fn record_inbound(
        &self,
        new: &NewInbound,
        kind: &str,
        route: &Route,
    ) -> Result<Option<(i64, JobId)>, StoreError> {
        let stored = match self.pool() {
            Pool::Postgres(pool) => sqlx::query_as::<_, (i64, i64)>(
                "WITH r AS (INSERT INTO hangar_inbound_events (workspace_id, provider, event_id, \
                         dedup_key, event_type, safety, body, headers, job_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                         nextval(pg_get_serial_sequence('hangar_jobs', 'id'))) \
                     ON CONFLICT (workspace_id, provider, dedup_key) DO NOTHING \
                     RETURNING id, workspace_id, job_id), \
                 j AS (INSERT INTO hangar_jobs (id, kind, queue, args, state, max_attempts, \
                         priority, run_at, workspace_id, idempotency_key) OVERRIDING SYSTEM VALUE \
                     SELECT job_id, $9, $10, jsonb_build_object('inbound_id', id), 'available', \
                         $11, 0, now(), workspace_id, 'hangar:inbound:' || id FROM r RETURNING 1) \
                 SELECT id, job_id FROM r",
            )
            .bind(&new.workspace_id)
            .bind(&new.provider)
            .bind(&new.event_id)
            .bind(&new.dedup_key)
            .bind(&new.event_type)
            .bind(new.safety)
            .bind(&new.body)
            .bind(&new.headers)
            .bind(kind)
            .bind(&route.queue)
            .bind(route.max_attempts)
            .fetch_optional(pool)
            .await?,
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let mut tx = pool.begin().await?;
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO hangar_inbound_events (workspace_id, provider, event_id, \
                         dedup_key, event_type, safety, body, headers, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (workspace_id, provider, dedup_key) DO NOTHING RETURNING id",
                )
                .bind(&new.workspace_id)
                .bind(&new.provider)
                .bind(&new.event_id)
                .bind(&new.dedup_key)
                .bind(&new.event_type)
                .bind(new.safety)
                .bind(&new.body)
                .bind(new.headers.to_string())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(id) = id else {
                    return Ok(None);
                };
                let job: i64 = sqlx::query_scalar(
                    "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, \
                         run_at, created_at, updated_at, workspace_id, idempotency_key) \
                     VALUES ($1, $2, json_object('inbound_id', $3), 'available', $4, 0, $5, $5, \
                         $5, $6, 'hangar:inbound:' || $3) RETURNING id",
                )
                .bind(kind)
                .bind(&route.queue)
                .bind(id)
                .bind(route.max_attempts)
                .bind(now)
                .bind(&new.workspace_id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE hangar_inbound_events SET job_id = $1 WHERE id = $2")
                    .bind(job)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some((id, job))
            }
        };
        if stored.is_some() {
            self.wakeups().wake(&route.queue);
        }
        Ok(stored.map(|(id, job)| (id, JobId(job))))
    }

    /// One stored push.
    pub async fn inbound_event(&self, id: i64) -> Result<Option<InboundEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM hangar_inbound_events WHERE id = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(from_pg)
                .transpose(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(from_sqlite)
                .transpose(),
        }
    }

    /// The workspace's pushes, newest first, at most `limit`, optionally of one provider.
    pub async fn inbound_events(
        &self,
        ws: &str,
        provider: Option<&str>,
        limit: i64,
    ) -> Result<Vec<InboundEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM hangar_inbound_events WHERE workspace_id = $1 \
             AND ($2 IS NULL OR provider = $2) ORDER BY id DESC LIMIT $3"
        );
        let sql = sqlx::AssertSqlSafe(sql);
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(ws)
                .bind(provider)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(from_pg)
                .collect(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(ws)
                .bind(provider)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(from_sqlite)
                .collect(),
        }
    }

    /// Records what processing did: `state` (`processed`) and the outcome.
    pub async fn finish_inbound(
        &self,
        id: i64,
        state: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_inbound_events SET state = $2, outcome = $3, \
                         processed_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(outcome)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_inbound_events SET state = $2, outcome = $3, \
                         processed_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(outcome)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(())
    }

    /// Deletes at most `batch` processed inbound rows received before `before` (retention,
    /// with the webhook attempts'); returns how many. A row whose job has not finished stays.
    pub async fn prune_inbound_events(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let sql = "DELETE FROM hangar_inbound_events WHERE id IN \
                   (SELECT id FROM hangar_inbound_events \
                    WHERE received_at < $1 AND state = 'processed' LIMIT $2)";
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
