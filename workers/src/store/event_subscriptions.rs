//! Event subscriptions (`hangar_event_subscriptions`): "for every new event of this type in
//! this workspace, enqueue this job". The jobs are inserted in the transaction that stores
//! the event, beside its webhook deliveries (PostgreSQL: one more CTE over the new event rows
//! `e` of the events' statement, [`pg_subscription_cte`]; SQLite: [`sqlite_subscribed_jobs`]
//! over the new rows), so an event is never stored without its subscribed jobs. Only new
//! event rows fan out, and each job's idempotency key is the row's `key_prefix` followed by
//! the event id: the same event twice makes one job. The job's args are the row's `args` with
//! `"event_id"` added; the job reads the event when it runs ([`Store::event`]).
//!
//! A subscriber (e.g. an integration) keeps its rows in step with
//! [`Store::set_event_subscriptions`], which replaces all of them at once.

use sqlx::SqliteConnection;

use super::rows::now_ms;
use super::{Store, StoreError};
use crate::db::Pool;

/// One subscription: the job that every new event of `event_type` in the workspace makes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSubscription {
    /// The event type (`invoice.created`).
    pub event_type: String,
    /// The job's kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its attempt budget.
    pub max_attempts: i32,
    /// Its args (an object); `"event_id"` is added.
    pub args: serde_json::Value,
    /// Its idempotency key before the event id (the engine's own: `hangar:…`).
    pub key_prefix: String,
}

/// The subscribed jobs of the new event rows of CTE `e` (`id`, `workspace_id`, `event_id`,
/// `type`), as a CTE `s` to follow the others of the events' statement (PostgreSQL).
pub(super) fn pg_subscription_cte() -> &'static str {
    "s AS (INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
         workspace_id, idempotency_key) \
     SELECT s.kind, s.queue, s.args || jsonb_build_object('event_id', e.event_id), 'available', \
         s.max_attempts, 0, now(), e.workspace_id, s.key_prefix || e.event_id \
     FROM e JOIN hangar_event_subscriptions s \
         ON s.workspace_id = e.workspace_id AND s.event_type = e.type \
     ORDER BY e.id, s.id \
     ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key) \
         WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING 1)"
}

/// Enqueues the subscribed jobs of the new event rows `rows` (SQLite, in the caller's
/// transaction); returns how many.
pub(crate) async fn sqlite_subscribed_jobs(
    conn: &mut SqliteConnection,
    rows: &[i64],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let rows = serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned());
    let n = sqlx::query(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         SELECT s.kind, s.queue, json_set(s.args, '$.event_id', e.event_id), 'available', \
             s.max_attempts, 0, $2, $2, $2, e.workspace_id, s.key_prefix || e.event_id \
         FROM hangar_events e JOIN hangar_event_subscriptions s \
             ON s.workspace_id = e.workspace_id AND s.event_type = e.type \
         WHERE e.id IN (SELECT value FROM json_each($1)) \
         ORDER BY e.id, s.id \
         ON CONFLICT (COALESCE(workspace_id, ''), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(&rows)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n)
}

impl Store {
    /// Replaces every subscription of `subscriber` with `rows`, all in `workspace` (none:
    /// the subscriber stops receiving events), in one transaction.
    pub async fn set_event_subscriptions(
        &self,
        subscriber: &str,
        workspace: &str,
        rows: &[EventSubscription],
    ) -> Result<(), StoreError> {
        let rows_json = serde_json::Value::Array(
            rows.iter()
                .map(|r| {
                    serde_json::json!([
                        r.event_type,
                        r.kind,
                        r.queue,
                        r.max_attempts,
                        r.args.to_string(),
                        r.key_prefix
                    ])
                })
                .collect(),
        )
        .to_string();
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM hangar_event_subscriptions WHERE subscriber = $1")
                    .bind(subscriber)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO hangar_event_subscriptions (subscriber, workspace_id, \
                         event_type, kind, queue, max_attempts, args, key_prefix) \
                     SELECT $1, $2, value ->> 0, value ->> 1, value ->> 2, \
                         (value ->> 3)::integer, (value ->> 4)::jsonb, value ->> 5 \
                     FROM jsonb_array_elements($3::jsonb)",
                )
                .bind(subscriber)
                .bind(workspace)
                .bind(&rows_json)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM hangar_event_subscriptions WHERE subscriber = $1")
                    .bind(subscriber)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO hangar_event_subscriptions (subscriber, workspace_id, \
                         event_type, kind, queue, max_attempts, args, key_prefix, created_at) \
                     SELECT $1, $2, value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
                         value ->> 4, value ->> 5, $4 \
                     FROM json_each($3)",
                )
                .bind(subscriber)
                .bind(workspace)
                .bind(&rows_json)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The subscriptions of `subscriber`, by event type.
    pub async fn event_subscriptions(
        &self,
        subscriber: &str,
    ) -> Result<Vec<EventSubscription>, StoreError> {
        type Row = (String, String, String, i32, String, String);
        let rows: Vec<Row> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT event_type, kind, queue, max_attempts, args::text, key_prefix \
                     FROM hangar_event_subscriptions WHERE subscriber = $1 \
                     ORDER BY event_type, key_prefix",
                )
                .bind(subscriber)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT event_type, kind, queue, max_attempts, args, key_prefix \
                     FROM hangar_event_subscriptions WHERE subscriber = $1 \
                     ORDER BY event_type, key_prefix",
                )
                .bind(subscriber)
                .fetch_all(pool)
                .await?
            }
        };
        rows.into_iter()
            .map(
                |(event_type, kind, queue, max_attempts, args, key_prefix)| {
                    let args = serde_json::from_str(&args).map_err(|e| StoreError::Corrupt {
                        table: "hangar_event_subscriptions",
                        detail: format!("args: {e}"),
                    })?;
                    Ok(EventSubscription {
                        event_type,
                        kind,
                        queue,
                        max_attempts,
                        args,
                        key_prefix,
                    })
                },
            )
            .collect()
    }
}
