//! The token refresh, single-flight per connection across every process: take the
//! connection's refresh lease under its row lock after re-reading it (and only if a refresh
//! is still needed, see [`RefreshNeed`]); call the token endpoint with no lock held; save the
//! new access token and the rotated refresh token (an omitted one keeps the old) fenced by
//! `credential_version`, with the next `token_refresh` job in the same transaction. A
//! process that finds another's lease waits for its save (up to [`RefreshConfig::wait`],
//! then it is transient, never a credential failure). A refusal by the endpoint marks the
//! connection `needs_reauth`, fenced the same way (if the version moved meanwhile, another
//! refresher won: a success), stops its schedules and raises a critical alert to the
//! workspace; new credentials or a successful refresh resolve it ("recovered").
//!
//! Counted in `hangar_token_refreshes_total{outcome}`: `refreshed`, `already_refreshed`
//! (another process's refresh served), `needs_reauth`, `transient`.
//!
//! [`RefreshConfig::wait`]: crate::context::RefreshConfig::wait

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::NewJob;
use hangar_workers::store::NewAlert;
use serde_json::json;

use crate::access::{AccessError, AccessToken};
use crate::context::{IntegrationContext, TOKEN_REFRESH};
use crate::credentials::{self, Credential};
use crate::integration::{Integration, Status};
use crate::store::refresh::{Claim, RefreshNeed};
use crate::store::{IntegrationStoreError, StoredIntegration};
use crate::token_endpoint::{self, TokenCallError};

/// Why a refresh gave no token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefreshError {
    /// No such integration.
    #[error("integration {0} not found")]
    NotFound(String),
    /// Disabled or already waiting for re-authorisation: nothing is called.
    #[error("integration {id} is {status}")]
    NotActive {
        /// The integration.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// The provider refused the credential: the connection is now `needs_reauth`.
    #[error("integration {id} needs re-authorisation: {reason}")]
    NeedsReauth {
        /// The integration.
        id: String,
        /// The provider's answer.
        reason: String,
    },
    /// Try again later (the retry table): the endpoint's 5xx, 429 or timeout, another
    /// process's refresh still running, the database busy.
    #[error("{reason}")]
    Transient {
        /// What happened.
        reason: String,
        /// `timeout`, `rate_limit` or `server`.
        class: ErrorClass,
        /// A 429's `Retry-After`.
        retry_after: Option<String>,
    },
}

impl From<RefreshError> for AccessError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::NotFound(id) => AccessError::NotFound(id),
            RefreshError::NotActive { id, status } => AccessError::NotActive {
                id,
                status: status.to_owned(),
            },
            RefreshError::NeedsReauth { id, reason } => AccessError::NeedsReauth(id, reason),
            RefreshError::Transient { reason, .. } => AccessError::Transient(reason),
        }
    }
}

fn store_error(error: IntegrationStoreError) -> RefreshError {
    match error {
        IntegrationStoreError::NotFound(id) => RefreshError::NotFound(id),
        // SQLite's "database is locked" after its busy timeout, a lost connection: lock
        // contention is never a credential failure.
        other => RefreshError::Transient {
            reason: format!("the integration store is busy or unreachable: {other}"),
            class: ErrorClass::Server,
            retry_after: None,
        },
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("hangar_token_refreshes_total", "outcome" => outcome).increment(1);
}

/// The incident key of an integration's re-authorisation alert.
pub fn reauth_incident(integration_id: &str) -> String {
    format!("integration:{integration_id}:reauth")
}

impl IntegrationContext {
    /// The credential of `row`, opened, as the token a call carries.
    pub fn open_token(
        &self,
        row: &StoredIntegration,
    ) -> Result<(Credential, AccessToken), RefreshError> {
        let id = &row.integration.id;
        let sealed = row
            .sealed
            .as_deref()
            .ok_or_else(|| RefreshError::NeedsReauth {
                id: id.clone(),
                reason: "no credential was given".to_owned(),
            })?;
        let credential =
            credentials::open(&self.keyring, id, sealed).map_err(|e| RefreshError::Transient {
                reason: e.to_string(),
                class: ErrorClass::Internal,
                retry_after: None,
            })?;
        let token = AccessToken {
            token: credential.bearer().to_owned(),
            version: row.integration.credential_version,
        };
        Ok((credential, token))
    }

    /// Refreshes integration `id`'s token if `need` still holds once its row is locked
    /// (single-flight across processes), and returns the token to use.
    pub async fn refresh_token(
        &self,
        id: &str,
        need: RefreshNeed,
    ) -> Result<AccessToken, RefreshError> {
        let deadline = Instant::now() + self.refresh.wait;
        let mut pause = Duration::from_millis(20);
        let lease = chrono::Duration::from_std(self.refresh.lease).unwrap_or_default();
        loop {
            let claim = self
                .rows
                .claim_refresh(id, need, &self.owner, lease)
                .await
                .map_err(store_error)?;
            let row = match claim {
                Claim::Inactive(row) => return Err(inactive(&row.integration)),
                Claim::NotNeeded(row) => {
                    count("already_refreshed");
                    return self.open_token(&row).map(|(_, token)| token);
                }
                Claim::Busy if Instant::now() >= deadline => {
                    count("transient");
                    return Err(RefreshError::Transient {
                        reason: "another process is refreshing this connection's token".to_owned(),
                        class: ErrorClass::Timeout,
                        retry_after: None,
                    });
                }
                Claim::Busy => {
                    // Another process holds the lease: its save (or release) comes within
                    // the lease; re-read until then.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                    continue;
                }
                Claim::Claimed(row) => row,
            };
            match self.refresh_claimed(&row).await {
                Ok(Some(token)) => return Ok(token),
                // The version moved between the claim and the save (an admin's new
                // credentials): read again.
                Ok(None) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Calls the token endpoint for a claimed row and saves or classifies the answer.
    /// `Ok(None)`: the save found the version moved.
    async fn refresh_claimed(
        &self,
        row: &StoredIntegration,
    ) -> Result<Option<AccessToken>, RefreshError> {
        let integration = &row.integration;
        let id = &integration.id;
        let (credential, _) = match self.open_token(row) {
            Ok(opened) => opened,
            Err(error) => {
                let _ = self.rows.release_refresh(id, &self.owner).await;
                return Err(error);
            }
        };
        let answer = match (&credential, integration.provider()) {
            (Credential::OAuth(oauth), Some(provider)) => {
                token_endpoint::refresh(&self.http, provider, oauth, self.refresh.call_timeout)
                    .await
                    .map(|tokens| (oauth.clone(), tokens))
            }
            (Credential::OAuth(_), None) => Err(TokenCallError::Refused(format!(
                "unknown provider '{}'",
                integration.provider
            ))),
            (Credential::ApiKey(_) | Credential::Secrets(_), _) => Err(TokenCallError::Refused(
                "the provider refused the API key".to_owned(),
            )),
        };
        match answer {
            Ok((mut oauth, tokens)) => {
                oauth.access_token = tokens.access_token;
                // A provider that does not rotate omits the refresh token: keep the old one.
                if let Some(rotated) = tokens.refresh_token {
                    oauth.refresh_token = Some(rotated);
                }
                oauth.expires_at = tokens.expires_at;
                let new = Credential::OAuth(oauth);
                let (sealed, key_id) = credentials::seal(&self.keyring, id, &new);
                let version = integration.credential_version;
                let next = self.next_refresh_job(integration, version + 1, &new);
                let saved = self
                    .rows
                    .save_refreshed(
                        id,
                        version,
                        &sealed,
                        &key_id,
                        new.expires_at(),
                        next.as_ref(),
                    )
                    .await
                    .map_err(store_error)?;
                if !saved {
                    return Ok(None);
                }
                count("refreshed");
                tracing::info!(integration = %id, provider = %integration.provider, version = version + 1, "token refreshed");
                self.recovered(integration, "recovered: the token was refreshed")
                    .await;
                Ok(Some(AccessToken {
                    token: new.bearer().to_owned(),
                    version: version + 1,
                }))
            }
            Err(TokenCallError::Transient {
                reason,
                class,
                retry_after,
            }) => {
                count("transient");
                let _ = self.rows.release_refresh(id, &self.owner).await;
                tracing::warn!(integration = %id, provider = %integration.provider, %reason, "token refresh failed; will retry");
                Err(RefreshError::Transient {
                    reason,
                    class,
                    retry_after,
                })
            }
            Err(TokenCallError::Refused(reason)) => {
                self.needs_reauth(integration, &reason).await.map(Some)
            }
        }
    }

    /// Marks `integration` (as read, at its version) `needs_reauth` for `reason`, stops its
    /// schedules and raises the critical alert; if the version moved first, another
    /// refresher won and its token is returned instead.
    pub async fn needs_reauth(
        &self,
        integration: &Integration,
        reason: &str,
    ) -> Result<AccessToken, RefreshError> {
        let id = &integration.id;
        let marked = self
            .rows
            .mark_needs_reauth(id, integration.credential_version, reason)
            .await
            .map_err(store_error)?;
        if !marked {
            let now = self.rows.get(id).await.map_err(store_error)?;
            if now.integration.credential_version != integration.credential_version
                && now.integration.status == Status::Active
            {
                count("already_refreshed");
                return self.open_token(&now).map(|(_, token)| token);
            }
            return Err(inactive(&now.integration));
        }
        count("needs_reauth");
        tracing::warn!(integration = %id, provider = %integration.provider, %reason, "integration needs re-authorisation");
        if let Err(error) = self.stop_schedules(integration).await {
            tracing::error!(integration = %id, %error, "could not stop the schedules of an integration that needs re-authorisation");
        }
        let alert = NewAlert {
            workspace_id: Some(integration.workspace_id.clone()),
            kind: AlertKind::ReauthRequired,
            severity: Severity::Critical,
            message: format!(
                "integration {} ({id}) needs re-authorisation: {reason}; its syncs are stopped \
                 until an admin gives new credentials",
                integration.provider
            ),
            incident_key: reauth_incident(id),
            integration: Some(integration.provider.clone()),
        };
        if let Err(error) = self.store.raise_alerts(&[alert]).await {
            tracing::error!(integration = %id, %error, "could not raise the re-authorisation alert");
        }
        Err(RefreshError::NeedsReauth {
            id: id.clone(),
            reason: reason.to_owned(),
        })
    }

    /// Resolves `integration`'s re-authorisation alert, if one is open, with `note`.
    pub async fn recovered(&self, integration: &Integration, note: &str) {
        match self
            .store
            .resolve_incident(&reauth_incident(&integration.id), note)
            .await
        {
            Ok(true) => {
                tracing::info!(integration = %integration.id, "integration recovered; alert resolved")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(integration = %integration.id, %error, "could not resolve the re-authorisation alert")
            }
        }
    }

    /// The `token_refresh` job for `credential` at `version`: before the access token
    /// expires (by the margin) and at least every [`RefreshConfig::at_least_every`];
    /// none for a credential that cannot be refreshed. One job per version (its key).
    ///
    /// [`RefreshConfig::at_least_every`]: crate::context::RefreshConfig::at_least_every
    pub fn next_refresh_job(
        &self,
        integration: &Integration,
        version: i64,
        credential: &Credential,
    ) -> Option<NewJob> {
        let Credential::OAuth(oauth) = credential else {
            return None;
        };
        oauth.refresh_token.as_ref()?;
        let run_at = next_refresh_at(
            Utc::now(),
            oauth.expires_at,
            self.refresh.margin,
            self.refresh.at_least_every,
        );
        let mut job = self.job(
            TOKEN_REFRESH,
            &integration.workspace_id,
            json!({"integration_id": integration.id, "version": version}),
        );
        job.run_at = Some(run_at);
        job.idempotency_key = Some(format!("hangar:token_refresh:{}:{version}", integration.id));
        Some(job)
    }
}

/// When to refresh a token expiring at `expires_at`: `margin` before it, and no later than
/// `at_least_every` from `now` (rolling refresh tokens stay alive); now if that has passed.
pub fn next_refresh_at(
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    margin: Duration,
    at_least_every: Duration,
) -> DateTime<Utc> {
    let daily = now + chrono::Duration::from_std(at_least_every).unwrap_or_default();
    let before_expiry =
        expires_at.map(|e| e - chrono::Duration::from_std(margin).unwrap_or_default());
    before_expiry.map_or(daily, |b| b.min(daily)).max(now)
}

fn inactive(integration: &Integration) -> RefreshError {
    match integration.status {
        Status::NeedsReauth => RefreshError::NeedsReauth {
            id: integration.id.clone(),
            reason: integration
                .status_reason
                .clone()
                .unwrap_or_else(|| "re-authorisation required".to_owned()),
        },
        status => RefreshError::NotActive {
            id: integration.id.clone(),
            status: status.as_str(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_refresh_comes_before_expiry_and_at_least_daily() {
        let now = Utc::now();
        let margin = Duration::from_secs(900);
        let day = Duration::from_secs(86_400);
        let hour = chrono::Duration::hours(1);
        assert_eq!(
            next_refresh_at(now, Some(now + hour), margin, day),
            now + chrono::Duration::minutes(45)
        );
        assert_eq!(
            next_refresh_at(now, Some(now + chrono::Duration::days(3)), margin, day),
            now + chrono::Duration::days(1)
        );
        assert_eq!(
            next_refresh_at(now, None, margin, day),
            now + chrono::Duration::days(1)
        );
        assert_eq!(
            next_refresh_at(now, Some(now), margin, day),
            now,
            "overdue: now"
        );
    }
}
