//! The alert model, typed once: what an alert is about ([`AlertKind`]), how urgent it is
//! ([`Severity`]) and which notice of it a channel gets ([`NoticeEvent`]). Each is stored and
//! shown as the same string as before it was typed (`job_failed`, `critical`, `reminder:2`),
//! so rows, job arguments, JSON and idempotency keys are unchanged.

use std::fmt;
use std::str::FromStr;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::JobFailing,
        AlertKind::JobFailed,
        AlertKind::ReauthRequired,
        AlertKind::ChannelDisabled,
        AlertKind::WebhookDegraded,
        AlertKind::WebhookPaused,
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
        }
    }
}

/// How urgently an alert needs a human; `Warning < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
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
                "webhook_paused"
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
