//! `hangar alerts …`: alerts and the alert channels of a workspace.

use clap::{Args, Subcommand};

use crate::config::settings::{KeyOptions, PublicUrlOptions, TargetOptions};

/// `hangar alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first: open ones unless --state or --all says otherwise.
    List {
        /// Only alerts in these states: open, acknowledged, resolved (comma-separated or
        /// repeated).
        #[arg(long, value_delimiter = ',', conflicts_with = "all")]
        state: Vec<String>,
        /// Alerts in every state.
        #[arg(long)]
        all: bool,
        /// Only this workspace's alerts.
        #[arg(long)]
        workspace: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only alerts older than this alert id (the next page; the list says which id).
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alert.
    Ack {
        /// The alert id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The channels alerts are delivered to (Slack, email, webhook).
    Channels {
        #[command(flatten)]
        settings: Box<ChannelSettings>,
        /// What to do with channels.
        #[command(subcommand)]
        command: ChannelsCommand,
    },
}

/// The settings the channel commands use: channel URLs are outbound targets, their secrets
/// are sealed with the master key, and a test notice links to this Hangar.
#[derive(Debug, Args)]
pub struct ChannelSettings {
    #[command(flatten)]
    pub targets: TargetOptions,
    #[command(flatten)]
    pub key: KeyOptions,
    #[command(flatten)]
    pub public_url: PublicUrlOptions,
}

/// `hangar alerts channels …`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel; prints its id.
    Add {
        /// Where it delivers.
        #[command(subcommand)]
        target: ChannelTarget,
    },
    /// List channels (secrets are never shown).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel.
    Remove {
        /// The channel id (`ach_…`).
        id: String,
    },
    /// Enable a channel again (a 410 answer disables it) and resolve its alert.
    Enable {
        /// The channel id (`ach_…`).
        id: String,
    },
    /// Send a test notice now and report the outcome.
    Test {
        /// The channel id (`ach_…`).
        id: String,
    },
}

/// Settings every channel has.
#[derive(Debug, Args)]
pub struct ChannelCommon {
    /// The workspace; without it, the channel hears every workspace's alerts.
    #[arg(long)]
    pub workspace: Option<String>,
    /// `warning` (everything) or `critical`.
    #[arg(long, default_value = "warning")]
    pub min_severity: String,
    /// Remind this often (milliseconds) while an alert is open and unacknowledged.
    #[arg(long)]
    pub remind_every_ms: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The kind of a new channel and its settings.
#[derive(Debug, Subcommand)]
pub enum ChannelTarget {
    /// A Slack incoming webhook.
    Slack {
        /// The incoming-webhook URL (a secret: stored encrypted, never shown).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        common: ChannelCommon,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server host.
        #[arg(long)]
        smtp_host: String,
        /// SMTP server port.
        #[arg(long, default_value_t = 587)]
        smtp_port: u16,
        /// SMTP AUTH user.
        #[arg(long)]
        smtp_user: Option<String>,
        /// SMTP AUTH password (or env HANGAR_SMTP_PASSWORD, to keep it out of shell history).
        #[arg(long, env = "HANGAR_SMTP_PASSWORD", hide_env_values = true)]
        smtp_password: Option<String>,
        /// `starttls` (587), `implicit` (465) or `none` (a trusted local relay).
        #[arg(long, default_value = "starttls")]
        tls: String,
        /// Sender address.
        #[arg(long)]
        from: String,
        /// Recipient (repeatable).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        #[command(flatten)]
        common: ChannelCommon,
    },
    /// A generic webhook, signed like the outbound event webhooks.
    Webhook {
        /// The endpoint URL.
        #[arg(long)]
        url: String,
        /// The signing secret `whsec_…`; a new one is made (and shown once) when absent.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        common: ChannelCommon,
    },
}
