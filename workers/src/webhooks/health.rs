//! Endpoint health and its alerts. Each step down alerts the endpoint's workspace (an alert of
//! the workspace, notified through its alert channels); each step up resolves that alert, so
//! the channels are told of the recovery:
//!
//! - `degraded`: [`DEGRADED_AFTER`] failed attempts in a row (`webhook_degraded`, warning),
//!   resolved by the next success;
//! - `paused`: an operator's pause (`webhook_paused`, warning), resolved by the resume;
//! - `disabled`: a 410 Gone, 5 days of failures without a single success, or an operator
//!   (`channel_disabled`, critical), resolved when it is enabled again.
//!
//! While paused or disabled, new events create `held` deliveries (no job); resuming or
//! enabling releases them all as jobs and answers how many.

use chrono::{DateTime, Duration, Utc};

use super::endpoint::{DEGRADED_AFTER, Endpoint};
use super::{WebhookContext, WebhookError};
use crate::alerts::{AlertKind, Severity};
use crate::store::NewAlert;

/// How long an endpoint may fail without a single success before it is disabled.
pub const DISABLE_AFTER_DAYS: i64 = 5;

fn incident(id: &str, what: &str) -> String {
    format!("webhook:{id}:{what}")
}

/// The incident key of endpoint `id`'s degraded alert (a success recorded with its job's
/// completion resolves it in that transaction: `store/webhook_record.rs`).
pub(crate) fn degraded_incident(id: &str) -> String {
    incident(id, "degraded")
}

fn alert(endpoint_id: &str, workspace: &str, kind: AlertKind, message: String) -> NewAlert {
    let (what, severity) = match kind {
        AlertKind::WebhookDegraded => ("degraded", Severity::Warning),
        AlertKind::WebhookPaused => ("paused", Severity::Warning),
        _ => ("disabled", Severity::Critical),
    };
    NewAlert {
        workspace_id: Some(workspace.to_owned()),
        kind,
        severity,
        message,
        incident_key: incident(endpoint_id, what),
        integration: None,
    }
}

/// Disables an endpoint (new deliveries are held) with a `channel_disabled` alert; false when
/// it was already disabled.
pub async fn disable(
    context: &WebhookContext,
    endpoint: &Endpoint,
    reason: &str,
) -> Result<bool, WebhookError> {
    let disabled = context
        .store
        .disable_webhook_endpoint(&endpoint.id, reason)
        .await?;
    context.forget(&endpoint.id);
    if !disabled {
        return Ok(false);
    }
    let message = format!(
        "webhook endpoint {} ({}) disabled: {reason}; its new deliveries are held until it is \
         enabled again",
        endpoint.id,
        host(&endpoint.url)
    );
    context
        .store
        .raise_alerts(&[alert(
            &endpoint.id,
            &endpoint.workspace_id,
            AlertKind::ChannelDisabled,
            message,
        )])
        .await?;
    tracing::warn!(endpoint = %endpoint.id, %reason, "webhook endpoint disabled");
    Ok(true)
}

/// Enables an endpoint again: resolves its alerts and releases its held deliveries (how
/// many).
pub async fn enable(context: &WebhookContext, endpoint: &Endpoint) -> Result<u64, WebhookError> {
    context.store.enable_webhook_endpoint(&endpoint.id).await?;
    context.forget(&endpoint.id);
    for what in ["disabled", "degraded"] {
        context
            .store
            .resolve_alert_incident(&incident(&endpoint.id, what))
            .await?;
    }
    release(context, endpoint).await
}

/// Pauses an endpoint (an operator's): new deliveries are held.
pub async fn pause(context: &WebhookContext, endpoint: &Endpoint) -> Result<(), WebhookError> {
    let paused = context
        .store
        .set_webhook_endpoint_paused(&endpoint.id, true)
        .await?;
    context.forget(&endpoint.id);
    if paused {
        let message = format!(
            "webhook endpoint {} ({}) paused by an operator; its new deliveries are held",
            endpoint.id,
            host(&endpoint.url)
        );
        context
            .store
            .raise_alerts(&[alert(
                &endpoint.id,
                &endpoint.workspace_id,
                AlertKind::WebhookPaused,
                message,
            )])
            .await?;
    }
    Ok(())
}

/// Resumes a paused endpoint and releases its held deliveries (how many; none while it is
/// still disabled).
pub async fn resume(context: &WebhookContext, endpoint: &Endpoint) -> Result<u64, WebhookError> {
    context
        .store
        .set_webhook_endpoint_paused(&endpoint.id, false)
        .await?;
    context.forget(&endpoint.id);
    context
        .store
        .resolve_alert_incident(&incident(&endpoint.id, "paused"))
        .await?;
    if endpoint.enabled {
        release(context, endpoint).await
    } else {
        Ok(0)
    }
}

/// Sends every held delivery of the endpoint, as new jobs.
async fn release(context: &WebhookContext, endpoint: &Endpoint) -> Result<u64, WebhookError> {
    let ids = context.store.held_webhook_deliveries(&endpoint.id).await?;
    let route = context.route();
    let released = context
        .store
        .requeue_webhook_deliveries(&ids, &route)
        .await?;
    if released > 0 {
        tracing::info!(endpoint = %endpoint.id, released, "held webhook deliveries released");
    }
    Ok(released)
}

/// After an attempt: the alerts of a step down or up, and the 5-day rule.
pub(crate) async fn after_attempt(
    context: &WebhookContext,
    endpoint: &Endpoint,
    succeeded: bool,
    streak_before: i32,
    failing_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    if succeeded {
        if streak_before >= DEGRADED_AFTER {
            context
                .store
                .resolve_alert_incident(&incident(&endpoint.id, "degraded"))
                .await?;
            tracing::info!(endpoint = %endpoint.id, "webhook endpoint recovered");
        }
        return Ok(());
    }
    if streak_before + 1 == DEGRADED_AFTER {
        let message = format!(
            "webhook endpoint {} ({}) degraded: its last {DEGRADED_AFTER} attempts failed",
            endpoint.id,
            host(&endpoint.url)
        );
        context
            .store
            .raise_alerts(&[alert(
                &endpoint.id,
                &endpoint.workspace_id,
                AlertKind::WebhookDegraded,
                message,
            )])
            .await?;
    }
    if failing_too_long(failing_since, now) {
        disable(
            context,
            endpoint,
            "failing without a single success for 5 days",
        )
        .await?;
    }
    Ok(())
}

/// Whether an endpoint failing since `since` has failed long enough to be disabled.
pub fn failing_too_long(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    since.is_some_and(|since| now - since >= Duration::days(DISABLE_AFTER_DAYS))
}

/// The host of a URL, for messages (never its path or query, which may carry a token).
fn host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_days_of_failures_disable() {
        let now = Utc::now();
        assert!(!failing_too_long(None, now));
        assert!(!failing_too_long(Some(now - Duration::days(4)), now));
        assert!(failing_too_long(Some(now - Duration::days(5)), now));
        assert_eq!(host("https://example.com/a?token=x"), "example.com");
    }
}
