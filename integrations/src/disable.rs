//! An integration whose provider says its destination is gone for good (Slack: the channel
//! was archived or deleted, `channel_not_found`/`is_archived`, or an incoming webhook
//! answered 410 `channel_is_archived`) is disabled by the sync run that met the answer:
//! status `disabled` with the provider's reason, its waiting jobs cancelled, its schedules
//! and event subscriptions removed (the events that follow are not sent into the void), and
//! a critical `channel_disabled` alert naming the integration. An admin who has fixed the
//! destination enables it again with `PUT …/integrations/{provider}`, which resolves the
//! alert ([`IntegrationContext::put`]); records still pending then go out.

use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::store::NewAlert;

use crate::configure::ConfigureError;
use crate::context::IntegrationContext;
use crate::integration::Status;
use crate::store::integrations::SettingsUpdate;

/// The incident key of an integration's "destination gone" alert.
pub fn gone_incident(integration_id: &str) -> String {
    format!("integration:{integration_id}:gone")
}

impl IntegrationContext {
    /// Disables integration `id` because its destination is gone (`reason`: the provider's
    /// answer, in Hangar's words); false when it was not active (nothing changed).
    pub async fn disable_gone(&self, id: &str, reason: &str) -> Result<bool, ConfigureError> {
        let before = self.rows.get(id).await?.integration;
        if before.status != Status::Active {
            return Ok(false);
        }
        let update = SettingsUpdate {
            enabled: false,
            data_types: before.data_types.clone(),
            frequency: before.frequency.clone(),
            settings: before.settings.clone(),
            status: Status::Disabled,
            status_reason: Some(reason.to_owned()),
            credential: None,
        };
        let updated = self.rows.update(id, &update).await?.integration;
        let cancelled = self
            .cancel_waiting_jobs(&updated, "integration disabled: destination gone")
            .await?;
        self.apply_schedules(&updated).await?;
        self.apply_event_subscriptions(&updated).await?;
        tracing::warn!(integration = %id, provider = %updated.provider, %reason, cancelled,
            "integration disabled: its destination is gone");
        let alert = NewAlert {
            workspace_id: Some(updated.workspace_id.clone()),
            kind: AlertKind::ChannelDisabled,
            severity: Severity::Critical,
            message: format!(
                "integration {} ({id}) was disabled: {reason}; fix the destination and \
                 enable it again",
                updated.provider
            ),
            incident_key: gone_incident(id),
            integration: Some(updated.provider.clone()),
        };
        self.store.raise_alerts(&[alert]).await?;
        Ok(true)
    }

    /// Resolves `integration_id`'s "destination gone" alert, if one is open (an admin
    /// enabled it again).
    pub async fn destination_back(&self, integration_id: &str) {
        match self
            .store
            .resolve_incident(
                &gone_incident(integration_id),
                "recovered: enabled again by an admin",
            )
            .await
        {
            Ok(true) => tracing::info!(integration = %integration_id, "destination alert resolved"),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(integration = %integration_id, %error, "could not resolve the destination alert")
            }
        }
    }
}
