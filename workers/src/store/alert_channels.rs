//! Alert channel rows (`hangar_alert_channels`, migration 0005): insert, list, the sealed
//! configuration, remove, disable, enable, and re-sealing every configuration in one
//! transaction. The SQL is the same on both backends (`$N` parameters in order, times as Unix
//! milliseconds the caller binds). Sealing, validation and the `channel_disabled` alert are
//! the alert module's ([`crate::alerts::channels`]). Rows are decoded into the typed model
//! ([`Channel`]) here, once; a stored kind or severity that is not one is a corrupt row.

use sqlx::Row;

use super::rows::{now_ms, to_time};
use super::{Store, StoreError};
use crate::alerts::model::{Channel, ChannelKind, Severity};
use crate::db::Pool;

/// A channel to insert, its configuration already sealed.
#[derive(Debug, Clone, Copy)]
pub struct NewChannelRow<'a> {
    /// `ach_…`.
    pub id: &'a str,
    /// The workspace; `None` = every workspace.
    pub workspace_id: Option<&'a str>,
    /// Where it delivers.
    pub kind: ChannelKind,
    /// The safe part of the configuration.
    pub summary: &'a str,
    /// The sealed configuration.
    pub config_sealed: &'a str,
    /// The least severity it is told about.
    pub min_severity: Severity,
    /// Reminder interval.
    pub reminder_every_ms: Option<i64>,
}

const COLUMNS: &str = "id, workspace_id, kind, summary, min_severity, reminder_every_ms, \
     enabled, disabled_reason, created_at";

/// Decodes a row of [`COLUMNS`] (the same types on both backends).
fn channel_row<R>(row: &R) -> Result<Channel, StoreError>
where
    R: Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "hangar_alert_channels",
        detail,
    };
    let kind: String = row.try_get("kind")?;
    let min_severity: String = row.try_get("min_severity")?;
    Ok(Channel {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        kind: kind.parse().map_err(|e| corrupt(format!("{e}")))?,
        summary: row.try_get("summary")?,
        min_severity: min_severity
            .parse()
            .map_err(|e| corrupt(format!("min_severity {e}")))?,
        reminder_every_ms: row.try_get("reminder_every_ms")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: to_time(row.try_get("created_at")?),
    })
}

impl Store {
    /// Inserts an enabled channel, added now.
    pub async fn insert_alert_channel(&self, new: &NewChannelRow<'_>) -> Result<(), StoreError> {
        let sql = "INSERT INTO hangar_alert_channels (id, workspace_id, kind, summary, \
                       config_sealed, min_severity, reminder_every_ms, enabled, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8)";
        let now = now_ms();
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(new.id)
                    .bind(new.workspace_id)
                    .bind(new.kind.as_str())
                    .bind(new.summary)
                    .bind(new.config_sealed)
                    .bind(new.min_severity.as_str())
                    .bind(new.reminder_every_ms)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(new.id)
                    .bind(new.workspace_id)
                    .bind(new.kind.as_str())
                    .bind(new.summary)
                    .bind(new.config_sealed)
                    .bind(new.min_severity.as_str())
                    .bind(new.reminder_every_ms)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
        };
        Ok(())
    }

    /// Every channel, oldest first.
    pub async fn alert_channels(&self) -> Result<Vec<Channel>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM hangar_alert_channels ORDER BY created_at, id");
        let sql = sqlx::AssertSqlSafe(sql);
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(channel_row)
                .collect(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(channel_row)
                .collect(),
        }
    }

    /// The sealed configuration of channel `id` (which must exist).
    pub async fn alert_channel_sealed(&self, id: &str) -> Result<String, StoreError> {
        let sql = "SELECT config_sealed FROM hangar_alert_channels WHERE id = $1";
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
        })
    }

    /// Deletes channel `id`; false when there was none.
    pub async fn delete_alert_channel(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM hangar_alert_channels WHERE id = $1";
        let deleted = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(deleted > 0)
    }

    /// Disables channel `id` with `reason`; false when it was already disabled (or absent).
    pub async fn disable_alert_channel(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE hangar_alert_channels SET enabled = FALSE, disabled_reason = $2 \
                   WHERE id = $1 AND enabled";
        let updated = match self.pool() {
            Pool::Postgres(pool) => {
                let query = sqlx::query(sql).bind(id).bind(reason);
                query.execute(pool).await?.rows_affected()
            }
            Pool::Sqlite(pool) => {
                let query = sqlx::query(sql).bind(id).bind(reason);
                query.execute(pool).await?.rows_affected()
            }
        };
        Ok(updated > 0)
    }

    /// Enables channel `id` again and resolves the open alert of `incident_key` (the
    /// channel's `channel_disabled` alert); false when it was already enabled.
    pub async fn enable_alert_channel(
        &self,
        id: &str,
        incident_key: &str,
    ) -> Result<bool, StoreError> {
        let enable = "UPDATE hangar_alert_channels SET enabled = TRUE, disabled_reason = NULL \
                      WHERE id = $1 AND NOT enabled";
        let enabled = match self.pool() {
            Pool::Postgres(pool) => {
                let enabled = sqlx::query(enable)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "UPDATE hangar_alerts SET resolved_at = now() \
                     WHERE incident_key = $1 AND resolved_at IS NULL",
                )
                .bind(incident_key)
                .execute(pool)
                .await?;
                enabled
            }
            Pool::Sqlite(pool) => {
                let enabled = sqlx::query(enable)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "UPDATE hangar_alerts SET resolved_at = $2 \
                     WHERE incident_key = $1 AND resolved_at IS NULL",
                )
                .bind(incident_key)
                .bind(now_ms())
                .execute(pool)
                .await?;
                enabled
            }
        };
        Ok(enabled > 0)
    }

    /// Re-seals every channel's configuration in one transaction: `reseal(id, sealed)` gives
    /// the new sealed value; its error rolls everything back. Returns how many were re-sealed.
    pub async fn reseal_alert_channels<E>(
        &self,
        mut reseal: impl FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let select = "SELECT id, config_sealed FROM hangar_alert_channels ORDER BY id";
        let update = "UPDATE hangar_alert_channels SET config_sealed = $2 WHERE id = $1";
        let mut n = 0;
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(StoreError::from)?;
                let rows: Vec<(String, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                for (id, sealed) in rows {
                    let resealed = reseal(&id, &sealed)?;
                    sqlx::query(update)
                        .bind(&id)
                        .bind(&resealed)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                    n += 1;
                }
                tx.commit().await.map_err(StoreError::from)?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(StoreError::from)?;
                let rows: Vec<(String, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                for (id, sealed) in rows {
                    let resealed = reseal(&id, &sealed)?;
                    sqlx::query(update)
                        .bind(&id)
                        .bind(&resealed)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                    n += 1;
                }
                tx.commit().await.map_err(StoreError::from)?;
            }
        }
        Ok(n)
    }
}
