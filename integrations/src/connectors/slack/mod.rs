//! Slack (communications, notifications out): each catalog event of an enabled notification
//! data type ([`crate::connectors::notifications`]) becomes one message in one channel.
//!
//! Credentials (`credentials.api_key`, sealed like every credential, never returned):
//! - an **incoming webhook URL** (`https://hooks.slack.com/services/…`; the URL is the
//!   secret and names its channel): the message is `POST`ed to it as `{"text"}`; or
//! - a **bot token** (`xoxb-…`) with `settings.channel` (a channel id such as `C0123ABC`, or
//!   `#name`): `POST {base_url}/api/chat.postMessage` with the token as a bearer;
//!   `settings.base_url` replaces `https://slack.com` (a local simulator).
//!
//! The budget is Slack's ~1 message a second per channel: one call a second, one at a time,
//! per channel (per webhook URL, or per token and channel; the budget account is a hash,
//! never the secret). A burst of events is sent one a second, each event's run snoozing until
//! its turn, so Slack's 429 is never drawn; if it is anyway, its `Retry-After` pauses the
//! channel. Failure shapes: [`errors`] (an archived or deleted channel disables the
//! integration with an alert; a revoked token or URL asks for re-authorisation).
//!
//! Neither API takes an idempotency key: a retry after an answer that was lost on the way
//! can post the message twice (Slack's own retry advice says the same).

pub mod errors;
mod http;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use serde_json::{Value, json};

use super::notifications::{self, Message};
use super::{now_millis, short_digest};
use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};

/// Slack's Web API address (`settings.base_url` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://slack.com";

/// The object type of a message.
pub const OBJECT_TYPE: &str = "Message";

/// The Slack connector.
#[derive(Clone, Debug, Default)]
pub struct Slack;

/// Where messages go.
enum Target {
    /// An incoming webhook (the credential is its URL).
    Webhook,
    /// `chat.postMessage` to a channel.
    Bot { url: String, channel: String },
}

fn bad(integration: &IntegrationInfo, field: &str, why: &str) -> JobFailure {
    JobFailure::new(
        ErrorClass::Client,
        format!("integration {}: {field} {why}", integration.id),
    )
}

/// Whether the credential is an incoming webhook URL (otherwise a token).
fn is_webhook(credential: &str) -> bool {
    credential.starts_with("https://") || credential.starts_with("http://")
}

fn target(integration: &IntegrationInfo, credential: &str) -> Result<Target, JobFailure> {
    if is_webhook(credential) {
        return Ok(Target::Webhook);
    }
    if !credential.starts_with("xox") {
        return Err(bad(
            integration,
            "credentials.api_key",
            "must be an incoming webhook URL or a bot token (xoxb-…)",
        ));
    }
    let channel = match integration.settings.get("channel") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.len() <= 80
                && !s.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(bad(
                integration,
                "settings.channel",
                "must be a channel id or #name",
            ));
        }
        None => {
            return Err(bad(
                integration,
                "settings.channel",
                "is required with a bot token (a channel id such as C0123ABC)",
            ));
        }
    };
    let base = match integration.settings.get("base_url") {
        None | Some(Value::Null) => DEFAULT_BASE_URL.to_owned(),
        Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
            s.trim_end_matches('/').to_owned()
        }
        Some(_) => {
            return Err(bad(
                integration,
                "settings.base_url",
                "must be an http(s) URL",
            ));
        }
    };
    Ok(Target::Bot {
        url: format!("{base}/api/chat.postMessage"),
        channel,
    })
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped; escaping them also keeps event data from
/// writing a mention (`<!channel>`) or a link.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message's text in Slack's mrkdwn.
pub fn mrkdwn(message: &Message<'_>) -> String {
    let mut lines = vec![format!(
        "*{}* ({}): {}",
        escape(message.title),
        escape(message.event_type),
        escape(message.summary)
    )];
    lines.extend(
        message
            .fields
            .iter()
            .map(|(k, v)| format!("• {}: `{}`", escape(k), escape(&v.replace('`', "'")))),
    );
    lines.join("\n")
}

impl Connector for Slack {
    fn provider(&self) -> Provider {
        Provider::Slack
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        notifications::is_data_type(data_type).then(|| DataTypeSpec {
            direction: Direction::Out,
            object_types: vec![OBJECT_TYPE],
        })
    }

    fn record_class(&self, _object_type: &str) -> RecordClass {
        RecordClass::Ordinary
    }

    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        token: &AccessToken,
    ) -> Result<RateLimit, JobFailure> {
        let account = match target(integration, &token.token)? {
            Target::Webhook => format!("slack:webhook:{}", short_digest(&token.token)),
            Target::Bot { channel, .. } => {
                format!(
                    "slack:{}:{}",
                    short_digest(&token.token),
                    short_digest(&channel)
                )
            }
        };
        Ok(RateLimit {
            account,
            per_window: 1,
            window: Duration::from_secs(1),
            concurrent: 1,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::zero()
    }

    fn lookback(&self) -> chrono::Duration {
        chrono::Duration::zero()
    }

    fn changes_since(
        &self,
        _cx: CallContext,
        _data_type: String,
        _since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        Box::pin(async { Err(notifications::outbound_only("Slack")) })
    }

    fn scan(
        &self,
        _cx: CallContext,
        _data_type: String,
        _position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        Box::pin(async { Err(notifications::outbound_only("Slack")) })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        Box::pin(async move {
            let message = Message::of(&record.data).ok_or_else(|| {
                ConnectorError::Failed(JobFailure::new(
                    ErrorClass::Client,
                    format!(
                        "outbound record {} is not a notification",
                        record.internal_id
                    ),
                ))
            })?;
            let text = mrkdwn(&message);
            let target =
                target(&cx.integration, &cx.token.token).map_err(ConnectorError::Failed)?;
            let (external_id, payload) = match target {
                Target::Webhook => {
                    let body = json!({"text": text, "unfurl_links": false, "unfurl_media": false});
                    http::post_webhook(&cx, &body).await?;
                    (
                        format!("webhook:{}", record.idempotency_key),
                        json!({"text": text}),
                    )
                }
                Target::Bot { url, channel } => {
                    let body = json!({"channel": channel, "text": text,
                        "unfurl_links": false, "unfurl_media": false});
                    let answer = http::post_message(&cx, &url, &body).await?;
                    let channel = answer
                        .get("channel")
                        .and_then(Value::as_str)
                        .unwrap_or(&channel)
                        .to_owned();
                    let ts = answer.get("ts").and_then(Value::as_str).ok_or_else(|| {
                        ConnectorError::Failed(JobFailure::new(
                            ErrorClass::Server,
                            "Slack chat.postMessage answered ok without a ts",
                        ))
                    })?;
                    (
                        format!("{channel}:{ts}"),
                        json!({"channel": channel, "ts": ts, "text": text}),
                    )
                }
            };
            Ok(Pushed {
                external_id,
                payload,
                modified_at: now_millis(),
                concurrency_token: None,
            })
        })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        notifications::event_types(data_type)
    }

    fn one_record_per_event(&self, data_type: &str) -> bool {
        notifications::is_data_type(data_type)
    }

    fn outbound_for_event(
        &self,
        data_type: &str,
        event_type: &str,
        data: &Value,
    ) -> Option<Result<OutboundPlan, String>> {
        notifications::for_event(OBJECT_TYPE, data_type, event_type, data)
    }

    fn fetch(
        &self,
        _cx: CallContext,
        _object_type: String,
        _external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async { Err(notifications::outbound_only("Slack")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_cannot_mention_everyone_or_link() {
        let plan = notifications::plan(
            "Message",
            "portal.message_sent",
            &json!({"portal_message_id": "pm_1", "note": "<!channel> & <https://x|y>"}),
        )
        .unwrap();
        let text = mrkdwn(&Message::of(&plan.body).unwrap());
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.starts_with("*Portal message* (portal.message_sent)"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt; &amp;"), "{text}");
    }
}
