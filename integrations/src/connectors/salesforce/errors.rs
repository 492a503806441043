//! Salesforce's failure shapes, classified: an error array
//! (`[{"message", "errorCode", "fields"?}]`) with the HTTP status.
//!
//! | signal | class |
//! |---|---|
//! | 401 `INVALID_SESSION_ID` (any 401) | unauthorized: refresh once, retry once |
//! | 403 `REQUEST_LIMIT_EXCEEDED` (the org's daily API budget is spent) | throttled, waiting for the budget to come back ([`BUDGET_WAIT_SECS`]): not a client error |
//! | 429, or any other `REQUEST_LIMIT_EXCEEDED` (concurrent-request limit) | throttled (`Retry-After`, else [`BUDGET_WAIT_SECS`] for the daily budget, 30 s otherwise) |
//! | 400 `UNABLE_TO_LOCK_ROW`, 5xx (`SERVER_UNAVAILABLE`) | server (retried) |
//! | 300 (an external id matching several records), other 4xx (`MALFORMED_QUERY`, `INVALID_FIELD`, `NOT_FOUND`, `INSUFFICIENT_ACCESS`, `DUPLICATE_VALUE`…) | client (not retried) |

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::sync::connector::ConnectorError;

/// How long a run waits after the daily budget is spent. The 24-hour window is rolling:
/// capacity comes back as the oldest calls age out, so an hour, not a day.
pub const BUDGET_WAIT_SECS: u64 = 3600;

/// The first error of an error array: (errorCode, message).
pub fn error_of(body: &Value) -> Option<(String, String)> {
    let first = body.as_array()?.first()?;
    let field = |name: &str| {
        first
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Some((field("errorCode"), field("message")))
}

/// Classifies a Salesforce answer that is not a success.
pub fn classify(status: u16, retry_after: Option<String>, body: &Value) -> ConnectorError {
    let (code, text) = error_of(body).unwrap_or_default();
    let mut message = format!("Salesforce answered HTTP {status}");
    if !code.is_empty() {
        message.push_str(&format!(" ({code})"));
    }
    if !text.is_empty() {
        message.push_str(&format!(": {text}"));
    }
    if status == 401 {
        return ConnectorError::Unauthorized(message);
    }
    if code == "REQUEST_LIMIT_EXCEEDED" || status == 429 {
        let daily = status == 403;
        let wait = if daily { BUDGET_WAIT_SECS } else { 30 };
        return ConnectorError::Throttled {
            message,
            retry_after: Some(retry_after.unwrap_or_else(|| wait.to_string())),
        };
    }
    let class = match (status, code.as_str()) {
        (_, "UNABLE_TO_LOCK_ROW") | (500..=599, _) => ErrorClass::Server,
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

    fn errors(code: &str, message: &str) -> Value {
        json!([{"message": message, "errorCode": code}])
    }

    #[test]
    fn salesforce_signals_become_classes() {
        let table = [
            (
                401,
                errors("INVALID_SESSION_ID", "Session expired or invalid"),
                ErrorClass::Auth,
            ),
            (
                403,
                errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                ErrorClass::RateLimit,
            ),
            (
                403,
                errors(
                    "REQUEST_LIMIT_EXCEEDED",
                    "ConcurrentPerOrgLongTxn Limit exceeded.",
                ),
                ErrorClass::RateLimit,
            ),
            (
                403,
                errors(
                    "INSUFFICIENT_ACCESS",
                    "insufficient access rights on object id",
                ),
                ErrorClass::Client,
            ),
            (
                400,
                json!([{"message": "No such column 'Foo' on entity 'Account'", "errorCode": "INVALID_FIELD", "fields": ["Foo"]}]),
                ErrorClass::Client,
            ),
            (
                400,
                errors("MALFORMED_QUERY", "unexpected token"),
                ErrorClass::Client,
            ),
            (
                400,
                errors(
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record",
                ),
                ErrorClass::Server,
            ),
            (
                404,
                errors("NOT_FOUND", "The requested resource does not exist"),
                ErrorClass::Client,
            ),
            (
                300,
                json!([
                    "/services/data/v62.0/sobjects/Account/001A",
                    "/services/data/v62.0/sobjects/Account/001B"
                ]),
                ErrorClass::Client,
            ),
            (
                503,
                errors("SERVER_UNAVAILABLE", "Server is unavailable"),
                ErrorClass::Server,
            ),
            (500, json!("<html>oops</html>"), ErrorClass::Server),
        ];
        for (status, body, class) in table {
            assert_eq!(
                classify(status, None, &body).class(),
                class,
                "HTTP {status} {body}"
            );
        }
        assert!(matches!(
            classify(403, None, &errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")),
            ConnectorError::Throttled { retry_after: Some(r), .. } if r == BUDGET_WAIT_SECS.to_string()
        ));
        assert!(matches!(
            classify(401, None, &errors("INVALID_SESSION_ID", "Session expired or invalid")),
            ConnectorError::Unauthorized(m) if m.contains("INVALID_SESSION_ID")
        ));
    }
}
