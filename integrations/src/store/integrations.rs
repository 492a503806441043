//! The settings rows: an integration created once per (workspace, provider), its settings
//! and credential replaced by an admin, read by id or by provider, listed. Both dialects
//! side by side.

use chrono::Utc;
use hangar_workers::db::Pool;

use super::{
    COLUMNS, IntegrationRows, IntegrationStoreError, StoredIntegration, from_pg, from_sqlite, ms,
};
use crate::credentials::AuthKind;
use crate::integration::Status;

/// A sealed credential to store.
#[derive(Clone)]
pub struct SealedCredential {
    /// `hk1:<key id>:…`, sealed for the row.
    pub sealed: String,
    /// The id of the key that sealed it.
    pub key_id: String,
    /// API key or OAuth.
    pub auth: AuthKind,
    /// When its access token expires.
    pub expires_at: Option<chrono::DateTime<Utc>>,
}

/// What a `PUT` writes.
#[derive(Clone)]
pub struct SettingsUpdate {
    /// Whether it runs.
    pub enabled: bool,
    /// The data types that move.
    pub data_types: Vec<String>,
    /// The frequency.
    pub frequency: String,
    /// Provider settings.
    pub settings: serde_json::Value,
    /// The new status.
    pub status: Status,
    /// Why (with `needs_reauth`).
    pub status_reason: Option<String>,
    /// A new credential (bumps the version); `None` keeps the stored one.
    pub credential: Option<SealedCredential>,
}

impl IntegrationRows {
    /// The id of the integration of (`workspace`, `provider`), created (disabled, manual,
    /// no credential) with `new_id` when there is none.
    pub async fn ensure(
        &self,
        workspace: &str,
        provider: &str,
        new_id: &str,
    ) -> Result<String, IntegrationStoreError> {
        let select = "SELECT id FROM hangar_integrations WHERE workspace_id = $1 AND provider = $2";
        Ok(match self.db().pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO hangar_integrations (id, workspace_id, provider, enabled, \
                         frequency, status) VALUES ($1, $2, $3, FALSE, 'manual', 'disabled') \
                     ON CONFLICT (workspace_id, provider) DO NOTHING",
                )
                .bind(new_id)
                .bind(workspace)
                .bind(provider)
                .execute(pool)
                .await?;
                sqlx::query_scalar(select)
                    .bind(workspace)
                    .bind(provider)
                    .fetch_one(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                let now = ms(Utc::now());
                sqlx::query(
                    "INSERT INTO hangar_integrations (id, workspace_id, provider, enabled, \
                         frequency, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, 'manual', 'disabled', $4, $4) \
                     ON CONFLICT (workspace_id, provider) DO NOTHING",
                )
                .bind(new_id)
                .bind(workspace)
                .bind(provider)
                .bind(now)
                .execute(pool)
                .await?;
                sqlx::query_scalar(select)
                    .bind(workspace)
                    .bind(provider)
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// Writes an admin's settings (and credential, when given) to integration `id`.
    pub async fn update(
        &self,
        id: &str,
        update: &SettingsUpdate,
    ) -> Result<StoredIntegration, IntegrationStoreError> {
        let data_types = serde_json::Value::from(update.data_types.clone());
        let credential = update.credential.as_ref();
        let has_credential = credential.is_some();
        let (sealed, key_id, auth) = (
            credential.map(|c| c.sealed.clone()),
            credential.map(|c| c.key_id.clone()),
            credential.map(|c| c.auth.as_str()),
        );
        // A new credential replaces the old one whole, bumps the version (a refresh that read
        // the old one saves nothing) and ends any refresh lease.
        let updated = match self.db().pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE hangar_integrations SET enabled = $2, data_types = $3, \
                         frequency = $4, settings = $5, status = $6, status_reason = $7, \
                         updated_at = now(), \
                         credential_sealed = CASE WHEN $8 THEN $9 ELSE credential_sealed END, \
                         credential_key_id = CASE WHEN $8 THEN $10 ELSE credential_key_id END, \
                         auth = CASE WHEN $8 THEN $11 ELSE auth END, \
                         access_expires_at = CASE WHEN $8 THEN $12 ELSE access_expires_at END, \
                         credential_version = credential_version + CASE WHEN $8 THEN 1 ELSE 0 END, \
                         credential_saved_at = CASE WHEN $8 THEN now() ELSE credential_saved_at END, \
                         refresh_lease_until = CASE WHEN $8 THEN NULL ELSE refresh_lease_until END \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(update.enabled)
                .bind(&data_types)
                .bind(&update.frequency)
                .bind(&update.settings)
                .bind(update.status.as_str())
                .bind(&update.status_reason)
                .bind(has_credential)
                .bind(&sealed)
                .bind(&key_id)
                .bind(auth)
                .bind(credential.and_then(|c| c.expires_at))
                .execute(pool)
                .await?
                .rows_affected()
            }
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE hangar_integrations SET enabled = $2, data_types = $3, \
                         frequency = $4, settings = $5, status = $6, status_reason = $7, \
                         updated_at = $13, \
                         credential_sealed = CASE WHEN $8 THEN $9 ELSE credential_sealed END, \
                         credential_key_id = CASE WHEN $8 THEN $10 ELSE credential_key_id END, \
                         auth = CASE WHEN $8 THEN $11 ELSE auth END, \
                         access_expires_at = CASE WHEN $8 THEN $12 ELSE access_expires_at END, \
                         credential_version = credential_version + CASE WHEN $8 THEN 1 ELSE 0 END, \
                         credential_saved_at = CASE WHEN $8 THEN $13 ELSE credential_saved_at END, \
                         refresh_lease_until = CASE WHEN $8 THEN NULL ELSE refresh_lease_until END \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(update.enabled)
                .bind(data_types.to_string())
                .bind(&update.frequency)
                .bind(update.settings.to_string())
                .bind(update.status.as_str())
                .bind(&update.status_reason)
                .bind(has_credential)
                .bind(&sealed)
                .bind(&key_id)
                .bind(auth)
                .bind(credential.and_then(|c| c.expires_at).map(ms))
                .bind(ms(Utc::now()))
                .execute(pool)
                .await?
                .rows_affected()
            }
        };
        if updated == 0 {
            return Err(IntegrationStoreError::NotFound(id.to_owned()));
        }
        self.get(id).await
    }

    /// Integration `id`.
    pub async fn get(&self, id: &str) -> Result<StoredIntegration, IntegrationStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM hangar_integrations WHERE id = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        let row = match self.db().pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| from_pg(&r))
                .transpose()?,
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| from_sqlite(&r))
                .transpose()?,
        };
        row.ok_or_else(|| IntegrationStoreError::NotFound(id.to_owned()))
    }

    /// The integration of (`workspace`, `provider`), if there is one.
    pub async fn find(
        &self,
        workspace: &str,
        provider: &str,
    ) -> Result<Option<StoredIntegration>, IntegrationStoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM hangar_integrations WHERE workspace_id = $1 AND provider = $2"
        );
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match self.db().pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(workspace)
                .bind(provider)
                .fetch_optional(pool)
                .await?
                .map(|r| from_pg(&r))
                .transpose()?,
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(workspace)
                .bind(provider)
                .fetch_optional(pool)
                .await?
                .map(|r| from_sqlite(&r))
                .transpose()?,
        })
    }

    /// The integrations of `workspace` (every workspace's with `None`), by workspace and
    /// provider.
    pub async fn list(
        &self,
        workspace: Option<&str>,
    ) -> Result<Vec<StoredIntegration>, IntegrationStoreError> {
        let sql = |cast: &str| {
            sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM hangar_integrations \
                 WHERE ($1{cast} IS NULL OR workspace_id = $1) ORDER BY workspace_id, provider"
            ))
        };
        match self.db().pool() {
            Pool::Postgres(pool) => sqlx::query(sql("::TEXT"))
                .bind(workspace)
                .fetch_all(pool)
                .await?
                .iter()
                .map(from_pg)
                .collect(),
            Pool::Sqlite(pool) => sqlx::query(sql(""))
                .bind(workspace)
                .fetch_all(pool)
                .await?
                .iter()
                .map(from_sqlite)
                .collect(),
        }
    }

    /// Re-seals every stored credential in one transaction (`hangar keys rotate`):
    /// `reseal(id, sealed)` gives the new sealed value and its key id; its error rolls
    /// everything back. The version does not move (the tokens are the same); a value a
    /// refresh replaced meanwhile is left as that refresh sealed it. Returns how many.
    pub async fn reseal_credentials<E>(
        &self,
        mut reseal: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<u64, E>
    where
        E: From<IntegrationStoreError>,
    {
        let select = "SELECT id, credential_sealed FROM hangar_integrations \
                      WHERE credential_sealed IS NOT NULL ORDER BY id";
        let update = "UPDATE hangar_integrations SET credential_sealed = $3, \
                          credential_key_id = $4 WHERE id = $1 AND credential_sealed = $2";
        let db = |e: sqlx::Error| E::from(IntegrationStoreError::from(e));
        let mut n = 0;
        match self.db().pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db)?;
                let rows: Vec<(String, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                for (id, sealed) in rows {
                    let (resealed, key_id) = reseal(&id, &sealed)?;
                    n += sqlx::query(update)
                        .bind(&id)
                        .bind(&sealed)
                        .bind(&resealed)
                        .bind(&key_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?
                        .rows_affected();
                }
                tx.commit().await.map_err(db)?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
                let rows: Vec<(String, String)> = sqlx::query_as(select)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                for (id, sealed) in rows {
                    let (resealed, key_id) = reseal(&id, &sealed)?;
                    n += sqlx::query(update)
                        .bind(&id)
                        .bind(&sealed)
                        .bind(&resealed)
                        .bind(&key_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?
                        .rows_affected();
                }
                tx.commit().await.map_err(db)?;
            }
        }
        Ok(n)
    }
}
