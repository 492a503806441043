//! Avinode's failure shapes, classified. Every answer is `{"meta": {"errors": […],
//! "warnings": […]}, "data": …}`; an error is `{"title", "code"?, "detail"?}`. Avinode
//! publishes the shape, not a list of codes or its limits: the class of a soft error (HTTP
//! 200 with `meta.errors[]`, Avinode's way of refusing a request it parsed) comes from the
//! words of its code and title, and an error named by neither is a client error (not
//! retried: an admin reads it in the run).
//!
//! | signal | class |
//! |---|---|
//! | 401 (the API connection's token refused or expired) | unauthorized: refresh once (an API key cannot be: the integration needs new credentials) |
//! | 429 (`Retry-After`, else [`THROTTLE_WAIT_SECS`]) | throttled |
//! | 200 with `meta.errors[]` naming a rate or request limit | throttled ([`THROTTLE_WAIT_SECS`]) |
//! | 200 with `meta.errors[]` naming the token or authentication | unauthorized |
//! | 200 with `meta.errors[]` naming a timeout, an unavailable or internal service | server (retried) |
//! | 200 with any other `meta.errors[]` (invalid input, unknown RFQ…) | client |
//! | 5xx | server (retried) |
//! | 403 (the API connection lacks the permission), other 4xx | client |

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::sync::connector::ConnectorError;

/// How long a run waits after Avinode throttled it without a `Retry-After` (its limits are
/// not published).
pub const THROTTLE_WAIT_SECS: u64 = 60;

/// The errors of an answer's `meta.errors`, each as `code: title (detail)`.
pub fn meta_errors(body: &Value) -> Vec<(String, String)> {
    body.pointer("/meta/errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
            let mut title = text("title");
            let detail = text("detail");
            if !detail.is_empty() {
                title = if title.is_empty() {
                    detail
                } else {
                    format!("{title} ({detail})")
                };
            }
            (text("code"), title)
        })
        .collect()
}

fn described(status: u16, errors: &[(String, String)]) -> String {
    let mut message = format!("Avinode answered HTTP {status}");
    for (i, (code, title)) in errors.iter().take(3).enumerate() {
        message.push_str(if i == 0 { ": " } else { "; " });
        if !code.is_empty() {
            message.push_str(code);
            message.push_str(": ");
        }
        message.push_str(title);
    }
    message
}

/// Classifies an Avinode answer: `Ok(())` for a success without `meta.errors`.
pub fn classify(
    status: u16,
    retry_after: Option<String>,
    body: &Value,
) -> Result<(), ConnectorError> {
    let errors = meta_errors(body);
    let success = (200..300).contains(&status);
    if success && errors.is_empty() {
        return Ok(());
    }
    let message = described(status, &errors);
    let words: String = errors
        .iter()
        .map(|(code, title)| format!("{code} {title} "))
        .collect::<String>()
        .to_ascii_lowercase();
    let names = |needles: &[&str]| needles.iter().any(|n| words.contains(n));
    let throttled = |retry_after: Option<String>| ConnectorError::Throttled {
        message: message.clone(),
        retry_after: Some(retry_after.unwrap_or_else(|| THROTTLE_WAIT_SECS.to_string())),
    };
    let failed = |class: ErrorClass| {
        ConnectorError::Failed(JobFailure {
            class,
            message: message.clone(),
            http_status: Some(status),
            retry_after: None,
        })
    };
    Err(match status {
        401 => ConnectorError::Unauthorized(message.clone()),
        429 => throttled(retry_after),
        500..=599 => failed(ErrorClass::Server),
        200..=299 if names(&["rate", "throttl", "too many", "request limit"]) => throttled(None),
        200..=299 if names(&["unauthori", "authenticat", "token"]) => {
            ConnectorError::Unauthorized(message.clone())
        }
        200..=299
            if names(&[
                "timeout",
                "timed out",
                "unavailable",
                "internal",
                "temporar",
            ]) =>
        {
            failed(ErrorClass::Server)
        }
        _ => failed(ErrorClass::Client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(errors: Value) -> Value {
        json!({"meta": {"errors": errors, "warnings": [], "infos": []}, "data": null})
    }

    /// Recorded shapes of Avinode's answers (the simulator gives the same), and their class.
    #[test]
    fn avinode_signals_become_classes() {
        let table = [
            (
                200,
                meta(
                    json!([{"title": "Invalid input", "code": "ERR_INPUT_GENERIC_INVALID",
                    "detail": "aircraft.tailNumber: unknown tail N999ZZ"}]),
                ),
                ErrorClass::Client,
            ),
            (
                200,
                meta(json!([{"title": "Not found", "code": "ERR_RFQ_NOT_FOUND"}])),
                ErrorClass::Client,
            ),
            (
                200,
                meta(json!([{"title": "Request limit exceeded", "code": "ERR_RATE_LIMIT"}])),
                ErrorClass::RateLimit,
            ),
            (
                200,
                meta(json!([{"title": "Invalid or expired token", "code": "ERR_AUTH_TOKEN"}])),
                ErrorClass::Auth,
            ),
            (
                200,
                meta(json!([{"title": "Service temporarily unavailable", "code": "ERR_SERVICE"}])),
                ErrorClass::Server,
            ),
            (
                401,
                meta(json!([{"title": "Unauthorized", "code": "ERR_UNAUTHORIZED"}])),
                ErrorClass::Auth,
            ),
            (
                429,
                json!({"message": "Too Many Requests"}),
                ErrorClass::RateLimit,
            ),
            (
                403,
                meta(
                    json!([{"title": "Forbidden", "detail": "the API connection lacks the permission"}]),
                ),
                ErrorClass::Client,
            ),
            (
                400,
                meta(json!([{"title": "Missing header X-Avinode-SentTimestamp"}])),
                ErrorClass::Client,
            ),
            (
                503,
                json!("<html>Service Unavailable</html>"),
                ErrorClass::Server,
            ),
            (500, meta(json!([])), ErrorClass::Server),
        ];
        for (status, body, class) in table {
            let error = classify(status, None, &body).expect_err("a failure");
            assert_eq!(error.class(), class, "HTTP {status} {body}");
        }
        assert!(classify(200, None, &meta(json!([]))).is_ok());
        assert!(classify(200, None, &json!({"data": {"id": "arfq-1"}})).is_ok());
        let soft = classify(
            200,
            None,
            &meta(json!([{"title": "Invalid input", "code": "ERR_INPUT_GENERIC_INVALID"}])),
        )
        .unwrap_err();
        assert!(
            soft.clone()
                .into_failure()
                .message
                .contains("ERR_INPUT_GENERIC_INVALID: Invalid input"),
            "{soft:?}"
        );
        assert!(matches!(
            classify(429, Some("7".into()), &Value::Null),
            Err(ConnectorError::Throttled { retry_after: Some(r), .. }) if r == "7"
        ));
        assert!(matches!(
            classify(429, None, &Value::Null),
            Err(ConnectorError::Throttled { retry_after: Some(r), .. }) if r == "60"
        ));
    }
}
