//! Reading events back (the events page, `GET /api/v1/events`, `hangar events`): a filtered
//! list newest first by pages (the cursor is the last row id of the page before: `id <
//! cursor`), and one event with where it went: its webhook deliveries (endpoint, state,
//! attempts) and the jobs its event subscriptions made. Both dialects side by side.
//!
//! The links the store keeps: a delivery names its event row (`event_row`, served by the
//! `(event_row, endpoint_id)` unique index), a subscription's job carries `"event_id"` in its
//! args and the key `<key_prefix><event id>` with an engine prefix (`hangar:`), found through
//! the partial index `hangar_jobs_event` (migration 0028). Sync runs are the integrations'
//! table: the binary asks that crate for the runs of these jobs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{opt_time, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// Filters and page of [`Store::events_page`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this workspace's events.
    pub workspace_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only events received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events received before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this row id (the cursor).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// One stored event as listed, with how far it went.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    /// The row id: the order of arrival, and the cursor of the list.
    pub seq: i64,
    /// The event id the producer gave (`evt_…`), unique per workspace.
    pub id: String,
    /// The event type (`trip.created`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The workspace.
    pub workspace_id: String,
    /// The event's own timestamp.
    pub timestamp: DateTime<Utc>,
    /// When Hangar stored it.
    pub received_at: DateTime<Utc>,
    /// Its webhook deliveries (one per subscribed endpoint).
    pub deliveries: i64,
    /// The jobs its event subscriptions made (e.g. integration syncs).
    pub jobs: i64,
}

/// One webhook delivery of an event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventDelivery {
    /// The delivery id (`dlv_…`, `X-PlaneConnection-Delivery-ID`).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's URL (user and password, if any, redacted).
    pub endpoint_url: String,
    /// pending, held, succeeded or failed.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer's HTTP status.
    pub last_status: Option<i32>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Its current job.
    pub job_id: Option<i64>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A job an event's subscription made.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventJob {
    /// The job id.
    pub id: i64,
    /// Its kind (`sync`, …).
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state now.
    pub state: String,
    /// Attempts made.
    pub attempt: i32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
}

/// One event with its data and where it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventDetail {
    /// The event as listed.
    pub event: EventSummary,
    /// Its `data` object.
    pub data: serde_json::Value,
    /// Its webhook deliveries, oldest first.
    pub deliveries: Vec<EventDelivery>,
    /// The jobs its subscriptions made, oldest first.
    pub jobs: Vec<EventJob>,
}

/// The list's columns over `hangar_events e`, with the two counts (PostgreSQL).
const PG_SUMMARY: &str = "e.id, e.workspace_id, e.event_id, e.type, e.occurred_at, e.received_at, \
     (SELECT count(*) FROM hangar_webhook_deliveries d WHERE d.event_row = e.id) AS deliveries, \
     (SELECT count(*) FROM hangar_jobs j WHERE j.workspace_id = e.workspace_id \
         AND (j.args ->> 'event_id') = e.event_id AND j.idempotency_key LIKE 'hangar:%' \
         AND right(j.idempotency_key, length(e.event_id)) = e.event_id) AS jobs";

/// The same for SQLite.
const SQLITE_SUMMARY: &str = "e.id, e.workspace_id, e.event_id, e.type, e.occurred_at, \
     e.received_at, \
     (SELECT count(*) FROM hangar_webhook_deliveries d WHERE d.event_row = e.id) AS deliveries, \
     (SELECT count(*) FROM hangar_jobs j WHERE j.workspace_id = e.workspace_id \
         AND json_extract(j.args, '$.event_id') = e.event_id \
         AND j.idempotency_key LIKE 'hangar:%' \
         AND substr(j.idempotency_key, -length(e.event_id)) = e.event_id) AS jobs";

impl Store {
    /// One page of the events matching `filter`, newest first, and the cursor of the next
    /// page when there is one (the `before` to pass next).
    pub async fn events_page(
        &self,
        filter: &EventFilter,
    ) -> Result<(Vec<EventSummary>, Option<i64>), StoreError> {
        let limit = filter.limit.max(0);
        let one_more = limit.saturating_add(1);
        let mut events = match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {PG_SUMMARY} FROM hangar_events e \
                     WHERE ($1::text IS NULL OR e.workspace_id = $1) \
                       AND ($2::text IS NULL OR e.type = $2) \
                       AND ($3::timestamptz IS NULL OR e.received_at >= $3) \
                       AND ($4::timestamptz IS NULL OR e.received_at < $4) \
                       AND ($5::bigint IS NULL OR e.id < $5) \
                     ORDER BY e.id DESC LIMIT $6"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&filter.workspace_id)
                    .bind(&filter.event_type)
                    .bind(filter.since)
                    .bind(filter.until)
                    .bind(filter.before)
                    .bind(one_more)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_summary).collect::<Result<Vec<_>, _>>()?
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_SUMMARY} FROM hangar_events e \
                     WHERE (?1 IS NULL OR e.workspace_id = ?1) AND (?2 IS NULL OR e.type = ?2) \
                       AND (?3 IS NULL OR e.received_at >= ?3) \
                       AND (?4 IS NULL OR e.received_at < ?4) \
                       AND (?5 IS NULL OR e.id < ?5) \
                     ORDER BY e.id DESC LIMIT ?6"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&filter.workspace_id)
                    .bind(&filter.event_type)
                    .bind(filter.since.map(|t| t.timestamp_millis()))
                    .bind(filter.until.map(|t| t.timestamp_millis()))
                    .bind(filter.before)
                    .bind(one_more)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(sqlite_summary)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let limit = usize::try_from(limit).unwrap_or(0);
        if events.len() > limit {
            events.truncate(limit);
            let next = events.last().map(|e| e.seq);
            return Ok((events, next));
        }
        Ok((events, None))
    }

    /// The events with id `event_id`, in `workspace` when given (without it, one per
    /// workspace that has such an id), with their data and where they went.
    pub async fn event_details(
        &self,
        workspace: Option<&str>,
        event_id: &str,
    ) -> Result<Vec<EventDetail>, StoreError> {
        let mut details = Vec::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {PG_SUMMARY}, e.data::text AS data FROM hangar_events e \
                     WHERE e.event_id = $1 AND ($2::text IS NULL OR e.workspace_id = $2) \
                     ORDER BY e.id LIMIT 100"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(event_id)
                    .bind(workspace)
                    .fetch_all(pool)
                    .await?;
                for row in &rows {
                    let event = pg_summary(row)?;
                    let deliveries = sqlx::query(
                        "SELECT d.id, d.endpoint_id, ep.url, d.state, d.attempts, d.last_status, \
                             d.last_error, d.job_id, d.created_at, d.delivered_at \
                         FROM hangar_webhook_deliveries d \
                         JOIN hangar_webhook_endpoints ep ON ep.id = d.endpoint_id \
                         WHERE d.event_row = $1 ORDER BY d.created_at, d.id",
                    )
                    .bind(event.seq)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| delivery(r, r.try_get("created_at")?, r.try_get("delivered_at")?))
                    .collect::<Result<_, StoreError>>()?;
                    let jobs = sqlx::query(
                        "SELECT id, kind, queue, state, attempt, created_at FROM hangar_jobs \
                         WHERE workspace_id = $1 AND (args ->> 'event_id') = $2 \
                           AND idempotency_key LIKE 'hangar:%' \
                           AND right(idempotency_key, length($2)) = $2 \
                         ORDER BY id",
                    )
                    .bind(&event.workspace_id)
                    .bind(&event.id)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| job(r, r.try_get("created_at")?))
                    .collect::<Result<_, StoreError>>()?;
                    let data = data(row.try_get("data")?)?;
                    details.push(EventDetail {
                        event,
                        data,
                        deliveries,
                        jobs,
                    });
                }
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_SUMMARY}, e.data AS data FROM hangar_events e \
                     WHERE e.event_id = ?1 AND (?2 IS NULL OR e.workspace_id = ?2) \
                     ORDER BY e.id LIMIT 100"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(event_id)
                    .bind(workspace)
                    .fetch_all(pool)
                    .await?;
                for row in &rows {
                    let event = sqlite_summary(row)?;
                    let deliveries = sqlx::query(
                        "SELECT d.id, d.endpoint_id, ep.url, d.state, d.attempts, d.last_status, \
                             d.last_error, d.job_id, d.created_at, d.delivered_at \
                         FROM hangar_webhook_deliveries d \
                         JOIN hangar_webhook_endpoints ep ON ep.id = d.endpoint_id \
                         WHERE d.event_row = ?1 ORDER BY d.created_at, d.id",
                    )
                    .bind(event.seq)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        delivery(
                            r,
                            to_time(r.try_get("created_at")?),
                            opt_time(r.try_get("delivered_at")?),
                        )
                    })
                    .collect::<Result<_, StoreError>>()?;
                    let jobs = sqlx::query(
                        "SELECT id, kind, queue, state, attempt, created_at FROM hangar_jobs \
                         WHERE workspace_id = ?1 AND json_extract(args, '$.event_id') = ?2 \
                           AND idempotency_key LIKE 'hangar:%' \
                           AND substr(idempotency_key, -length(?2)) = ?2 \
                         ORDER BY id",
                    )
                    .bind(&event.workspace_id)
                    .bind(&event.id)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| job(r, to_time(r.try_get("created_at")?)))
                    .collect::<Result<_, StoreError>>()?;
                    let data = data(row.try_get("data")?)?;
                    details.push(EventDetail {
                        event,
                        data,
                        deliveries,
                        jobs,
                    });
                }
            }
        }
        Ok(details)
    }
}

fn pg_summary(row: &sqlx::postgres::PgRow) -> Result<EventSummary, StoreError> {
    Ok(EventSummary {
        seq: row.try_get("id")?,
        id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        workspace_id: row.try_get("workspace_id")?,
        timestamp: row.try_get("occurred_at")?,
        received_at: row.try_get("received_at")?,
        deliveries: row.try_get("deliveries")?,
        jobs: row.try_get("jobs")?,
    })
}

fn sqlite_summary(row: &sqlx::sqlite::SqliteRow) -> Result<EventSummary, StoreError> {
    Ok(EventSummary {
        seq: row.try_get("id")?,
        id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        workspace_id: row.try_get("workspace_id")?,
        timestamp: to_time(row.try_get("occurred_at")?),
        received_at: to_time(row.try_get("received_at")?),
        deliveries: row.try_get("deliveries")?,
        jobs: row.try_get("jobs")?,
    })
}

fn delivery<R: Row>(
    row: &R,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
) -> Result<EventDelivery, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let url: String = row.try_get("url")?;
    Ok(EventDelivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        endpoint_url: crate::redact::redact_url(&url),
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        job_id: row.try_get("job_id")?,
        created_at,
        delivered_at,
    })
}

fn job<R: Row>(row: &R, created_at: DateTime<Utc>) -> Result<EventJob, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EventJob {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        state: row.try_get("state")?,
        attempt: row.try_get("attempt")?,
        created_at,
    })
}

fn data(text: String) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        table: "hangar_events",
        detail: format!("data: {e}"),
    })
}
