//! [`IntegrationAccess`] over the integrations' store: what a running `sync` job reads about
//! its integration, *when it runs* (never a copy taken at enqueue), and its token, refreshed
//! single-flight when it expires within the margin or after a 401.

use hangar_workers::kinds::BoxFuture;

use crate::access::{AccessError, AccessToken, IntegrationAccess, IntegrationInfo};
use crate::context::IntegrationContext;
use crate::credentials::Credential;
use crate::integration::Status;
use crate::refresh::RefreshError;
use crate::store::IntegrationStoreError;
use crate::store::refresh::RefreshNeed;

fn read_error(error: IntegrationStoreError) -> AccessError {
    match error {
        IntegrationStoreError::NotFound(id) => AccessError::NotFound(id),
        other => AccessError::Transient(other.to_string()),
    }
}

impl IntegrationAccess for IntegrationContext {
    fn integration<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<IntegrationInfo, AccessError>> {
        Box::pin(async move {
            let row = self.rows.get(id).await.map_err(read_error)?;
            let i = row.integration;
            let provider = i
                .provider
                .parse()
                .map_err(|_| AccessError::Transient(format!("unknown provider {}", i.provider)))?;
            Ok(IntegrationInfo {
                enabled: i.enabled && i.status == Status::Active,
                id: i.id,
                workspace_id: i.workspace_id,
                provider,
                data_types: i.data_types,
                settings: i.settings,
            })
        })
    }

    fn access_token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            let row = self.rows.get(id).await.map_err(read_error)?;
            if row.integration.status != Status::Active {
                return Err(AccessError::from(match row.integration.status {
                    Status::NeedsReauth => RefreshError::NeedsReauth {
                        id: id.to_owned(),
                        reason: row.integration.status_reason.clone().unwrap_or_default(),
                    },
                    status => RefreshError::NotActive {
                        id: id.to_owned(),
                        status: status.as_str(),
                    },
                }));
            }
            let (credential, token) = self.open_token(&row)?;
            let margin = chrono::Duration::from_std(self.refresh.margin).unwrap_or_default();
            let refreshable =
                matches!(&credential, Credential::OAuth(o) if o.refresh_token.is_some());
            if refreshable && RefreshNeed::ExpiresWithin(margin).holds(&row, chrono::Utc::now()) {
                return Ok(self
                    .refresh_token(id, RefreshNeed::ExpiresWithin(margin))
                    .await?);
            }
            Ok(token)
        })
    }

    fn refresh_after_unauthorized<'a>(
        &'a self,
        id: &'a str,
        seen_version: i64,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            Ok(self
                .refresh_token(id, RefreshNeed::VersionIs(seen_version))
                .await?)
        })
    }

    fn unauthorized_after_refresh<'a>(
        &'a self,
        id: &'a str,
        version: i64,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            let mut integration = self.rows.get(id).await.map_err(read_error)?.integration;
            // Fenced by the version the refresh gave, not by the one read now: a newer one is
            // another refresher's, and a success.
            integration.credential_version = version;
            Ok(self.needs_reauth(&integration, reason).await?)
        })
    }

    fn disable<'a>(
        &'a self,
        id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move {
            self.disable_gone(id, reason)
                .await
                .map(drop)
                .map_err(|e| AccessError::Transient(e.to_string()))
        })
    }
}

/// What an inbound provider push asks of the integrations: the workspace's enabled, active
/// integration of that provider with the data type enabled (a QuickBooks payment change → its
/// `payments` sync).
impl hangar_workers::inbound::IntegrationSeam for IntegrationContext {
    fn integration_for<'a>(
        &'a self,
        workspace: &'a str,
        provider: &'a str,
        data_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let found = self
                .rows
                .find(workspace, provider)
                .await
                .map_err(|e| e.to_string())?;
            Ok(found.map(|row| row.integration).and_then(|i| {
                (i.enabled
                    && i.status == Status::Active
                    && i.data_types.iter().any(|d| d == data_type))
                .then_some(i.id)
            }))
        })
    }
}
