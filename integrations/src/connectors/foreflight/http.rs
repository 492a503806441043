//! One ForeFlight Dispatch call: the API key in `x-api-key`, JSON, classified. ForeFlight
//! publishes no error shapes or limits (third-party knowledge only): its gateway's own
//! answers are what is classified.
//!
//! | signal | class |
//! |---|---|
//! | 401, 403 (`{"message": "Forbidden"}`: the key refused) | unauthorized (an API key cannot be refreshed: the integration needs a new key) |
//! | 429 (`Retry-After`, else [`THROTTLE_WAIT_SECS`]) | throttled |
//! | 5xx, 408 | server (retried) |
//! | other 4xx (400 validation, 404 unknown flight) | client |
//!
//! The key never reaches a message (errors are stripped of the URL and carry no header).

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::transport_failure::transport_failure;
use reqwest::Method;
use serde_json::Value;

use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a run waits after a 429 without `Retry-After`.
pub const THROTTLE_WAIT_SECS: u64 = 60;

/// One call.
pub(super) async fn call(
    cx: &CallContext,
    method: Method,
    url: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Value, ConnectorError> {
    let mut request = cx
        .http
        .request(method, url)
        .query(query)
        .header("x-api-key", &cx.token.token)
        .header("Accept", "application/json")
        .timeout(TIMEOUT);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(body),
        _ => Err(classify(status, retry_after, &body)),
    }
}

/// Classifies a ForeFlight answer that is not a success (module doc).
pub fn classify(status: u16, retry_after: Option<String>, body: &Value) -> ConnectorError {
    let text = ["message", "error", "title"]
        .iter()
        .find_map(|f| body.get(*f).and_then(Value::as_str))
        .unwrap_or("");
    let mut message = format!("ForeFlight answered HTTP {status}");
    if !text.is_empty() {
        message.push_str(": ");
        message.extend(text.chars().take(300));
    }
    match status {
        401 | 403 => ConnectorError::Unauthorized(message),
        429 => ConnectorError::Throttled {
            message,
            retry_after: Some(retry_after.unwrap_or_else(|| THROTTLE_WAIT_SECS.to_string())),
        },
        _ => ConnectorError::Failed(JobFailure {
            class: match status {
                408 | 500..=599 => ErrorClass::Server,
                _ => ErrorClass::Client,
            },
            message,
            http_status: Some(status),
            retry_after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn foreflight_answers_become_classes() {
        let table = [
            (403, json!({"message": "Forbidden"}), ErrorClass::Auth),
            (401, json!({"message": "Unauthorized"}), ErrorClass::Auth),
            (
                429,
                json!({"message": "Too Many Requests"}),
                ErrorClass::RateLimit,
            ),
            (
                400,
                json!({"message": "Validation failed", "errors": [{"field": "departure"}]}),
                ErrorClass::Client,
            ),
            (
                404,
                json!({"message": "Flight not found"}),
                ErrorClass::Client,
            ),
            (
                502,
                json!({"message": "Internal server error"}),
                ErrorClass::Server,
            ),
            (504, Value::Null, ErrorClass::Server),
        ];
        for (status, body, class) in table {
            assert_eq!(
                classify(status, None, &body).class(),
                class,
                "HTTP {status} {body}"
            );
        }
        assert!(matches!(
            classify(429, Some("12".into()), &Value::Null),
            ConnectorError::Throttled { retry_after: Some(r), .. } if r == "12"
        ));
    }
}
