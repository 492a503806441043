//! The alert dispatcher's rows: the recent alerts it plans notices for, the notices already
//! sent (`hangar_alert_notices`), and a new notice inserted with its delivery job in one
//! transaction. The notice's primary key (alert, channel, event) makes several dispatchers
//! in several processes send each notice once. Times are Unix milliseconds on both backends.

use std::collections::HashMap;

use sqlx::Row;

use super::alerts::alert_ms;
use super::enqueue::{pg_enqueue, sqlite_enqueue};
use super::{Store, StoreError};
use crate::alerts::model::Severity;
use crate::db::Pool;
use crate::job::NewJob;

/// The alert facts the dispatcher's plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts {
    /// The alert.
    pub id: i64,
    /// Its workspace.
    pub workspace_id: Option<String>,
    /// How urgent.
    pub severity: Severity,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms, when acknowledged.
    pub acked_ms: Option<i64>,
    /// Unix ms, when resolved.
    pub resolved_ms: Option<i64>,
}

/// A notice already sent: `(alert, channel, event) → created ms`.
pub type Sent = HashMap<(i64, String, String), i64>;

/// Decodes a row of [`Store::recent_alerts`] (the same types on both backends).
fn facts<R>(row: &R) -> Result<AlertFacts, StoreError>
where
    R: Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let id: i64 = row.try_get("id")?;
    let severity: String = row.try_get("severity")?;
    Ok(AlertFacts {
        id,
        workspace_id: row.try_get("workspace_id")?,
        severity: severity.parse().map_err(|e| StoreError::Corrupt {
            table: "hangar_alerts",
            detail: format!("alert {id}: severity {e}"),
        })?,
        created_ms: row.try_get("created_ms")?,
        acked_ms: row.try_get("acked_ms")?,
        resolved_ms: row.try_get("resolved_ms")?,
    })
}

impl Store {
    /// The newest 5 000 alerts that are open or were resolved after `resolved_after_ms`,
    /// leaving out alerts about jobs of `skip_kinds` (the delivery jobs themselves).
    pub async fn recent_alerts(
        &self,
        resolved_after_ms: i64,
        skip_kinds: &[&str],
    ) -> Result<Vec<AlertFacts>, StoreError> {
        let ms = |c: &str| alert_ms(self, c);
        let kinds = skip_kinds
            .iter()
            .map(|k| format!("'{}'", k.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT a.id, a.workspace_id, a.severity, {} AS created_ms, {} AS acked_ms, \
                 {} AS resolved_ms \
             FROM hangar_alerts a LEFT JOIN hangar_jobs j ON j.id = a.job_id \
             WHERE (j.kind IS NULL OR j.kind NOT IN ({kinds})) \
               AND (a.resolved_at IS NULL OR {} > $1) \
             ORDER BY a.id DESC LIMIT 5000",
            ms("a.created_at"),
            ms("a.acknowledged_at"),
            ms("a.resolved_at"),
            ms("a.resolved_at"),
        );
        let sql = sqlx::AssertSqlSafe(sql);
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(resolved_after_ms)
                .fetch_all(pool)
                .await?
                .iter()
                .map(facts)
                .collect(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(resolved_after_ms)
                .fetch_all(pool)
                .await?
                .iter()
                .map(facts)
                .collect(),
        }
    }

    /// The notices sent for alerts from `min_alert_id` on.
    pub async fn sent_notices(&self, min_alert_id: i64) -> Result<Sent, StoreError> {
        let sql = "SELECT alert_id, channel_id, event, created_at FROM hangar_alert_notices \
                   WHERE alert_id >= $1";
        let rows: Vec<(i64, String, String, i64)> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(min_alert_id)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(min_alert_id)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(a, c, e, t)| ((a, c, e), t))
            .collect())
    }

    /// Inserts the notice `(alert_id, channel_id, event)` and its delivery `job` in one
    /// transaction; false when another dispatcher got there first (nothing is written).
    pub async fn insert_notice(
        &self,
        (alert_id, channel_id, event): (i64, &str, &str),
        job: &NewJob,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let insert = "INSERT INTO hangar_alert_notices (alert_id, channel_id, event, created_at) \
                      VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let link = "UPDATE hangar_alert_notices SET job_id = $4 \
                    WHERE alert_id = $1 AND channel_id = $2 AND event = $3";
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = sqlx::query(insert)
                    .bind(alert_id)
                    .bind(channel_id)
                    .bind(event)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                let enqueued = pg_enqueue(&mut tx, job).await?;
                sqlx::query(link)
                    .bind(alert_id)
                    .bind(channel_id)
                    .bind(event)
                    .bind(enqueued.id.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = sqlx::query(insert)
                    .bind(alert_id)
                    .bind(channel_id)
                    .bind(event)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                let enqueued = sqlite_enqueue(&mut tx, job).await?;
                sqlx::query(link)
                    .bind(alert_id)
                    .bind(channel_id)
                    .bind(event)
                    .bind(enqueued.id.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(true)
    }
}
