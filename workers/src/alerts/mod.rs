//! Alerts delivered: the channels an alert goes to (Slack incoming webhook, email over SMTP,
//! a signed generic webhook), per workspace or for every workspace, and the delivery of each
//! notice as a job of its own (`alert_slack`, `alert_email`, `alert_webhook` on the `alerts`
//! pool), so notices get the retry rules like any other job.
//!
//! - [`channels`]: the channel rows, their sealed configuration (see [`crate::secrets`]) and
//!   the Rust API the CLI and the HTTP routes call.
//! - [`dispatcher`]: the background loop that turns alert rows into delivery jobs: one
//!   `opened` notice per incident and channel, a reminder every `reminder_every_ms` while the
//!   alert is open and unacknowledged, a `resolved` notice when it clears.
//! - [`deliver`]: the handlers that send one notice and classify the outcome (the email
//!   channel's transport is [`crate::mail`], shared with the email connector).
//!
//! Alerts raised about the delivery jobs themselves are recorded but never notified, so a
//! broken channel cannot feed a loop; a channel that answers 410 is disabled with an alert of
//! its own (`channel_disabled`), which goes to the other channels only.

pub mod channels;
pub mod deliver;
pub mod dispatcher;
pub mod model;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kinds::Registry;
use crate::secrets::{Keyring, SecretError};
use crate::store::{Store, StoreError};
use crate::targets::TargetPolicy;

pub use channels::{ChannelConfig, EmailConfig, NewChannel, TlsMode};
pub use model::{AlertKind, NoticeEvent, Severity};
pub use model::{Channel, ChannelKind};

/// The job kinds that deliver notices.
pub const KINDS: [&str; 3] = ["alert_slack", "alert_email", "alert_webhook"];

/// What can go wrong with channels and deliveries.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// No channel with this id.
    #[error("alert channel {0} not found")]
    ChannelNotFound(String),
    /// A new channel's settings are not usable; the message names the field.
    #[error("{0}")]
    Invalid(String),
}

/// What the delivery handlers and the dispatcher share.
#[derive(Clone)]
pub struct AlertContext {
    /// The store.
    pub store: Store,
    /// Opens the channels' sealed configuration.
    pub keyring: Arc<Keyring>,
    /// Where the dashboard is reached (links to `/jobs/{id}` start with it).
    pub public_url: String,
    /// The HTTP client of the Slack and webhook channels (redirects not followed).
    pub http: reqwest::Client,
    /// Which addresses channel URLs may reach.
    pub targets: TargetPolicy,
}

impl AlertContext {
    /// A context with its own HTTP client, whose requests reach what `targets` allows (the
    /// binary's `allow_private_targets` setting).
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        public_url: impl Into<String>,
        targets: TargetPolicy,
    ) -> Self {
        let http = crate::targets::client_builder(&targets)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        AlertContext {
            store,
            keyring,
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            http,
            targets,
        }
    }
}

/// Registers the delivery kinds in `registry`, as internal kinds: a caller who could enqueue
/// one would choose the alert and the channel, and read another workspace's alerts.
pub fn register(registry: &mut Registry, context: &AlertContext) {
    for kind in ChannelKind::ALL {
        registry.register_internal(
            kind.job_kind(),
            deliver::DeliveryHandler::new(context.clone(), kind),
        );
    }
}

/// One notice: which alert, which channel, which event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeArgs {
    /// The alert.
    pub alert_id: i64,
    /// The channel.
    pub channel_id: String,
    /// A [`NoticeEvent`] as stored: `opened`, `reminder:<n>`, `resolved` or `test:<ms>`.
    pub event: String,
}

impl NoticeArgs {
    /// The idempotency key and delivery id: `alert:<id>:<channel>:<event>`.
    pub fn key(&self) -> String {
        format!("alert:{}:{}:{}", self.alert_id, self.channel_id, self.event)
    }
}
