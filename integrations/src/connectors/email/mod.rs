//! Email (communications, notifications out): each catalog event of an enabled notification
//! data type ([`crate::connectors::notifications`]) becomes one plain-text email to the
//! configured recipients, sent over SMTP by the engine's transport ([`hangar_workers::mail`],
//! the one the email alert channel uses).
//!
//! Settings: `host`, `port` (default 587 with STARTTLS, 465 with implicit TLS), `tls`
//! (`starttls`, the default; `implicit`; `none` only for a relay on a trusted network),
//! `username`, `from` (an address), `to` (an address or a list of them). Credentials: the
//! SMTP AUTH password as `credentials.api_key` (sealed, never returned). The host obeys the
//! target policy like every provider address; TLS verifies the host name against the web PKI.
//!
//! Failure classes (RFC 5321 / 4954): a 4xx reply is transient (`server`: retried with
//! backoff), a 5xx permanent (`client`: failed, the admin alerted), `535`/`534`/`530` a
//! refused login (`auth`: the integration needs re-authorisation, with an alert); no answer
//! or a failed handshake is a `timeout`. Messages carry the reply code, never the server's
//! text.
//!
//! The budget per server and user is 5 messages a second, 2 connections at once. The
//! `Message-ID` is derived from the record's idempotency key: a retry after a lost answer
//! sends the same id, so a receiver's duplicate filter can drop the copy (SMTP has no
//! idempotency of its own).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::alerts::{EmailConfig, TlsMode};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use hangar_workers::mail::{self, Mail, TrustRoots};
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

/// The object type of an email.
pub const OBJECT_TYPE: &str = "Email";

/// Recipients of one integration at most.
pub const MAX_RECIPIENTS: usize = 50;

/// The Email connector. `roots`: certificates trusted beside the web PKI (none in
/// production; a test's local server).
#[derive(Clone, Debug, Default)]
pub struct Email {
    roots: TrustRoots,
}

impl Email {
    /// The connector trusting `roots` as well (tests: a self-signed local SMTP server).
    pub fn trusting(roots: TrustRoots) -> Email {
        Email { roots }
    }
}

/// The SMTP settings of an integration, with `password` (the credential).
pub fn config_of(integration: &IntegrationInfo, password: &str) -> Result<EmailConfig, JobFailure> {
    let s = &integration.settings;
    let bad = |field: &str, why: &str| {
        JobFailure::new(
            ErrorClass::Client,
            format!("integration {}: settings.{field} {why}", integration.id),
        )
    };
    let text = |field: &str| -> Result<String, JobFailure> {
        match s.get(field) {
            Some(Value::String(v)) if !v.trim().is_empty() && v.len() <= 255 => {
                Ok(v.trim().to_owned())
            }
            Some(_) => Err(bad(field, "must be a non-empty string")),
            None => Err(bad(field, "is required")),
        }
    };
    let tls = match s.get("tls") {
        None | Some(Value::Null) => TlsMode::Starttls,
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| bad("tls", "must be starttls, implicit or none"))?,
    };
    let port = match s.get("port") {
        None | Some(Value::Null) => match tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls | TlsMode::None => 587,
        },
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port", "must be a port number"))?,
    };
    let to: Vec<String> = match s.get("to") {
        Some(Value::String(one)) => vec![one.trim().to_owned()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| v.as_str().map(|t| t.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("to", "must be addresses"))?,
        Some(_) => return Err(bad("to", "must be an address or a list of them")),
        None => return Err(bad("to", "is required")),
    };
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(bad("to", "must name 1 to 50 recipients"));
    }
    let config = EmailConfig {
        host: text("host")?,
        port,
        username: Some(text("username")?),
        password: Some(password.to_owned()),
        from: text("from")?,
        to,
        tls,
    };
    if !mail::is_address(&config.from) {
        return Err(bad("from", "is not an email address"));
    }
    if let Some(i) = config.to.iter().position(|t| !mail::is_address(t)) {
        return Err(bad(&format!("to[{i}]"), "is not an email address"));
    }
    Ok(config)
}

/// An SMTP failure as the sync engine takes it: a refused login is a 401 (refresh once,
/// then re-authorisation), the rest as classified.
fn connector_error(failure: JobFailure) -> ConnectorError {
    if failure.class == ErrorClass::Auth {
        ConnectorError::Unauthorized(failure.message)
    } else {
        ConnectorError::Failed(failure)
    }
}

impl Connector for Email {
    fn provider(&self) -> Provider {
        Provider::Email
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
        let config = config_of(integration, &token.token)?;
        Ok(RateLimit {
            account: format!(
                "email:{}:{}",
                short_digest(&format!("{}:{}", config.host, config.port)),
                short_digest(config.username.as_deref().unwrap_or(""))
            ),
            per_window: 5,
            window: Duration::from_secs(1),
            concurrent: 2,
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
        Box::pin(async { Err(notifications::outbound_only("Email")) })
    }

    fn scan(
        &self,
        _cx: CallContext,
        _data_type: String,
        _position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        Box::pin(async { Err(notifications::outbound_only("Email")) })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        let roots = self.roots.clone();
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
            let config =
                config_of(&cx.integration, &cx.token.token).map_err(ConnectorError::Failed)?;
            let domain = config.from.rsplit_once('@').map_or("hangar", |(_, d)| d);
            let message_id = format!("{}@{domain}", record.idempotency_key);
            let subject = format!("[PlaneConnection] {}", message.title);
            let mail = Mail {
                subject: subject.clone(),
                text: message.plain_text(),
                message_id: Some(message_id.clone()),
            };
            mail::send(&config, &mail, &cx.targets, &roots)
                .await
                .map_err(connector_error)?;
            Ok(Pushed {
                external_id: message_id.clone(),
                payload: json!({"message_id": message_id, "subject": subject,
                    "recipients": config.to.len()}),
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
        Box::pin(async { Err(notifications::outbound_only("Email")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;

    fn info(settings: Value) -> IntegrationInfo {
        IntegrationInfo {
            id: "int_e".into(),
            workspace_id: "ws".into(),
            provider: Provider::Email,
            enabled: true,
            data_types: vec!["crew".into()],
            settings,
        }
    }

    #[test]
    fn settings_make_a_smtp_configuration_and_bad_ones_name_the_field() {
        let c = config_of(
            &info(
                json!({"host": "smtp.example.com", "tls": "implicit", "username": "ops",
                "from": "hangar@example.com", "to": "ops@example.com"}),
            ),
            "pw",
        )
        .unwrap();
        assert_eq!((c.port, c.tls, c.to.len()), (465, TlsMode::Implicit, 1));
        let c = config_of(
            &info(json!({"host": "smtp.example.com", "username": "ops",
                "from": "hangar@example.com", "to": ["a@example.com", "b@example.com"]})),
            "pw",
        )
        .unwrap();
        assert_eq!((c.port, c.tls), (587, TlsMode::Starttls));
        for (settings, field) in [
            (
                json!({"username": "u", "from": "a@b.c", "to": "a@b.c"}),
                "settings.host",
            ),
            (
                json!({"host": "h", "username": "u", "from": "a@b.c", "to": "a@b.c", "tls": "ssl"}),
                "settings.tls",
            ),
            (
                json!({"host": "h", "username": "u", "from": "a@b.c", "to": "a@b.c", "port": 70000}),
                "settings.port",
            ),
            (
                json!({"host": "h", "username": "u", "from": "nobody", "to": "a@b.c"}),
                "settings.from",
            ),
            (
                json!({"host": "h", "username": "u", "from": "a@b.c", "to": ["a@b.c", "x y"]}),
                "settings.to[1]",
            ),
            (
                json!({"host": "h", "username": "u", "from": "a@b.c", "to": []}),
                "settings.to",
            ),
            (
                json!({"host": "h", "from": "a@b.c", "to": "a@b.c"}),
                "settings.username",
            ),
        ] {
            let error = config_of(&info(settings.clone()), "pw")
                .unwrap_err()
                .message;
            assert!(error.contains(field), "{settings}: {error}");
        }
    }
}
