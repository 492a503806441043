//! The dashboard's server-side sessions (their table and SQL: [`dashboard_sessions`]).
//! A session id is 32 random bytes from the OS, shown only to the browser (in its cookie);
//! the table keeps the id's SHA-256, the hash of the API token it was opened with, the role
//! and workspace, and the moment it ends. Each request that presents a live session moves
//! that moment to [`IDLE_LIMIT`] from now; revoking the token ends its sessions at once, and
//! signing out deletes the row.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::store::{Store, StoreError};
use sha2::{Digest, Sha256};

use crate::api::{Caller, Role};
use crate::store::dashboard_sessions::{self, NewSession};

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
    let session = NewSession {
        id_hash: &id_hash(id),
        token_hash,
        role: caller.role.as_str(),
        workspace_id: caller.workspace.as_deref(),
    };
    dashboard_sessions::insert(store.database(), &session, now, expires).await
}

/// The caller of a live session, its end moved to [`IDLE_LIMIT`] from now; `None` when
/// the session is unknown, has ended, or its token was revoked.
pub async fn resume(store: &Store, id: &str) -> Result<Option<Caller>, StoreError> {
    let now = Utc::now();
    let expires = now + chrono::Duration::milliseconds(idle_ms());
    let live = dashboard_sessions::resume(store.database(), &id_hash(id), now, expires).await?;
    let Some(live) = live else {
        return Ok(None);
    };
    Ok(Role::parse(&live.role).map(|role| Caller {
        token_id: live.token_id,
        name: live.token_name,
        role,
        workspace: live.workspace_id,
    }))
}

/// Deletes a session (sign-out).
pub async fn delete(store: &Store, id: &str) -> Result<(), StoreError> {
    dashboard_sessions::delete(store.database(), &id_hash(id)).await
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
