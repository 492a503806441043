//! The dashboard's server-side sessions (table `hangar_dashboard_sessions`, migration 0011).
//! A session id is 32 random bytes from the OS, shown only to the browser (in its cookie);
//! the table keeps the id's SHA-256, the hash of the API token it was opened with, the role
//! and workspace, and the moment it ends. Each request that presents a live session moves
//! that moment to [`IDLE_LIMIT`] from now; revoking the token ends its sessions at once, and
//! signing out deletes the row.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::db::Pool;
use hangar_workers::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::api::{Caller, Role};

/// How long a session lasts without a request (sliding).
pub const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// The prefix of a session id, so that it is never mistaken for an API token (`hgr_`).
const PREFIX: &str = "hds_";

/// A new random session id (the cookie's value).
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// Whether `id` has the shape of a session id, which also keeps the cookie value free of
/// characters a cookie cannot hold.
pub fn looks_like_id(id: &str) -> bool {
    id.strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SHA-256 of a session id, lowercase hex: what the table keeps.
fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn idle_ms() -> i64 {
    IDLE_LIMIT.as_millis() as i64
}

/// Stores a session of `caller`, opened with the token whose hash is `token_hash`, and
/// deletes the sessions that have ended meanwhile.
pub async fn create(
    store: &Store,
    id: &str,
    token_hash: &str,
    caller: &Caller,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let expires = now + chrono::Duration::milliseconds(idle_ms());
    let insert = "INSERT INTO hangar_dashboard_sessions \
                  (id_hash, token_hash, role, workspace_id, created_at, expires_at) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
    let sweep = "DELETE FROM hangar_dashboard_sessions WHERE expires_at < $1";
    match store.database().pool() {
        Pool::Postgres(pg) => {
            sqlx::query(sweep).bind(now).execute(pg).await?;
            sqlx::query(insert)
                .bind(id_hash(id))
                .bind(token_hash)
                .bind(caller.role.as_str())
                .bind(&caller.workspace)
                .bind(now)
                .bind(expires)
                .execute(pg)
                .await?;
        }
        Pool::Sqlite(lite) => {
            sqlx::query(sweep)
                .bind(now.timestamp_millis())
                .execute(lite)
                .await?;
            sqlx::query(insert)
                .bind(id_hash(id))
                .bind(token_hash)
                .bind(caller.role.as_str())
                .bind(&caller.workspace)
                .bind(now.timestamp_millis())
                .bind(expires.timestamp_millis())
                .execute(lite)
                .await?;
        }
    }
    Ok(())
}

/// The caller of a live session, its end moved to [`IDLE_LIMIT`] from now; `None` when
/// the session is unknown, has ended, or its token was revoked.
pub async fn resume(store: &Store, id: &str) -> Result<Option<Caller>, StoreError> {
    let find = "SELECT t.id, s.role, s.workspace_id FROM hangar_dashboard_sessions s \
                JOIN hangar_api_tokens t ON t.token_hash = s.token_hash AND t.revoked_at IS NULL \
                WHERE s.id_hash = $1 AND s.expires_at > $2";
    let slide = "UPDATE hangar_dashboard_sessions SET expires_at = $2 WHERE id_hash = $1";
    let hash = id_hash(id);
    let now = Utc::now();
    let expires = now + chrono::Duration::milliseconds(idle_ms());
    let row = match store.database().pool() {
        Pool::Postgres(pg) => {
            let row = sqlx::query(find)
                .bind(&hash)
                .bind(now)
                .fetch_optional(pg)
                .await?;
            if row.is_some() {
                sqlx::query(slide)
                    .bind(&hash)
                    .bind(expires)
                    .execute(pg)
                    .await?;
            }
            row.map(|r| -> Result<(i64, String, Option<String>), sqlx::Error> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
            })
        }
        Pool::Sqlite(lite) => {
            let row = sqlx::query(find)
                .bind(&hash)
                .bind(now.timestamp_millis())
                .fetch_optional(lite)
                .await?;
            if row.is_some() {
                sqlx::query(slide)
                    .bind(&hash)
                    .bind(expires.timestamp_millis())
                    .execute(lite)
                    .await?;
            }
            row.map(|r| -> Result<(i64, String, Option<String>), sqlx::Error> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
            })
        }
    };
    let Some((token_id, role, workspace)) = row.transpose()? else {
        return Ok(None);
    };
    Ok(Role::parse(&role).map(|role| Caller {
        token_id,
        role,
        workspace,
    }))
}

/// Deletes a session (sign-out).
pub async fn delete(store: &Store, id: &str) -> Result<(), StoreError> {
    let sql = "DELETE FROM hangar_dashboard_sessions WHERE id_hash = $1";
    match store.database().pool() {
        Pool::Postgres(pg) => {
            sqlx::query(sql).bind(id_hash(id)).execute(pg).await?;
        }
        Pool::Sqlite(lite) => {
            sqlx::query(sql).bind(id_hash(id)).execute(lite).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_and_not_tokens() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_ne!(a, b);
        assert!(looks_like_id(&a) && a.len() == 68);
        assert!(!looks_like_id(&format!("hgr_{}", "ab".repeat(32))));
        assert!(!looks_like_id("hds_zz"));
        assert_ne!(id_hash(&a), a);
    }
}
