//! The API tokens (`hangar_api_tokens`): only a SHA-256 of each token is stored. On SQLite,
//! times are integer Unix milliseconds.

use chrono::{DateTime, Utc};
use hangar_workers::db::{Database, Pool};
use hangar_workers::store::StoreError;
use serde::Serialize;
use sqlx::Row;

/// An unrevoked token found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveToken {
    /// Its id.
    pub id: i64,
    /// Its name (recorded on the operators' job actions).
    pub name: String,
    /// Its role, as stored.
    pub role: String,
    /// Its workspace, if scoped.
    pub workspace_id: Option<String>,
}

/// A token as `hangar tokens list` shows it (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// Its workspace, if scoped.
    pub workspace_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The unrevoked token whose SHA-256 is `token_hash`.
pub async fn find_live(db: &Database, token_hash: &str) -> Result<Option<LiveToken>, StoreError> {
    let sql = "SELECT id, name, role, workspace_id FROM hangar_api_tokens \
               WHERE token_hash = $1 AND revoked_at IS NULL";
    let token = match db.pool() {
        Pool::Postgres(pool) => {
            let row = sqlx::query(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            row.map(|r| -> Result<LiveToken, sqlx::Error> {
                Ok(LiveToken {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    workspace_id: r.try_get("workspace_id")?,
                })
            })
        }
        Pool::Sqlite(pool) => {
            let row = sqlx::query(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            row.map(|r| -> Result<LiveToken, sqlx::Error> {
                Ok(LiveToken {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    workspace_id: r.try_get("workspace_id")?,
                })
            })
        }
    };
    Ok(token.transpose()?)
}

/// Stores a token by its hash; returns its id.
pub async fn insert(
    db: &Database,
    name: &str,
    role: &str,
    workspace: Option<&str>,
    token_hash: &str,
) -> Result<i64, StoreError> {
    let id = match db.pool() {
        Pool::Postgres(pool) => {
            sqlx::query_scalar(
                "INSERT INTO hangar_api_tokens (name, role, workspace_id, token_hash) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(role)
            .bind(workspace)
            .bind(token_hash)
            .fetch_one(pool)
            .await?
        }
        Pool::Sqlite(pool) => sqlx::query_scalar(
            "INSERT INTO hangar_api_tokens (name, role, workspace_id, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(role)
        .bind(workspace)
        .bind(token_hash)
        .bind(Utc::now().timestamp_millis())
        // To its end: the autocommit's commit (which may fail, e.g. on a full disk) comes
        // after the row; stopping at the row would hand out a token that was rolled back.
        .fetch_all(pool)
        .await?
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?,
    };
    Ok(id)
}

/// Every token, newest first.
pub async fn list(db: &Database) -> Result<Vec<TokenInfo>, StoreError> {
    let sql = "SELECT id, name, role, workspace_id, created_at, revoked_at \
               FROM hangar_api_tokens ORDER BY id DESC";
    let tokens = match db.pool() {
        Pool::Postgres(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<TokenInfo, sqlx::Error> {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    workspace_id: r.try_get("workspace_id")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, _>>()?,
        Pool::Sqlite(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<TokenInfo, sqlx::Error> {
                let ms = |t: i64| DateTime::from_timestamp_millis(t).unwrap_or_default();
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    workspace_id: r.try_get("workspace_id")?,
                    created_at: ms(r.try_get("created_at")?),
                    revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(ms),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(tokens)
}

/// Revokes a token; false when no unrevoked token has this id.
pub async fn revoke(db: &Database, id: i64) -> Result<bool, StoreError> {
    let done = match db.pool() {
        Pool::Postgres(pool) => sqlx::query(
            "UPDATE hangar_api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected(),
        Pool::Sqlite(pool) => sqlx::query(
            "UPDATE hangar_api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(Utc::now().timestamp_millis())
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(done == 1)
}
