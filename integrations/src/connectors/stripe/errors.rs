//! Stripe's failure shapes, classified: an error body
//! (`{"error": {"type", "code"?, "message", "param"?, "decline_code"?}}`) with the HTTP status.
//!
//! | signal | class |
//! |---|---|
//! | 429, or `type: rate_limit_error` | throttled: wait `Retry-After` (Stripe rarely sends one: 2 s) |
//! | 401, or `type: authentication_error` | unauthorized (an API key has no refresh: the integration needs re-authorisation) |
//! | 400 `type: idempotency_error` (a key reused with other parameters) | client (not retried: the same key can never succeed) |
//! | 402 `card_error`, 400/404 `invalid_request_error`, 403 (`permission_error`) | client (not retried) |
//! | 409 (another request with the same idempotency key in flight, a lock timeout) | server (retried) |
//! | 5xx (`api_error`) | server (retried) |

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::sync::connector::ConnectorError;

/// The wait after a 429 that carried no `Retry-After` (Stripe's limits are per second).
pub const DEFAULT_RETRY_AFTER: &str = "2";

/// The error's (type, code, message) of a Stripe error body.
pub fn error_of(body: &Value) -> Option<(String, String, String)> {
    let error = body.get("error")?;
    let field = |name: &str| {
        error
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Some((field("type"), field("code"), field("message")))
}

/// Classifies a Stripe answer that is not a success: `status`, its `Retry-After`, the body
/// (JSON if it parsed).
pub fn classify(status: u16, retry_after: Option<String>, body: &Value) -> ConnectorError {
    let (kind, code, text) = error_of(body).unwrap_or_default();
    let mut message = format!("Stripe answered HTTP {status}");
    if !kind.is_empty() {
        message.push_str(&format!(" ({kind}"));
        if !code.is_empty() {
            message.push_str(&format!(", {code}"));
        }
        message.push(')');
    }
    if !text.is_empty() {
        message.push_str(&format!(": {text}"));
    }
    if status == 429 || kind == "rate_limit_error" {
        return ConnectorError::Throttled {
            message,
            retry_after: Some(retry_after.unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned())),
        };
    }
    if status == 401 || kind == "authentication_error" {
        return ConnectorError::Unauthorized(message);
    }
    let class = match (status, kind.as_str()) {
        (_, "idempotency_error") => ErrorClass::Client,
        (409, _) | (500..=599, _) | (_, "api_error") => ErrorClass::Server,
        _ => ErrorClass::Client,
    };
    ConnectorError::Failed(JobFailure {
        class,
        message,
        http_status: Some(status),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Error bodies as Stripe's API reference shows them.
    fn body(kind: &str, code: Option<&str>, message: &str) -> Value {
        let mut error = json!({"type": kind, "message": message,
            "doc_url": "https://stripe.com/docs/error-codes"});
        if let Some(code) = code {
            error["code"] = json!(code);
        }
        json!({ "error": error })
    }

    #[test]
    fn stripe_signals_become_classes() {
        let table: Vec<(u16, Option<&str>, Value, ErrorClass)> = vec![
            (
                429,
                None,
                body(
                    "rate_limit_error",
                    Some("rate_limit"),
                    "Too many requests hit the API too quickly.",
                ),
                ErrorClass::RateLimit,
            ),
            (
                401,
                None,
                body(
                    "authentication_error",
                    None,
                    "Invalid API Key provided: sk_test_****1234",
                ),
                ErrorClass::Auth,
            ),
            (
                402,
                None,
                json!({"error": {"type": "card_error", "code": "card_declined",
                "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}),
                ErrorClass::Client,
            ),
            (
                400,
                None,
                body(
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: amount.",
                ),
                ErrorClass::Client,
            ),
            (
                404,
                None,
                body(
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such payment_intent: 'pi_x'",
                ),
                ErrorClass::Client,
            ),
            (
                400,
                None,
                body(
                    "idempotency_error",
                    None,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                ),
                ErrorClass::Client,
            ),
            (
                409,
                None,
                body(
                    "invalid_request_error",
                    Some("lock_timeout"),
                    "This object cannot be accessed right now because another API request is accessing it.",
                ),
                ErrorClass::Server,
            ),
            (
                500,
                None,
                body("api_error", None, "An unknown error occurred"),
                ErrorClass::Server,
            ),
            (503, None, json!("upstream unavailable"), ErrorClass::Server),
        ];
        for (status, retry_after, body, class) in table {
            let error = classify(status, retry_after.map(str::to_owned), &body);
            assert_eq!(error.class(), class, "HTTP {status} {body}");
            let failure = error.into_failure();
            assert!(
                failure.message.contains(&status.to_string()) || status == 401 || status == 429,
                "{}",
                failure.message
            );
        }
        assert!(matches!(
            classify(429, Some("7".into()), &body("rate_limit_error", None, "slow down")),
            ConnectorError::Throttled { retry_after: Some(r), .. } if r == "7"
        ));
        assert!(matches!(
            classify(429, None, &json!({})),
            ConnectorError::Throttled { retry_after: Some(r), .. } if r == DEFAULT_RETRY_AFTER
        ));
        let message = classify(400, None, &body("idempotency_error", None, "reused"))
            .into_failure()
            .message;
        assert!(
            message.contains("idempotency_error") && message.contains("reused"),
            "{message}"
        );
    }
}
