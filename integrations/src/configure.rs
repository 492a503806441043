//! What an admin does with an integration, over the store, the planner and the job store:
//! [`IntegrationContext::put`] (create or replace the settings, and the credential when one
//! is given: sealed for the row, the version bumped, the first `token_refresh` job planned,
//! a re-authorisation alert resolved as "recovered"; the schedules made to match; disabling
//! cancels the waiting jobs), reads, and [`IntegrationContext::sync_now`] (a manual sync: one
//! `sync` job per enabled data type).

use hangar_schedules::ScheduleError;
use hangar_workers::job::JobId;
use hangar_workers::store::StoreError;
use serde_json::json;

use crate::context::{IntegrationContext, SYNC, job};
use crate::credentials;
use crate::integration::{self, Integration, IntegrationRequest, InvalidField, Status};
use crate::provider::Provider;
use crate::store::IntegrationRows;
use crate::store::IntegrationStoreError;
use crate::store::integrations::{SealedCredential, SettingsUpdate};
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;

/// What can go wrong when an admin configures or syncs an integration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// A field of the request is not acceptable (422); the message names it.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The workspace has no integration with this provider.
    #[error("workspace {workspace} has no {provider} integration")]
    NotFound {
        /// The workspace.
        workspace: String,
        /// The provider.
        provider: String,
    },
    /// The integration cannot sync now (disabled, needs re-authorisation, or the data type
    /// is not enabled): 409.
    #[error("{0}")]
    Conflict(String),
    /// The integrations' store failed.
    #[error(transparent)]
    Store(#[from] IntegrationStoreError),
    /// The planner's schedules failed.
    #[error(transparent)]
    Schedules(#[from] ScheduleError),
    /// The job store failed.
    #[error(transparent)]
    Jobs(#[from] StoreError),
}

impl IntegrationContext {
    /// Creates or replaces `workspace`'s integration with `provider` (see the module doc).
    pub async fn put(
        &self,
        workspace: &str,
        provider: Provider,
        request: IntegrationRequest,
    ) -> Result<Integration, ConfigureError> {
        request.check(provider, &self.connectors, &self.targets)?;
        crate::connectors::manifest::enable::check(
            provider,
            request.enabled,
            &request.data_types,
            &request.settings,
            request.credentials.as_ref(),
        )?;
        let id = self
            .rows
            .ensure(workspace, provider.id(), &integration::new_id())
            .await?;
        let before = self.rows.get(&id).await?.integration;
        let sealed = request.credentials.as_ref().map(|credential| {
            let (sealed, key_id) = credentials::seal(&self.keyring, &id, credential);
            SealedCredential {
                sealed,
                key_id,
                auth: credential.kind(),
                expires_at: credential.expires_at(),
            }
        });
        // New credentials are what re-authorisation means; without them a connection that
        // needs it keeps needing it, whatever else changed.
        let status = match (request.enabled, &sealed, before.status) {
            (false, _, _) => Status::Disabled,
            (true, None, Status::NeedsReauth) => Status::NeedsReauth,
            _ => Status::Active,
        };
        let status_reason = (status == Status::NeedsReauth)
            .then(|| before.status_reason.clone())
            .flatten();
        let update = SettingsUpdate {
            enabled: request.enabled,
            data_types: request.data_types.clone(),
            frequency: request.frequency.trim().to_owned(),
            settings: request.settings.clone(),
            status,
            status_reason,
            credential: sealed,
        };
        let updated = self.rows.update(&id, &update).await?.integration;
        if request.credentials.is_some() {
            self.recovered(&updated, "recovered: new credentials saved")
                .await;
        }
        if status == Status::Active && before.status == Status::Disabled {
            self.destination_back(&id).await;
        }
        if status == Status::Active && before.status != Status::Active
            || request.credentials.is_some()
        {
            self.plan_refresh(&updated, request.credentials.as_ref())
                .await?;
        }
        if status != Status::Active {
            let cancelled = self
                .cancel_waiting_jobs(&updated, &format!("integration {}", status.as_str()))
                .await?;
            if cancelled > 0 {
                tracing::info!(integration = %id, cancelled, "waiting jobs of a stopped integration cancelled");
            }
        }
        let planned = self.apply_schedules(&updated).await?;
        self.apply_event_subscriptions(&updated).await?;
        tracing::info!(
            integration = %id,
            workspace,
            provider = %provider,
            status = status.as_str(),
            planned,
            credential_changed = request.credentials.is_some(),
            "integration configured"
        );
        Ok(updated.with_directions(&self.connectors))
    }

    /// Plans the `token_refresh` job of an integration that just became active or got new
    /// credentials (`credential`, or the stored one): the one its last save planned may
    /// have been cancelled when it was disabled, so this one's key names the moment too.
    async fn plan_refresh(
        &self,
        integration: &Integration,
        credential: Option<&crate::credentials::Credential>,
    ) -> Result<(), ConfigureError> {
        let stored;
        let credential = match credential {
            Some(credential) => credential,
            None => {
                let row = self.rows.get(&integration.id).await?;
                match self.open_token(&row) {
                    Ok((opened, _)) => {
                        stored = opened;
                        &stored
                    }
                    // No credential (or one this process cannot open): nothing to refresh;
                    // the sync that needs it says so.
                    Err(_) => return Ok(()),
                }
            }
        };
        let version = integration.credential_version;
        if let Some(mut job) = self.next_refresh_job(integration, version, credential) {
            job.idempotency_key = Some(format!(
                "hangar:token_refresh:{}:{version}:{}",
                integration.id,
                integration.updated_at.timestamp_millis()
            ));
            self.store.enqueue(&job).await?;
        }
        Ok(())
    }

    /// `workspace`'s integration with `provider`.
    pub async fn find(
        &self,
        workspace: &str,
        provider: Provider,
    ) -> Result<Integration, ConfigureError> {
        self.rows
            .find(workspace, provider.id())
            .await?
            .map(|row| row.integration.with_directions(&self.connectors))
            .ok_or_else(|| ConfigureError::NotFound {
                workspace: workspace.to_owned(),
                provider: provider.id().to_owned(),
            })
    }

    /// The integrations of `workspace` (every workspace's with `None`).
    pub async fn list(&self, workspace: Option<&str>) -> Result<Vec<Integration>, ConfigureError> {
        Ok(self
            .rows
            .list(workspace)
            .await?
            .into_iter()
            .map(|row| row.integration.with_directions(&self.connectors))
            .collect())
    }

    /// A manual sync (see [`sync_now`]).
    pub async fn sync_now(
        &self,
        workspace: &str,
        provider: Provider,
        data_type: Option<&str>,
    ) -> Result<Vec<JobId>, ConfigureError> {
        sync_now(
            &self.rows,
            &self.store,
            &self.routes,
            workspace,
            provider,
            data_type,
        )
        .await
    }
}

/// A manual sync of `workspace`'s `provider` integration: one `sync` job per enabled data
/// type (or only `data_type`), with `{"integration_id", "data_type", "trigger": "manual"}`.
/// Returns the jobs' ids, in the order of the data types.
pub async fn sync_now(
    rows: &IntegrationRows,
    store: &Store,
    routes: &Routes,
    workspace: &str,
    provider: Provider,
    data_type: Option<&str>,
) -> Result<Vec<JobId>, ConfigureError> {
    let integration = rows
        .find(workspace, provider.id())
        .await?
        .map(|row| row.integration)
        .ok_or_else(|| ConfigureError::NotFound {
            workspace: workspace.to_owned(),
            provider: provider.id().to_owned(),
        })?;
    if integration.status != Status::Active {
        return Err(ConfigureError::Conflict(format!(
            "integration {} ({}) is {}: enable it (or give new credentials) first",
            integration.provider,
            integration.id,
            integration.status.as_str()
        )));
    }
    let data_types: Vec<&String> = match data_type {
        None => integration.data_types.iter().collect(),
        Some(wanted) => {
            let found: Vec<&String> = integration
                .data_types
                .iter()
                .filter(|d| d.as_str() == wanted)
                .collect();
            if found.is_empty() {
                return Err(ConfigureError::Conflict(format!(
                    "data type '{wanted}' is not enabled for {} (enabled: {})",
                    integration.provider,
                    integration.data_types.join(", ")
                )));
            }
            found
        }
    };
    let mut ids = Vec::with_capacity(data_types.len());
    for data_type in data_types {
        let job = job(
            routes,
            SYNC,
            workspace,
            json!({
                "integration_id": integration.id,
                "data_type": data_type,
                "trigger": "manual",
            }),
        );
        ids.push(store.enqueue(&job).await?.id);
    }
    tracing::info!(integration = %integration.id, jobs = ids.len(), "manual sync enqueued");
    Ok(ids)
}
