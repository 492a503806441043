//! Bearer tokens and roles (MISSION.md §9, CONTRACT.md "HTTP API"). A token is `hgr_` and 64
//! hex digits (32 random bytes from the OS); only its SHA-256 is stored. Every route but the
//! OpenAPI document takes a [`Caller`], which answers 401 for a missing, unknown or revoked
//! token and 429 past the per-token rate; the handler then asks [`Caller::require`] for the
//! role it needs (403 otherwise) and keeps to the token's workspace.
//!
//! Roles: `viewer` reads; `operator` also retries, cancels, acknowledges and hands over jobs
//! and events; `admin` (operations) and `safety_manager` (safety) each add their domain;
//! `owner` may do everything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hangar_workers::job::{Job, JobId};
use hangar_workers::job_action::{ActionSource, Actor};
use hangar_workers::store::{Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState};
use crate::store::api_tokens;
pub use crate::store::api_tokens::TokenInfo;

/// A role of CONTRACT.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Owner,
    /// Operations: ops integrations, non-safety webhook endpoints, and all an operator does.
    Admin,
    /// Safety: safety integrations and safety webhook endpoints, and all an operator does.
    SafetyManager,
    /// Reads, retries, cancels, acknowledges; hands over jobs and events.
    Operator,
    /// Reads.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::SafetyManager,
        Role::Operator,
        Role::Viewer,
    ];

    /// The name used on the command line, in the API and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::SafetyManager => "safety_manager",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether this role may do what `need` asks.
    pub fn allows(self, need: Role) -> bool {
        match need {
            Role::Viewer => true,
            Role::Operator => self != Role::Viewer,
            Role::Admin => matches!(self, Role::Owner | Role::Admin),
            Role::SafetyManager => matches!(self, Role::Owner | Role::SafetyManager),
            Role::Owner => self == Role::Owner,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id.
    pub token_id: i64,
    /// Its name: who the operators' job actions record.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its workspace; `None` is valid for every workspace.
    pub workspace: Option<String>,
}

impl Caller {
    /// 403 unless the caller's role allows `need`.
    pub fn require(&self, need: Role) -> Result<(), ApiError> {
        if self.role.allows(need) {
            Ok(())
        } else {
            Err(ApiError::RoleNeeded {
                need,
                has: self.role,
            })
        }
    }

    /// Whether the caller may see a resource of `workspace`.
    pub fn sees(&self, workspace: Option<&str>) -> bool {
        match &self.workspace {
            None => true,
            Some(own) => workspace == Some(own.as_str()),
        }
    }

    /// The job, if the caller may see it: another workspace's job is "not found", as if it did
    /// not exist.
    pub async fn job(&self, store: &Store, id: JobId) -> Result<Job, StoreError> {
        let job = store.job(id).await?;
        if self.sees(job.workspace_id.as_deref()) {
            Ok(self.present(job))
        } else {
            Err(StoreError::JobNotFound(id))
        }
    }

    /// The job as this caller may see it: secrets in its args always `"<redacted>"`, and the
    /// args themselves only for `operator` and up (`null` for a viewer).
    pub fn present(&self, job: Job) -> Job {
        let mut job = job.redacted();
        if !self.role.allows(Role::Operator) {
            job.args = serde_json::Value::Null;
        }
        job
    }

    /// "Not found" unless alert `id` exists and the caller may see it: another workspace's
    /// alert is "not found", as if it did not exist.
    pub async fn check_alert(&self, store: &Store, id: i64) -> Result<(), StoreError> {
        let alert = store.alert(id).await?;
        if self.sees(alert.workspace_id.as_deref()) {
            Ok(())
        } else {
            Err(StoreError::AlertNotFound(id))
        }
    }

    /// Who the operators' job actions record for this caller: the token's name.
    pub fn actor(&self, source: ActionSource) -> Actor {
        Actor::new(self.name.clone(), source)
    }

    /// 403 unless the caller may act in `workspace`.
    pub fn require_workspace(&self, workspace: &str) -> Result<(), ApiError> {
        if self.sees(Some(workspace)) {
            Ok(())
        } else {
            Err(ApiError::OtherWorkspace(workspace.to_owned()))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization: Bearer <token>",
            ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "the Authorization header is not Bearer <token>",
            ))?;
        authenticate(state, token).await
    }
}

/// The caller a presented token stands for, after taking one request from its rate bucket:
/// 401 for an unknown or revoked token, 429 past the rate. The one lookup both the API's
/// `Authorization: Bearer` header and the dashboard's session cookie go through.
pub async fn authenticate(state: &ApiState, token: &str) -> Result<Caller, ApiError> {
    let caller = find_token(&state.store, &hash(token))
        .await?
        .ok_or(ApiError::Unauthorized("unknown or revoked token"))?;
    state.limiter.check(caller.token_id)?;
    Ok(caller)
}

/// SHA-256 of a token, lowercase hex: what the database keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("hgr_{}", hex::encode(bytes)))
}

async fn find_token(store: &Store, token_hash: &str) -> Result<Option<Caller>, StoreError> {
    let Some(token) = api_tokens::find_live(store.database(), token_hash).await? else {
        return Ok(None);
    };
    Ok(Role::parse(&token.role).map(|role| Caller {
        token_id: token.id,
        name: token.name,
        role,
        workspace: token.workspace_id,
    }))
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The operating system's random generator failed (no token can be made safely).
    #[error("the OS random generator failed: {0}")]
    Random(#[from] getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a new token; returns its id and the token (shown once).
pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
    workspace: Option<&str>,
) -> Result<(i64, String), TokenError> {
    let token = generate()?;
    let id = api_tokens::insert(
        store.database(),
        name,
        role.as_str(),
        workspace,
        &hash(&token),
    )
    .await?;
    Ok((id, token))
}

/// Every token, newest first.
pub async fn list_tokens(store: &Store) -> Result<Vec<TokenInfo>, StoreError> {
    api_tokens::list(store.database()).await
}

/// Revokes a token; false when no unrevoked token has this id.
pub async fn revoke_token(store: &Store, id: i64) -> Result<bool, StoreError> {
    api_tokens::revoke(store.database(), id).await
}

/// Requests per second each token may make, and the burst it may save up.
pub const RATE_PER_SEC: f64 = 50.0;
/// See [`RATE_PER_SEC`].
pub const BURST: f64 = 200.0;

/// A token bucket per token, in this process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request from the token's bucket; 429 with `Retry-After` when it is empty.
    pub fn check(&self, token_id: i64) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(token_id).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * RATE_PER_SEC).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - *tokens) / RATE_PER_SEC).ceil().max(1.0) as u64;
            Err(ApiError::RateLimited {
                rate: RATE_PER_SEC,
                retry_after: wait,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_mission_section_9_says() {
        use Role::*;
        let expect = [
            (Owner, [true, true, true, true, true]),
            (Admin, [false, true, false, true, true]),
            (SafetyManager, [false, false, true, true, true]),
            (Operator, [false, false, false, true, true]),
            (Viewer, [false, false, false, false, true]),
        ];
        for (role, allowed) in expect {
            for (need, ok) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.allows(need), ok, "{role:?} needs {need:?}");
            }
        }
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("hgr_") && a.len() == 68);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn the_bucket_empties_and_says_when_to_retry() {
        let limiter = RateLimiter::default();
        for _ in 0..BURST as usize {
            limiter.check(1).expect("within the burst");
        }
        assert!(limiter.check(1).is_err());
        limiter.check(2).expect("another token has its own bucket");
    }
}
