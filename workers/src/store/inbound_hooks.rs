//! Inbound hook material (`hangar_inbound_hooks`): per (workspace, provider) the scheme and
//! its verification material sealed with the keyring (the row named in the associated
//! data); set, read for a push, listed without the material, deleted, re-sealed under a new
//! master key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// A configured inbound hook as listings show it: never the material.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InboundHookRow {
    /// The workspace.
    pub workspace_id: String,
    /// The provider id.
    pub provider: String,
    /// `intuit`, `stripe`, `basic` or `planeconnection`.
    pub scheme: String,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Sets (or replaces) the material of `(ws, provider)`.
    pub async fn put_inbound_hook(
        &self,
        ws: &str,
        provider: &str,
        scheme: &str,
        sealed: &str,
        key_id: &str,
    ) -> Result<InboundHookRow, StoreError> {
        let row = match self.pool() {
            Pool::Postgres(pool) => {
                let row = sqlx::query(
                    "INSERT INTO hangar_inbound_hooks (workspace_id, provider, scheme, sealed, key_id) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (workspace_id, provider) DO UPDATE SET scheme = EXCLUDED.scheme, \
                         sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id, updated_at = now() \
                     RETURNING created_at, updated_at",
                )
                .bind(ws)
                .bind(provider)
                .bind(scheme)
                .bind(sealed)
                .bind(key_id)
                .fetch_one(pool)
                .await?;
                (row.try_get(0)?, row.try_get(1)?)
            }
            Pool::Sqlite(pool) => {
                let row = sqlx::query(
                    "INSERT INTO hangar_inbound_hooks (workspace_id, provider, scheme, sealed, key_id, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (workspace_id, provider) DO UPDATE SET scheme = excluded.scheme, \
                         sealed = excluded.sealed, key_id = excluded.key_id, \
                         updated_at = excluded.updated_at \
                     RETURNING created_at, updated_at",
                )
                .bind(ws)
                .bind(provider)
                .bind(scheme)
                .bind(sealed)
                .bind(key_id)
                .bind(now_ms())
                // To its end: the autocommit's commit (which may fail) comes after the row.
                .fetch_all(pool)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound)?;
                (to_time(row.try_get(0)?), to_time(row.try_get(1)?))
            }
        };
        Ok(InboundHookRow {
            workspace_id: ws.to_owned(),
            provider: provider.to_owned(),
            scheme: scheme.to_owned(),
            created_at: row.0,
            updated_at: row.1,
        })
    }

    /// The scheme and sealed material of `(ws, provider)`, if configured.
    pub async fn inbound_hook_material(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let sql = "SELECT scheme, sealed FROM hangar_inbound_hooks \
                   WHERE workspace_id = $1 AND provider = $2";
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(ws)
                    .bind(provider)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(ws)
                    .bind(provider)
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    /// The workspace's configured hooks, by provider.
    pub async fn inbound_hooks(&self, ws: &str) -> Result<Vec<InboundHookRow>, StoreError> {
        let sql = "SELECT provider, scheme, created_at, updated_at FROM hangar_inbound_hooks \
                   WHERE workspace_id = $1 ORDER BY provider";
        let mut hooks = Vec::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                for row in sqlx::query(sql).bind(ws).fetch_all(pool).await? {
                    hooks.push(InboundHookRow {
                        workspace_id: ws.to_owned(),
                        provider: row.try_get(0)?,
                        scheme: row.try_get(1)?,
                        created_at: row.try_get(2)?,
                        updated_at: row.try_get(3)?,
                    });
                }
            }
            Pool::Sqlite(pool) => {
                for row in sqlx::query(sql).bind(ws).fetch_all(pool).await? {
                    hooks.push(InboundHookRow {
                        workspace_id: ws.to_owned(),
                        provider: row.try_get(0)?,
                        scheme: row.try_get(1)?,
                        created_at: to_time(row.try_get(2)?),
                        updated_at: to_time(row.try_get(3)?),
                    });
                }
            }
        }
        Ok(hooks)
    }

    /// Deletes the material of `(ws, provider)`; false when there was none.
    pub async fn delete_inbound_hook(&self, ws: &str, provider: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM hangar_inbound_hooks WHERE workspace_id = $1 AND provider = $2";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(ws)
                .bind(provider)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(ws)
                .bind(provider)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Re-seals every hook's material in one transaction (`hangar keys rotate`):
    /// `reseal(workspace, provider, sealed)` gives the new sealed value and its key id; its
    /// error rolls everything back. Returns how many were re-sealed.
    pub async fn reseal_inbound_hooks<E>(
        &self,
        mut reseal: impl FnMut(&str, &str, &str) -> Result<(String, String), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let select = "SELECT workspace_id, provider, sealed FROM hangar_inbound_hooks \
                      ORDER BY workspace_id, provider";
        let update = "UPDATE hangar_inbound_hooks SET sealed = $3, key_id = $4 \
                      WHERE workspace_id = $1 AND provider = $2";
        let mut n = 0;
        macro_rules! reseal_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.map_err(StoreError::from)?;
                let rows: Vec<(String, String, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                for (ws, provider, sealed) in rows {
                    let (resealed, key_id) = reseal(&ws, &provider, &sealed)?;
                    sqlx::query(update)
                        .bind(&ws)
                        .bind(&provider)
                        .bind(&resealed)
                        .bind(&key_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                    n += 1;
                }
                tx.commit().await.map_err(StoreError::from)?;
            }};
        }
        match self.pool() {
            Pool::Postgres(pool) => reseal_in!(pool),
            Pool::Sqlite(pool) => reseal_in!(pool),
        }
        Ok(n)
    }
}
