//! Delivery of one notice, as the job kinds `alert_slack`, `alert_email` and `alert_webhook`.
//! Each attempt loads the channel (a removed or disabled channel completes the job without
//! sending), opens its sealed configuration, renders the notice and sends it:
//!
//! - Slack and webhook: classified by HTTP status like the `http` kind; **410 Gone** (Slack:
//!   channel archived) disables the channel, raises a `channel_disabled` alert and fails the
//!   job without retry.
//! - Email ([`crate::mail`]): SMTP 4xx replies are transient (`server` class, retried with
//!   backoff), 5xx permanent (`client`), `535` bad credentials (`auth`); no answer is a
//!   `timeout`. The SMTP host obeys the target policy like the URLs.
//!
//! Every outcome counts in `hangar_alert_deliveries_total{channel,outcome}`. Messages carry
//! the workspace, kind, severity, message, job id, occurrences and a link to `/jobs/{id}`,
//! never a secret or a provider URL.

use chrono::Utc;
use serde_json::json;

use super::channels::{self, ChannelConfig};
use super::model::{Channel, ChannelKind};
use super::{AlertContext, AlertError, NoticeArgs, NoticeEvent};
use crate::error_class::ErrorClass;
use crate::job::ClaimedJob;
use crate::kinds::{ArgsError, BoxFuture, Handler, JobFailure};
use crate::signing::{SignedRequest, WebhookSecret, signature_headers};
use crate::store::AlertRow;
use crate::transport_failure::transport_failure;

/// The handler of one delivery kind.
pub struct DeliveryHandler {
    context: AlertContext,
    kind: ChannelKind,
}

impl DeliveryHandler {
    /// The handler of `kind`'s job kind.
    pub fn new(context: AlertContext, kind: ChannelKind) -> Self {
        DeliveryHandler { context, kind }
    }
}

impl Handler for DeliveryHandler {
    fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        serde_json::from_value::<NoticeArgs>(args.clone())
            .map(|_| ())
            .map_err(|e| ArgsError::shape(self.kind.job_kind(), &e))
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let context = self.context.clone();
        let kind = self.kind;
        Box::pin(async move {
            let result = deliver_job(&context, &job).await;
            let outcome = match &result {
                Ok(true) => "delivered",
                Ok(false) => "skipped",
                Err(failure) => failure.class.as_str(),
            };
            metrics::counter!("hangar_alert_deliveries_total", "channel" => kind.as_str(), "outcome" => outcome)
                .increment(1);
            result.map(|_| ())
        })
    }
}

/// Sends the notice of `job`; false when there was nothing to send.
async fn deliver_job(context: &AlertContext, job: &ClaimedJob) -> Result<bool, JobFailure> {
    let args: NoticeArgs = serde_json::from_value(job.args.clone())
        .map_err(|e| JobFailure::new(ErrorClass::Client, format!("alert notice args: {e}")))?;
    let internal = |e: AlertError| JobFailure::new(ErrorClass::Internal, e.to_string());
    let (channel, config) =
        match channels::open(&context.store, &context.keyring, &args.channel_id).await {
            Ok(found) => found,
            Err(AlertError::ChannelNotFound(_)) => {
                tracing::info!(channel = %args.channel_id, "alert channel removed; notice skipped");
                return Ok(false);
            }
            Err(other) => return Err(internal(other)),
        };
    let alert = channels::alert(&context.store, args.alert_id)
        .await
        .map_err(internal)?;
    check_scope(
        job.workspace_id.as_deref(),
        channel.workspace_id.as_deref(),
        alert.as_ref().map(|a| a.workspace_id.as_deref()),
    )
    .map_err(|why| JobFailure::new(ErrorClass::Client, why.to_string()))?;
    if !channel.enabled {
        tracing::info!(channel = %channel.id, "alert channel disabled; notice skipped");
        return Ok(false);
    }
    let notice = Notice::new(&args, alert.as_ref(), &context.public_url);
    send(context, &channel, &config, &notice).await?;
    Ok(true)
}

/// A notice whose alert or channel is of another workspace than its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ScopeMismatch {
    /// The alert is another workspace's.
    #[error("alert notice refused: the alert belongs to {}, the job to {}", workspace(.alert), workspace(.job))]
    Alert {
        /// The alert's workspace.
        alert: Option<String>,
        /// The job's.
        job: Option<String>,
    },
    /// The channel is another workspace's.
    #[error("alert notice refused: the channel belongs to {}, the job to {}", workspace(.channel), workspace(.job))]
    Channel {
        /// The channel's workspace.
        channel: Option<String>,
        /// The job's.
        job: Option<String>,
    },
}

fn workspace(ws: &Option<String>) -> String {
    ws.as_ref()
        .map_or("no workspace".to_owned(), |w| format!("workspace '{w}'"))
}

/// A notice carries an alert to a channel of the alert's workspace (or to a global channel),
/// in a job of that workspace: that is how the dispatcher enqueues them. Anything else (a job
/// that names another workspace's alert or channel) is refused, never sent. `alert`: the
/// alert's workspace, `None` when the alert no longer exists.
fn check_scope(
    job: Option<&str>,
    channel: Option<&str>,
    alert: Option<Option<&str>>,
) -> Result<(), ScopeMismatch> {
    let owned = |ws: Option<&str>| ws.map(str::to_owned);
    if let Some(alert) = alert
        && alert != job
    {
        return Err(ScopeMismatch::Alert {
            alert: owned(alert),
            job: owned(job),
        });
    }
    if channel.is_some() && channel != job {
        return Err(ScopeMismatch::Channel {
            channel: owned(channel),
            job: owned(job),
        });
    }
    Ok(())
}

/// Sends a test notice to a channel now (`hangar alerts channels test`), with the same
/// classification as a delivery job.
pub async fn send_test(context: &AlertContext, channel_id: &str) -> Result<(), JobFailure> {
    let (channel, config) = channels::open(&context.store, &context.keyring, channel_id)
        .await
        .map_err(|e| JobFailure::new(ErrorClass::Client, e.to_string()))?;
    let args = NoticeArgs {
        alert_id: 0,
        channel_id: channel.id.clone(),
        event: NoticeEvent::Test(Utc::now().timestamp_millis()).to_string(),
    };
    let notice = Notice::new(&args, None, &context.public_url);
    let result = send(context, &channel, &config, &notice).await;
    let outcome = result
        .as_ref()
        .map_or_else(|f| f.class.as_str(), |_| "delivered");
    metrics::counter!("hangar_alert_deliveries_total", "channel" => channel.kind.as_str(), "outcome" => outcome)
        .increment(1);
    result
}

/// A rendered notice.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `opened`, `reminder:<n>`, `resolved` or `test:<ms>`.
    pub event: String,
    /// The delivery id (`alert:<id>:<channel>:<event>`).
    pub delivery_id: String,
    /// One line, for a subject or a Slack header.
    pub title: String,
    /// The text body.
    pub text: String,
    /// The webhook body's `data`.
    pub data: serde_json::Value,
    /// The alert's workspace.
    pub workspace_id: Option<String>,
}

impl Notice {
    /// Renders a notice about `alert` (None: a test notice).
    pub fn new(args: &NoticeArgs, alert: Option<&AlertRow>, public_url: &str) -> Notice {
        // Written by the dispatcher or `send_test`; anything else is told as an opening.
        let event = args
            .event
            .parse::<NoticeEvent>()
            .unwrap_or(NoticeEvent::Opened);
        let event_kind = event.kind().to_owned();
        let Some(alert) = alert else {
            return Notice {
                event: event_kind.clone(),
                delivery_id: args.key(),
                title: "[Hangar] test notice".to_owned(),
                text: format!(
                    "Test notice from Hangar alert channel {}: delivery works.",
                    args.channel_id
                ),
                data: json!({"event": "test", "channel_id": args.channel_id}),
                workspace_id: None,
            };
        };
        let what = match event {
            NoticeEvent::Reminder(n) => {
                format!("reminder {n}: alert still open and unacknowledged")
            }
            NoticeEvent::Resolved => "alert resolved".to_owned(),
            NoticeEvent::Opened | NoticeEvent::Test(_) => "alert opened".to_owned(),
        };
        let link = alert.job_id.map(|id| format!("{public_url}/jobs/{id}"));
        let title = format!("[Hangar] {} {what}: {}", alert.severity, alert.kind);
        let mut lines = vec![
            title.clone(),
            alert.message.clone(),
            format!(
                "workspace: {}  ·  alert: {}  ·  seen {} time{}",
                alert.workspace_id.as_deref().unwrap_or("-"),
                alert.id,
                alert.occurrences,
                if alert.occurrences == 1 { "" } else { "s" }
            ),
        ];
        if let Some(job) = alert.job_id {
            lines.push(format!("job: {job}"));
        }
        if let Some(link) = &link {
            lines.push(link.clone());
        }
        Notice {
            event: event_kind.clone(),
            delivery_id: args.key(),
            title,
            text: lines.join("\n"),
            data: json!({
                "event": event_kind,
                "notice": args.event,
                "alert": alert,
                "url": link,
            }),
            workspace_id: alert.workspace_id.clone(),
        }
    }
}

async fn send(
    context: &AlertContext,
    channel: &Channel,
    config: &ChannelConfig,
    notice: &Notice,
) -> Result<(), JobFailure> {
    let result = match config {
        ChannelConfig::Slack { webhook_url } => {
            let body = json!({"text": notice.text}).to_string();
            post(context, webhook_url, body, Vec::new()).await
        }
        ChannelConfig::Webhook { url, secret } => {
            let secret = WebhookSecret::parse(secret)
                .map_err(|e| JobFailure::new(ErrorClass::Client, format!("webhook secret: {e}")))?;
            let at = Utc::now();
            let body = json!({
                "id": notice.delivery_id,
                "type": format!("alert.{}", notice.event),
                "workspace_id": notice.workspace_id,
                "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "data": notice.data,
            })
            .to_string();
            let event_type = format!("alert.{}", notice.event);
            let headers = signature_headers(
                &[secret],
                &SignedRequest {
                    event_type: &event_type,
                    message_id: &notice.delivery_id,
                    delivery_id: &notice.delivery_id,
                    body: body.as_bytes(),
                    at,
                },
            );
            post(context, url, body, headers).await
        }
        ChannelConfig::Email(email) => {
            let mail = crate::mail::Mail {
                subject: notice.title.clone(),
                text: notice.text.clone(),
                message_id: None,
            };
            crate::mail::send(email, &mail, &context.targets, &Default::default()).await
        }
    };
    if let Err(failure) = &result
        && failure.http_status == Some(410)
        && matches!(channel.kind, ChannelKind::Slack | ChannelKind::Webhook)
    {
        let reason = match channel.kind {
            ChannelKind::Slack => "the Slack webhook answered 410 Gone (channel archived)",
            _ => "the webhook endpoint answered 410 Gone",
        };
        if let Err(error) = channels::disable(&context.store, channel, reason).await {
            tracing::warn!(channel = %channel.id, %error, "could not disable the alert channel");
        }
    }
    result
}

/// POSTs `body` and classifies the answer like the `http` kind (410 is a client error:
/// no retry).
async fn post(
    context: &AlertContext,
    url: &str,
    body: String,
    headers: Vec<(&'static str, String)>,
) -> Result<(), JobFailure> {
    if let Ok(parsed) = reqwest::Url::parse(url) {
        crate::targets::check_literal(&context.targets, &parsed).map_err(|refused| {
            JobFailure::new(ErrorClass::Client, format!("refused: {refused}"))
        })?;
    }
    let mut request = context
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    // Never the URL in the failure: for Slack it is the secret (the shared classification
    // leaves it out).
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status().as_u16();
    let Some(class) = ErrorClass::from_http_status(status) else {
        return Ok(());
    };
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let excerpt = crate::response_excerpt::read_excerpt(response, 200).await;
    let class = if status == 410 {
        ErrorClass::Client
    } else {
        class
    };
    Err(JobFailure {
        class,
        message: format!("HTTP {status}: {excerpt}"),
        http_status: Some(status),
        retry_after,
    })
}

#[cfg(test)]
mod scope_tests {
    use super::check_scope;

    #[test]
    fn a_notice_stays_within_its_workspace() {
        let allowed = [
            (Some("a"), Some("a"), Some(Some("a"))),
            (Some("a"), None, Some(Some("a"))),
            (None, None, Some(None)),
            (Some("a"), Some("a"), None),
        ];
        for (job, channel, alert) in allowed {
            assert_eq!(
                check_scope(job, channel, alert),
                Ok(()),
                "{job:?} {channel:?} {alert:?}"
            );
        }
        let refused = [
            // Workspace A's job asks for B's alert on A's channel.
            (
                Some("a"),
                Some("a"),
                Some(Some("b")),
                "the alert belongs to workspace 'b'",
            ),
            // ... or a global alert.
            (
                Some("a"),
                None,
                Some(None),
                "the alert belongs to no workspace",
            ),
            // A's alert to B's channel.
            (
                Some("a"),
                Some("b"),
                Some(Some("a")),
                "the channel belongs to workspace 'b'",
            ),
            // A job without a workspace cannot use a workspace's channel.
            (
                None,
                Some("b"),
                None,
                "the channel belongs to workspace 'b'",
            ),
        ];
        for (job, channel, alert, says) in refused {
            let error = check_scope(job, channel, alert)
                .expect_err(says)
                .to_string();
            assert!(error.contains(says), "{error}");
        }
    }
}
