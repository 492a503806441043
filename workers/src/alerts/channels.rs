//! Alert channel rows (`hangar_alert_channels`, migration 0005): add, list, remove, disable,
//! open the sealed configuration, and re-seal every configuration under a new master key.
//! The configuration is sealed with the row id as associated data; listings carry only the
//! `summary` (a host, a recipient count), never a secret or a URL with its token.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AlertError;
use super::model::{AlertKind, Channel, ChannelKind, Severity};
use crate::secrets::{Keyring, MasterKey};
use crate::signing::WebhookSecret;
use crate::store::{AlertRow, NewAlert, NewChannelRow, Store, StoreError};

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: a local relay on a trusted network (and tests).
    None,
}

/// SMTP settings of an email channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmailConfig {
    /// SMTP server host.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// SMTP AUTH user, if the server needs one.
    pub username: Option<String>,
    /// SMTP AUTH password (secret).
    pub password: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// How the connection is secured.
    pub tls: TlsMode,
}

/// A channel's configuration; stored sealed because every variant holds a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// The incoming-webhook URL is the secret.
    Slack {
        /// `https://hooks.slack.com/services/…`.
        webhook_url: String,
    },
    /// SMTP settings.
    Email(EmailConfig),
    /// URL and `whsec_…` signing secret.
    Webhook {
        /// The endpoint.
        url: String,
        /// The signing secret (`whsec_…`); the API generates one when it is absent.
        #[schema(required = false)]
        secret: String,
    },
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelConfig({})", self.summary())
    }
}

impl ChannelConfig {
    /// The channel kind.
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelConfig::Slack { .. } => ChannelKind::Slack,
            ChannelConfig::Email(_) => ChannelKind::Email,
            ChannelConfig::Webhook { .. } => ChannelKind::Webhook,
        }
    }

    /// What is safe to show: the host, never a token or a password.
    pub fn summary(&self) -> String {
        match self {
            ChannelConfig::Slack { webhook_url } => host_of(webhook_url),
            ChannelConfig::Webhook { url, .. } => host_of(url),
            ChannelConfig::Email(e) => format!(
                "{}:{} ({} recipient{})",
                e.host,
                e.port,
                e.to.len(),
                if e.to.len() == 1 { "" } else { "s" }
            ),
        }
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), AlertError> {
        let url_ok = |field: &str, url: &str| match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            _ => Err(AlertError::Invalid(format!("{field}: not an http(s) URL"))),
        };
        match self {
            ChannelConfig::Slack { webhook_url } => url_ok("--url", webhook_url),
            ChannelConfig::Webhook { url, secret } => {
                url_ok("--url", url)?;
                WebhookSecret::parse(secret)
                    .map(|_| ())
                    .map_err(|e| AlertError::Invalid(format!("--secret: {e}")))
            }
            ChannelConfig::Email(e) => {
                if e.host.trim().is_empty() {
                    return Err(AlertError::Invalid("--smtp-host: must not be empty".into()));
                }
                if e.port == 0 {
                    return Err(AlertError::Invalid("--smtp-port: must not be 0".into()));
                }
                if e.from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(AlertError::Invalid(format!(
                        "--from: '{}' is not an email address",
                        e.from
                    )));
                }
                if e.to.is_empty() {
                    return Err(AlertError::Invalid("--to: at least one recipient".into()));
                }
                for to in &e.to {
                    if to.parse::<lettre::message::Mailbox>().is_err() {
                        return Err(AlertError::Invalid(format!(
                            "--to: '{to}' is not an email address"
                        )));
                    }
                }
                if e.username.is_some() != e.password.is_some() {
                    return Err(AlertError::Invalid(
                        "--smtp-user and --smtp-password go together".into(),
                    ));
                }
                Ok(())
            }
        }
    }
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// A channel to create.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// The workspace; `None` = every workspace.
    pub workspace_id: Option<String>,
    /// Where it delivers.
    pub config: ChannelConfig,
    /// `warning` (everything) or `critical`.
    pub min_severity: String,
    /// Remind this often while an alert is open and unacknowledged; `None` = never.
    pub reminder_every_ms: Option<i64>,
}

/// The associated data that binds a channel's sealed configuration to its row.
fn aad(id: &str) -> String {
    format!("hangar_alert_channels:{id}:config")
}

fn what(id: &str) -> String {
    format!("the configuration of alert channel {id}")
}

/// Adds a channel; returns it as listed.
pub async fn add(
    store: &Store,
    keyring: &Keyring,
    new: &NewChannel,
) -> Result<Channel, AlertError> {
    new.config.validate()?;
    let min_severity = match new.min_severity.parse::<Severity>() {
        Ok(severity) => severity,
        Err(unknown) => return Err(AlertError::Invalid(format!("--min-severity: {unknown}"))),
    };
    if new.reminder_every_ms.is_some_and(|ms| ms < 1_000) {
        return Err(AlertError::Invalid(
            "--remind-every-ms: at least 1000".into(),
        ));
    }
    let id = format!("ach_{:016x}", fastrand::u64(..));
    let plaintext =
        serde_json::to_vec(&new.config).map_err(|e| AlertError::Invalid(e.to_string()))?;
    let sealed = keyring.seal(&plaintext, &aad(&id));
    store
        .insert_alert_channel(&NewChannelRow {
            id: &id,
            workspace_id: new.workspace_id.as_deref(),
            kind: new.config.kind(),
            summary: &new.config.summary(),
            config_sealed: &sealed,
            min_severity,
            reminder_every_ms: new.reminder_every_ms,
        })
        .await?;
    get(store, &id).await
}

/// Every channel, oldest first.
pub async fn list(store: &Store) -> Result<Vec<Channel>, AlertError> {
    Ok(store.alert_channels().await?)
}

/// One channel.
pub async fn get(store: &Store, id: &str) -> Result<Channel, AlertError> {
    list(store)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AlertError::ChannelNotFound(id.to_owned()))
}

/// One channel with its configuration opened.
pub async fn open(
    store: &Store,
    keyring: &Keyring,
    id: &str,
) -> Result<(Channel, ChannelConfig), AlertError> {
    let channel = get(store, id).await?;
    let sealed = store.alert_channel_sealed(id).await?;
    let plaintext = keyring.open(&sealed, &aad(id), &what(id))?;
    let config = serde_json::from_slice(&plaintext).map_err(|_| StoreError::Corrupt {
        table: "hangar_alert_channels",
        detail: format!("{} does not parse", what(id)),
    })?;
    Ok((channel, config))
}

/// Removes a channel (its pending notices are skipped when they run).
pub async fn remove(store: &Store, id: &str) -> Result<(), AlertError> {
    if !store.delete_alert_channel(id).await? {
        return Err(AlertError::ChannelNotFound(id.to_owned()));
    }
    Ok(())
}

/// Disables a channel with a reason and raises a `channel_disabled` alert (once: the
/// incident key is the channel). Returns false when it was already disabled.
pub async fn disable(store: &Store, channel: &Channel, reason: &str) -> Result<bool, AlertError> {
    if !store.disable_alert_channel(&channel.id, reason).await? {
        return Ok(false);
    }
    let message = format!(
        "alert channel {} ({} to {}) disabled: {reason}",
        channel.id,
        channel.kind.as_str(),
        channel.summary
    );
    store
        .raise_alerts(&[NewAlert {
            workspace_id: channel.workspace_id.clone(),
            kind: AlertKind::ChannelDisabled,
            severity: Severity::Critical,
            message,
            incident_key: format!("channel:{}:disabled", channel.id),
            integration: None,
        }])
        .await?;
    tracing::warn!(channel = %channel.id, kind = channel.kind.as_str(), %reason, "alert channel disabled");
    Ok(true)
}

/// Enables a channel again (after a 410 or an operator's removal of the cause) and resolves
/// its `channel_disabled` alert. Returns false when it was already enabled.
pub async fn enable(store: &Store, id: &str) -> Result<bool, AlertError> {
    get(store, id).await?;
    let enabled = store
        .enable_alert_channel(id, &format!("channel:{id}:disabled"))
        .await?;
    if enabled {
        tracing::info!(channel = %id, "alert channel enabled");
    }
    Ok(enabled)
}

/// Re-seals every channel's configuration under `new` in one transaction (`hangar keys
/// rotate`); `keyring` must open every current value. Returns how many were re-sealed.
pub async fn reseal_all(
    store: &Store,
    keyring: &Keyring,
    new: &MasterKey,
) -> Result<u64, AlertError> {
    let target = Keyring::new(new.clone());
    store
        .reseal_alert_channels(|id, sealed| -> Result<String, AlertError> {
            let plaintext = keyring.open(sealed, &aad(id), &what(id))?;
            Ok(target.seal(&plaintext, &aad(id)))
        })
        .await
}

/// One alert row, or `None` when there is none.
pub async fn alert(store: &Store, id: i64) -> Result<Option<AlertRow>, AlertError> {
    match store.alert(id).await {
        Ok(alert) => Ok(Some(alert)),
        Err(StoreError::AlertNotFound(_)) => Ok(None),
        Err(other) => Err(other.into()),
    }
}
