//! Slack's failure shapes, classified. Two surfaces answer differently:
//!
//! **Web API** (`chat.postMessage`, bot token): failures are usually HTTP 200 with
//! `{"ok": false, "error": "<code>"}`; throttling is HTTP 429 with `Retry-After`.
//!
//! | signal | class |
//! |---|---|
//! | 429, or `ratelimited` | throttled: wait `Retry-After` (1 s when absent) |
//! | `invalid_auth`, `token_revoked`, `token_expired`, `not_authed`, `account_inactive` | unauthorized: a bot token has no refresh, so the integration needs re-authorisation (alert) |
//! | `channel_not_found`, `is_archived`, `channel_is_archived`, HTTP 410 | gone: the integration's channel is disabled (alert), no retry |
//! | `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout`, HTTP 5xx | server (retried with backoff) |
//! | any other code (`not_in_channel`, `msg_too_long`, `missing_scope`, …), other 4xx | client (not retried; alert) |
//!
//! **Incoming webhooks** (the URL is the credential): HTTP 200 `ok` is success; errors are
//! HTTP statuses with a plain-text code.
//!
//! | signal | class |
//! |---|---|
//! | 429 | throttled: wait `Retry-After` |
//! | 410 `channel_is_archived`, 404 `channel_not_found` | gone: disabled (alert) |
//! | 403 `invalid_token`, 404 `no_service` / `no_team`, 410 `team_disabled` (the URL was revoked) | unauthorized: a new URL is needed (re-authorisation alert) |
//! | 400 `invalid_payload` / `no_text`, 403 `action_prohibited`, other 4xx | client |
//! | 5xx (`rollup_error`) | server |
//!
//! Messages name Slack's error code (never the URL, the token or the message).

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::sync::connector::ConnectorError;

/// The wait after a 429 that carried no `Retry-After` (Slack's limits are per second).
pub const DEFAULT_RETRY_AFTER: &str = "1";

const AUTH_CODES: [&str; 5] = [
    "invalid_auth",
    "token_revoked",
    "token_expired",
    "not_authed",
    "account_inactive",
];
const GONE_CODES: [&str; 3] = ["channel_not_found", "is_archived", "channel_is_archived"];
const SERVER_CODES: [&str; 4] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// A Slack error code as shown: letters, digits and `_` only, at most 64 (a body that is
/// not a code shows as `-`).
fn code_of(text: &str) -> &str {
    let code = text.trim();
    if !code.is_empty()
        && code.len() <= 64
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        code
    } else {
        "-"
    }
}

fn throttled(what: &str, retry_after: Option<String>) -> ConnectorError {
    ConnectorError::Throttled {
        message: format!("Slack {what}: rate limited (429)"),
        retry_after: Some(retry_after.unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned())),
    }
}

fn failed(class: ErrorClass, status: u16, message: String) -> ConnectorError {
    ConnectorError::Failed(JobFailure {
        class,
        message,
        http_status: Some(status),
        retry_after: None,
    })
}

/// Classifies a Web API answer: `Ok` with the body when it says `ok: true`.
pub fn web_api(
    status: u16,
    retry_after: Option<String>,
    body: &Value,
) -> Result<(), ConnectorError> {
    let what = "chat.postMessage";
    let ok = body.get("ok").and_then(Value::as_bool);
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .map(code_of)
        .unwrap_or("-");
    if (200..300).contains(&status) && ok == Some(true) {
        return Ok(());
    }
    if status == 429 || code == "ratelimited" || code == "rate_limited" {
        return Err(throttled(what, retry_after));
    }
    let message = format!("Slack {what} answered HTTP {status}, error `{code}`");
    if AUTH_CODES.contains(&code) || status == 401 {
        return Err(ConnectorError::Unauthorized(message));
    }
    if GONE_CODES.contains(&code) || status == 410 {
        return Err(ConnectorError::Gone(format!(
            "Slack says the channel is gone (`{code}`, HTTP {status})"
        )));
    }
    let class = if SERVER_CODES.contains(&code) || status >= 500 {
        ErrorClass::Server
    } else if (200..300).contains(&status) && ok.is_none() {
        // A 200 that is not Slack's answer (a proxy's page): worth another try.
        ErrorClass::Server
    } else {
        ErrorClass::Client
    };
    Err(failed(class, status, message))
}

/// Classifies an incoming webhook's answer (`body`: its plain text).
pub fn webhook(status: u16, retry_after: Option<String>, body: &str) -> Result<(), ConnectorError> {
    let what = "incoming webhook";
    if (200..300).contains(&status) {
        return Ok(());
    }
    if status == 429 {
        return Err(throttled(what, retry_after));
    }
    let code = code_of(body);
    let message = format!("Slack {what} answered HTTP {status} `{code}`");
    match (status, code) {
        (410, "team_disabled")
        | (403, "invalid_token")
        | (404, "no_service" | "no_team")
        | (401, _) => Err(ConnectorError::Unauthorized(format!(
            "{message}: the webhook URL was revoked; give a new one"
        ))),
        (410, _) | (404, "channel_not_found") => Err(ConnectorError::Gone(format!(
            "Slack says the webhook's channel is gone (`{code}`, HTTP {status})"
        ))),
        (500..=599, _) => Err(failed(ErrorClass::Server, status, message)),
        _ => Err(failed(ErrorClass::Client, status, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Answers as Slack's documentation shows them, and the class each one takes.
    #[test]
    fn slack_signals_become_classes() {
        let api: Vec<(u16, Option<&str>, Value, Option<ErrorClass>)> = vec![
            (
                200,
                None,
                json!({"ok": true, "channel": "C1", "ts": "1.2"}),
                None,
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "invalid_auth"}),
                Some(ErrorClass::Auth),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "token_revoked"}),
                Some(ErrorClass::Auth),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "not_authed"}),
                Some(ErrorClass::Auth),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "ratelimited"}),
                Some(ErrorClass::RateLimit),
            ),
            (
                429,
                Some("3"),
                json!({"ok": false, "error": "ratelimited"}),
                Some(ErrorClass::RateLimit),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "channel_not_found"}),
                Some(ErrorClass::Client),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "is_archived"}),
                Some(ErrorClass::Client),
            ),
            (410, None, json!({}), Some(ErrorClass::Client)),
            (
                200,
                None,
                json!({"ok": false, "error": "not_in_channel"}),
                Some(ErrorClass::Client),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "msg_too_long"}),
                Some(ErrorClass::Client),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "internal_error"}),
                Some(ErrorClass::Server),
            ),
            (
                200,
                None,
                json!({"ok": false, "error": "fatal_error"}),
                Some(ErrorClass::Server),
            ),
            (503, None, Value::Null, Some(ErrorClass::Server)),
            (200, None, Value::Null, Some(ErrorClass::Server)),
        ];
        for (status, retry_after, body, class) in api {
            let got = web_api(status, retry_after.map(str::to_owned), &body);
            assert_eq!(
                got.as_ref().err().map(ConnectorError::class),
                class,
                "{status} {body}"
            );
        }
        let hooks: Vec<(u16, &str, Option<ErrorClass>)> = vec![
            (200, "ok", None),
            (429, "", Some(ErrorClass::RateLimit)),
            (410, "channel_is_archived", Some(ErrorClass::Client)),
            (404, "channel_not_found", Some(ErrorClass::Client)),
            (403, "invalid_token", Some(ErrorClass::Auth)),
            (404, "no_service", Some(ErrorClass::Auth)),
            (410, "team_disabled", Some(ErrorClass::Auth)),
            (400, "invalid_payload", Some(ErrorClass::Client)),
            (403, "action_prohibited", Some(ErrorClass::Client)),
            (500, "rollup_error", Some(ErrorClass::Server)),
        ];
        for (status, body, class) in hooks {
            let got = webhook(status, None, body);
            assert_eq!(
                got.as_ref().err().map(ConnectorError::class),
                class,
                "{status} {body}"
            );
        }
        // What disables the channel, and what waits how long.
        assert!(matches!(
            web_api(200, None, &json!({"ok": false, "error": "is_archived"})),
            Err(ConnectorError::Gone(_))
        ));
        assert!(matches!(
            webhook(410, None, "channel_is_archived"),
            Err(ConnectorError::Gone(_))
        ));
        assert!(matches!(
            web_api(429, Some("7".into()), &json!({})),
            Err(ConnectorError::Throttled { retry_after: Some(r), .. }) if r == "7"
        ));
        assert!(matches!(
            webhook(429, None, ""),
            Err(ConnectorError::Throttled { retry_after: Some(r), .. }) if r == DEFAULT_RETRY_AFTER
        ));
        let message = webhook(400, None, "<html>secret page</html>")
            .unwrap_err()
            .into_failure()
            .message;
        assert!(!message.contains("secret"), "{message}");
    }
}
