//! Retention: deleting one queue's completed jobs past its retention, in bounded batches,
//! and the maintenance leases (`hangar_maintenance_leases`) that let one process at a time
//! do it. Failed and cancelled jobs are never pruned: they are kept for replay.

use std::time::Duration;

use chrono::Utc;
use sqlx::{PgPool, SqlitePool};

use super::{Store, StoreError, millis};
use crate::db::Pool;

impl Store {
    /// Takes or renews the maintenance lease `name` for `holder` until `ttl` from now; true
    /// when `holder` holds it (it was free, expired, or already `holder`'s).
    pub async fn take_maintenance_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: Option<String> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_scalar(
                    "INSERT INTO hangar_maintenance_leases (name, holder, expires_at) \
                     VALUES ($1, $2, now() + make_interval(secs => $3)) \
                     ON CONFLICT (name) DO UPDATE \
                         SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                         WHERE hangar_maintenance_leases.holder = EXCLUDED.holder \
                            OR hangar_maintenance_leases.expires_at < now() \
                     RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(ttl.as_secs_f64())
                .fetch_optional(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                let now = Utc::now().timestamp_millis();
                sqlx::query_scalar(
                    "INSERT INTO hangar_maintenance_leases (name, holder, expires_at) \
                     VALUES (?1, ?2, ?3 + ?4) \
                     ON CONFLICT (name) DO UPDATE \
                         SET holder = excluded.holder, expires_at = excluded.expires_at \
                         WHERE hangar_maintenance_leases.holder = excluded.holder \
                            OR hangar_maintenance_leases.expires_at < ?3 \
                     RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(now)
                .bind(millis(ttl))
                // To its end: the autocommit's commit (which may fail) comes after the row.
                .fetch_all(pool)
                .await?
                .into_iter()
                .next()
            }
        };
        Ok(held.is_some())
    }

    /// Deletes up to `limit` completed jobs of `queue` that finished more than `retention`
    /// ago (one statement); returns how many.
    pub async fn prune_completed(
        &self,
        queue: &str,
        retention: Duration,
        limit: i64,
    ) -> Result<u64, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => prune_postgres(pool, queue, retention, limit).await,
            Pool::Sqlite(pool) => prune_sqlite(pool, queue, retention, limit).await,
        }
    }
}

async fn prune_postgres(
    pool: &PgPool,
    queue: &str,
    retention: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM hangar_jobs WHERE id IN ( \
             SELECT id FROM hangar_jobs \
             WHERE queue = $1 AND state = 'completed' \
               AND finalized_at < now() - make_interval(secs => $2) \
             LIMIT $3)",
    )
    .bind(queue)
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

async fn prune_sqlite(
    pool: &SqlitePool,
    queue: &str,
    retention: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM hangar_jobs WHERE id IN ( \
             SELECT id FROM hangar_jobs \
             WHERE queue = ?1 AND state = 'completed' AND finalized_at < ?2 \
             LIMIT ?3)",
    )
    .bind(queue)
    .bind(
        Utc::now()
            .timestamp_millis()
            .saturating_sub(millis(retention)),
    )
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
