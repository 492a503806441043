//! Webhook endpoint secrets (`hangar_webhook_secrets`), sealed with the keyring: the current
//! one (`expires_at` NULL) and the rotated-out ones that sign beside it until they expire;
//! rotation, the secrets that sign now, and the re-sealing of every one under a new master key.

use chrono::{DateTime, Utc};

use super::rows::now_ms;
use super::{Store, StoreError};
use crate::db::Pool;

impl Store {
    /// A new current secret; the secrets that still sign end at `old_until` (now when
    /// `None`), never later than they would have.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        sealed: &str,
        key_id: &str,
        old_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let until = old_until.unwrap_or_else(Utc::now);
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE hangar_webhook_secrets SET expires_at = LEAST(COALESCE(expires_at, $2), $2) \
                     WHERE endpoint_id = $1",
                )
                .bind(id)
                .bind(until)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_secrets (endpoint_id, seq, sealed, key_id) \
                     SELECT $1, COALESCE(max(seq), 0) + 1, $2, $3 FROM hangar_webhook_secrets \
                     WHERE endpoint_id = $1",
                )
                .bind(id)
                .bind(sealed)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let until = old_until.map_or(now, |t| t.timestamp_millis());
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE hangar_webhook_secrets SET expires_at = min(COALESCE(expires_at, $2), $2) \
                     WHERE endpoint_id = $1",
                )
                .bind(id)
                .bind(until)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_secrets (endpoint_id, seq, sealed, key_id, created_at) \
                     SELECT $1, COALESCE(max(seq), 0) + 1, $2, $3, $4 FROM hangar_webhook_secrets \
                     WHERE endpoint_id = $1",
                )
                .bind(id)
                .bind(sealed)
                .bind(key_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The sealed secrets that sign now: the current one first, then those in their grace.
    pub async fn webhook_secrets(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT sealed FROM hangar_webhook_secrets WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > now()) ORDER BY seq DESC",
                )
                .bind(id)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT sealed FROM hangar_webhook_secrets WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2) ORDER BY seq DESC",
                )
                .bind(id)
                .bind(now_ms())
                .fetch_all(pool)
                .await?
            }
        })
    }

    /// The sealed secrets that sign now with the end of their grace (`None`: the current
    /// one), current first; what the delivery handler caches for a second and filters by
    /// that end at each use.
    pub async fn webhook_signing_secrets(
        &self,
        id: &str,
    ) -> Result<Vec<(String, Option<DateTime<Utc>>)>, StoreError> {
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT sealed, expires_at FROM hangar_webhook_secrets WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > now()) ORDER BY seq DESC",
                )
                .bind(id)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT sealed, expires_at FROM hangar_webhook_secrets WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2) ORDER BY seq DESC",
                )
                .bind(id)
                .bind(now_ms())
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|(sealed, until)| {
                        (sealed, until.and_then(DateTime::from_timestamp_millis))
                    })
                    .collect()
            }
        })
    }

    /// Re-seals every secret in one transaction (`hangar keys rotate`): `reseal(endpoint,
    /// sealed)` gives the new sealed value; its error rolls everything back. Returns how many
    /// were re-sealed.
    pub async fn reseal_webhook_secrets<E>(
        &self,
        mut reseal: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let select = "SELECT endpoint_id, seq, sealed FROM hangar_webhook_secrets \
                      ORDER BY endpoint_id, seq";
        let update = "UPDATE hangar_webhook_secrets SET sealed = $3, key_id = $4 \
                      WHERE endpoint_id = $1 AND seq = $2";
        let mut n = 0;
        macro_rules! reseal_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.map_err(StoreError::from)?;
                let rows: Vec<(String, i32, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                for (endpoint, seq, sealed) in rows {
                    let (resealed, key_id) = reseal(&endpoint, &sealed)?;
                    sqlx::query(update)
                        .bind(&endpoint)
                        .bind(seq)
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
