//! The seam between the sync engine and the integration store: what a `sync` job reads
//! about its integration *when it runs* (never a copy taken at enqueue), and the
//! single-flight refresh a connector asks for after a 401.

use crate::provider::Provider;
use hangar_workers::kinds::BoxFuture;

/// An integration as a running sync job sees it.
#[derive(Clone, Debug)]
pub struct IntegrationInfo {
    /// The integration's id (what a job's args carry).
    pub id: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// The provider.
    pub provider: Provider,
    /// Whether an admin enabled it.
    pub enabled: bool,
    /// The enabled data types (only these move).
    pub data_types: Vec<String>,
    /// Provider settings (e.g. `base_url`, `realm_id`); never a secret.
    pub settings: serde_json::Value,
}

/// The credential a call is made with, and the version it was read at (the fence of the
/// refresh: a refresh saves only if the version did not move).
#[derive(Clone)]
pub struct AccessToken {
    /// The bearer token (or API key). Never logged: `Debug` redacts it.
    pub token: String,
    /// `credential_version` when it was read.
    pub version: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("version", &self.version)
            .finish()
    }
}

/// Why a credential could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No such integration.
    #[error("integration {0} not found")]
    NotFound(String),
    /// The integration is disabled or needs re-authorisation: the job stops, no call is made.
    #[error("integration {id} is {status}")]
    NotActive { id: String, status: String },
    /// The provider refused the refresh for good (`invalid_grant`, a second 401): the
    /// connection was marked `needs_reauth`.
    #[error("integration {0} needs re-authorisation: {1}")]
    NeedsReauth(String, String),
    /// The token endpoint or the database failed transiently (5xx, 429, timeout, lock
    /// contention): retried later, never reported as a credential failure.
    #[error("transient: {0}")]
    Transient(String),
}

/// What the sync engine needs from the integration store.
pub trait IntegrationAccess: Send + Sync + 'static {
    /// Reads the integration.
    fn integration<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<IntegrationInfo, AccessError>>;

    /// The current access token (refreshing first if it expires within the margin).
    fn access_token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AccessToken, AccessError>>;

    /// After a 401 with the token read at `seen_version`: refresh single-flight (or take the
    /// token another process just saved) and return the new one.
    fn refresh_after_unauthorized<'a>(
        &'a self,
        id: &'a str,
        seen_version: i64,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>>;

    /// A 401 again with the token at `version`, the one the refresh after a first 401 gave:
    /// mark the connection `needs_reauth` (stop its schedules, raise the critical alert) fenced
    /// by that version, and fail with [`AccessError::NeedsReauth`]. If the version moved
    /// meanwhile, another refresher saved newer tokens: nothing is marked and its token is
    /// returned. The default (test seams without a store) marks nothing and reports the
    /// refusal.
    fn unauthorized_after_refresh<'a>(
        &'a self,
        id: &'a str,
        version: i64,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        let _ = version;
        Box::pin(async move { Err(AccessError::NeedsReauth(id.to_owned(), reason.to_owned())) })
    }

    /// The provider says the integration's destination is gone for good (`reason`): disable
    /// the integration, stop its schedules and subscriptions, and alert an admin. The
    /// default (test seams without a store) refuses, and the caller logs it.
    fn disable<'a>(
        &'a self,
        id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        let _ = reason;
        Box::pin(async move {
            Err(AccessError::NotActive {
                id: id.to_owned(),
                status: "not disabled: this access cannot change integrations".to_owned(),
            })
        })
    }
}
