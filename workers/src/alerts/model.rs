//! The alert model, typed once: what an alert is about ([`AlertKind`]), how urgent it is
//! ([`Severity`]), which notice of it a channel gets ([`NoticeEvent`]), where a channel
//! delivers ([`ChannelKind`]) and a channel as listed ([`Channel`]). Each is stored and shown
//! as the same string as before it was typed (`job_failed`, `critical`, `reminder:2`,
//! `slack`), so rows, job arguments, JSON and idempotency keys are unchanged. The store
//! decodes its alert and channel rows into these types; a stored string that is none of them
//! is a corrupt row.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The job keeps failing but will still be retried.
    JobFailing,
    /// The job has failed for good.
    JobFailed,
    /// An admin must re-authorise the integration.
    ReauthRequired,
    /// An alert channel or a webhook endpoint was disabled (410 Gone; for an endpoint also
    /// 5 days failing, or an operator).
    ChannelDisabled,
    /// A webhook endpoint's last attempts failed (resolved by its next success).
    WebhookDegraded,
    /// An operator paused a webhook endpoint (resolved when it resumes).
    WebhookPaused,
    /// A sync's full reconciliation found more than the set share (20 %) of a data type's
    /// records gone at the source: nothing was removed and the run stopped (resolved by the
    /// next reconciliation that completes).
    SyncRemovalsHeld,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::JobFailing,
        AlertKind::JobFailed,
        AlertKind::ReauthRequired,
        AlertKind::ChannelDisabled,
        AlertKind::WebhookDegraded,
        AlertKind::WebhookPaused,
        AlertKind::SyncRemovalsHeld,
    ];

    /// Stable snake_case name, identical to the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::JobFailing => "job_failing",
            AlertKind::JobFailed => "job_failed",
            AlertKind::ReauthRequired => "reauth_required",
            AlertKind::ChannelDisabled => "channel_disabled",
            AlertKind::WebhookDegraded => "webhook_degraded",
            AlertKind::WebhookPaused => "webhook_paused",
            AlertKind::SyncRemovalsHeld => "sync_removals_held",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An alert kind name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not an alert kind (job_failing, job_failed, reauth_required, channel_disabled, \
     webhook_degraded, webhook_paused, sync_removals_held)"
)]
pub struct UnknownAlertKind(pub String);

impl FromStr for AlertKind {
    type Err = UnknownAlertKind;

    fn from_str(s: &str) -> Result<AlertKind, UnknownAlertKind> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAlertKind(s.to_owned()))
    }
}

/// How urgently an alert needs a human; `Warning < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Needs action.
    Critical,
}

impl Severity {
    /// Stable lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A severity name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' (expected warning or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Severity, UnknownSeverity> {
        match s {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(UnknownSeverity(other.to_owned())),
        }
    }
}

/// One notice of an alert to a channel: stored and keyed as `opened`, `reminder:<n>`,
/// `resolved` or `test:<unix ms>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeEvent {
    /// The incident opened.
    Opened,
    /// The `n`-th reminder while it stays open and unacknowledged.
    Reminder(i64),
    /// It cleared.
    Resolved,
    /// A test notice sent at this time (unix milliseconds).
    Test(i64),
}

impl NoticeEvent {
    /// The event without its number: `opened`, `reminder`, `resolved` or `test` (the
    /// webhook's `alert.<kind>` type).
    pub fn kind(self) -> &'static str {
        match self {
            NoticeEvent::Opened => "opened",
            NoticeEvent::Reminder(_) => "reminder",
            NoticeEvent::Resolved => "resolved",
            NoticeEvent::Test(_) => "test",
        }
    }
}

impl fmt::Display for NoticeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoticeEvent::Reminder(n) | NoticeEvent::Test(n) => write!(f, "{}:{n}", self.kind()),
            other => f.write_str(other.kind()),
        }
    }
}

/// A notice event that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a notice event (opened, reminder:<n>, resolved, test:<ms>)")]
pub struct UnknownNoticeEvent(pub String);

impl FromStr for NoticeEvent {
    type Err = UnknownNoticeEvent;

    fn from_str(s: &str) -> Result<NoticeEvent, UnknownNoticeEvent> {
        let unknown = || UnknownNoticeEvent(s.to_owned());
        let number = |n: &str| n.parse::<i64>().map_err(|_| unknown());
        match s.split_once(':') {
            None if s == "opened" => Ok(NoticeEvent::Opened),
            None if s == "resolved" => Ok(NoticeEvent::Resolved),
            Some(("reminder", n)) => Ok(NoticeEvent::Reminder(number(n)?)),
            Some(("test", ms)) => Ok(NoticeEvent::Test(number(ms)?)),
            _ => Err(unknown()),
        }
    }
}

/// Where a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A Slack incoming webhook.
    Slack,
    /// Email over SMTP.
    Email,
    /// A generic webhook, signed like the outbound event webhooks.
    Webhook,
}

impl ChannelKind {
    /// Every kind.
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Slack, ChannelKind::Email, ChannelKind::Webhook];

    /// `slack`, `email` or `webhook`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
        }
    }

    /// The job kind that delivers to this kind of channel.
    pub const fn job_kind(self) -> &'static str {
        match self {
            ChannelKind::Slack => "alert_slack",
            ChannelKind::Email => "alert_email",
            ChannelKind::Webhook => "alert_webhook",
        }
    }
}

/// A channel kind name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel kind '{0}'")]
pub struct UnknownChannelKind(pub String);

impl FromStr for ChannelKind {
    type Err = UnknownChannelKind;

    fn from_str(s: &str) -> Result<ChannelKind, UnknownChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownChannelKind(s.to_owned()))
    }
}

/// A channel as listed (the store's row of `hangar_alert_channels`): everything but the
/// sealed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Channel {
    /// `ach_…`.
    pub id: String,
    /// The workspace; `None` = every workspace.
    pub workspace_id: Option<String>,
    /// Where it delivers.
    pub kind: ChannelKind,
    /// The safe part of the configuration (a host).
    pub summary: String,
    /// The least severity it is told about.
    pub min_severity: Severity,
    /// Reminder interval.
    pub reminder_every_ms: Option<i64>,
    /// Whether notices go out.
    pub enabled: bool,
    /// Why it was disabled (e.g. 410 Gone).
    pub disabled_reason: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_strings_as_before() {
        assert_eq!(
            AlertKind::ALL.map(AlertKind::as_str),
            [
                "job_failing",
                "job_failed",
                "reauth_required",
                "channel_disabled",
                "webhook_degraded",
                "webhook_paused",
                "sync_removals_held"
            ]
        );
        for kind in AlertKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert_eq!(
            serde_json::to_value(Severity::Critical).unwrap(),
            "critical"
        );
        assert!(Severity::Warning < Severity::Critical);
        for severity in [Severity::Warning, Severity::Critical] {
            assert_eq!(severity.as_str().parse::<Severity>(), Ok(severity));
        }
        assert_eq!(
            "urgent".parse::<Severity>().unwrap_err().to_string(),
            "'urgent' (expected warning or critical)"
        );
    }

    #[test]
    fn kinds_parse_from_their_names_and_refuse_the_rest() {
        for kind in AlertKind::ALL {
            assert_eq!(kind.as_str().parse::<AlertKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        for kind in ChannelKind::ALL {
            assert_eq!(kind.as_str().parse::<ChannelKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("job_failed ".parse::<AlertKind>().is_err());
        assert_eq!(
            "pager".parse::<ChannelKind>().unwrap_err().to_string(),
            "unknown channel kind 'pager'"
        );
    }

    #[test]
    fn notice_events_round_trip_and_refuse_the_rest() {
        for (event, text) in [
            (NoticeEvent::Opened, "opened"),
            (NoticeEvent::Reminder(3), "reminder:3"),
            (NoticeEvent::Resolved, "resolved"),
            (NoticeEvent::Test(1_700_000_000_000), "test:1700000000000"),
        ] {
            assert_eq!(event.to_string(), text);
            assert_eq!(text.parse::<NoticeEvent>(), Ok(event));
        }
        for bad in ["", "opened:1", "reminder", "reminder:x", "closed", "test:"] {
            assert!(bad.parse::<NoticeEvent>().is_err(), "{bad}");
        }
    }
}
