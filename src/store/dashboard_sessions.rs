//! The dashboard's server-side sessions (`hangar_dashboard_sessions`): a row per session,
//! keyed by the SHA-256 of its id, with the hash of the token it was opened with (a revoked
//! token ends its sessions), the role and workspace, and when it ends. On SQLite, times are
//! integer Unix milliseconds.

use chrono::{DateTime, Utc};
use hangar_workers::db::{Database, Pool};
use hangar_workers::store::StoreError;
use sqlx::Row;

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 of the session id.
    pub id_hash: &'a str,
    /// SHA-256 of the token it was opened with.
    pub token_hash: &'a str,
    /// The token's role.
    pub role: &'a str,
    /// The token's workspace.
    pub workspace_id: Option<&'a str>,
}

/// A live session's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The id of the token it was opened with.
    pub token_id: i64,
    /// The token's name (recorded on the operators' job actions).
    pub token_name: String,
    /// The role, as stored.
    pub role: String,
    /// The workspace.
    pub workspace_id: Option<String>,
}

/// Deletes the sessions that ended before `now`, then stores `session`, ending at `expires`.
pub async fn insert(
    db: &Database,
    session: &NewSession<'_>,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<(), StoreError> {
    let insert = "INSERT INTO hangar_dashboard_sessions \
                  (id_hash, token_hash, role, workspace_id, created_at, expires_at) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
    let sweep = "DELETE FROM hangar_dashboard_sessions WHERE expires_at < $1";
    match db.pool() {
        Pool::Postgres(pool) => {
            sqlx::query(sweep).bind(now).execute(pool).await?;
            sqlx::query(insert)
                .bind(session.id_hash)
                .bind(session.token_hash)
                .bind(session.role)
                .bind(session.workspace_id)
                .bind(now)
                .bind(expires)
                .execute(pool)
                .await?;
        }
        Pool::Sqlite(pool) => {
            sqlx::query(sweep)
                .bind(now.timestamp_millis())
                .execute(pool)
                .await?;
            sqlx::query(insert)
                .bind(session.id_hash)
                .bind(session.token_hash)
                .bind(session.role)
                .bind(session.workspace_id)
                .bind(now.timestamp_millis())
                .bind(expires.timestamp_millis())
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The session `id_hash` if it is live at `now` and its token unrevoked, its end moved to
/// `expires`; `None` otherwise.
pub async fn resume(
    db: &Database,
    id_hash: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<Option<LiveSession>, StoreError> {
    let find = "SELECT t.id, s.role, s.workspace_id, t.name FROM hangar_dashboard_sessions s \
                JOIN hangar_api_tokens t ON t.token_hash = s.token_hash AND t.revoked_at IS NULL \
                WHERE s.id_hash = $1 AND s.expires_at > $2";
    let slide = "UPDATE hangar_dashboard_sessions SET expires_at = $2 WHERE id_hash = $1";
    let row = match db.pool() {
        Pool::Postgres(pool) => {
            let row = sqlx::query(find)
                .bind(id_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            if row.is_some() {
                sqlx::query(slide)
                    .bind(id_hash)
                    .bind(expires)
                    .execute(pool)
                    .await?;
            }
            row.map(|r| -> Result<LiveSession, sqlx::Error> {
                Ok(LiveSession {
                    token_id: r.try_get(0)?,
                    role: r.try_get(1)?,
                    workspace_id: r.try_get(2)?,
                    token_name: r.try_get(3)?,
                })
            })
        }
        Pool::Sqlite(pool) => {
            let row = sqlx::query(find)
                .bind(id_hash)
                .bind(now.timestamp_millis())
                .fetch_optional(pool)
                .await?;
            if row.is_some() {
                sqlx::query(slide)
                    .bind(id_hash)
                    .bind(expires.timestamp_millis())
                    .execute(pool)
                    .await?;
            }
            row.map(|r| -> Result<LiveSession, sqlx::Error> {
                Ok(LiveSession {
                    token_id: r.try_get(0)?,
                    role: r.try_get(1)?,
                    workspace_id: r.try_get(2)?,
                    token_name: r.try_get(3)?,
                })
            })
        }
    };
    Ok(row.transpose()?)
}

/// Deletes the session `id_hash` (sign-out).
pub async fn delete(db: &Database, id_hash: &str) -> Result<(), StoreError> {
    let sql = "DELETE FROM hangar_dashboard_sessions WHERE id_hash = $1";
    match db.pool() {
        Pool::Postgres(pool) => {
            sqlx::query(sql).bind(id_hash).execute(pool).await?;
        }
        Pool::Sqlite(pool) => {
            sqlx::query(sql).bind(id_hash).execute(pool).await?;
        }
    }
    Ok(())
}
