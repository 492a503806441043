//! QuickBooks Online's failure shapes, classified: a `Fault` body
//! (`{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`) with the HTTP status.
//!
//! | signal | class |
//! |---|---|
//! | 401 (Fault code 3200, `WWW-Authenticate: … error="invalid_token"`) | unauthorized: refresh once, retry once |
//! | 429 (`ThrottleExceeded`), or a Fault of that type | throttled: wait `Retry-After` |
//! | 400 with code 5010 (stale object: `SyncToken` out of date) | stale concurrency token → conflict |
//! | 5xx | server (retried) |
//! | other 4xx, or a 200 that carries a `Fault` (soft error) | client (not retried) |

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::sync::connector::ConnectorError;

/// QuickBooks' code for a stale `SyncToken` ("Stale Object Error").
pub const STALE_OBJECT: &str = "5010";

/// The first error of a Fault body: (type, code, message with detail).
pub fn fault(body: &Value) -> Option<(String, String, String)> {
    let fault = body.get("Fault")?;
    let kind = fault
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let first = fault.get("Error").and_then(|e| e.get(0));
    let code = first
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = first
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = first
        .and_then(|e| e.get("Detail"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = match (message, detail) {
        ("", d) => d.to_owned(),
        (m, "") => m.to_owned(),
        (m, d) => format!("{m}: {d}"),
    };
    Some((kind, code, text))
}

/// Classifies a QuickBooks answer that is not a success: `status`, its `Retry-After`, and
/// the body (JSON if it parsed). A 2xx with a Fault is a soft error.
pub fn classify(status: u16, retry_after: Option<String>, body: &Value) -> ConnectorError {
    let (kind, code, text) = fault(body).unwrap_or_default();
    let message = if text.is_empty() {
        format!("QuickBooks answered HTTP {status}")
    } else if code.is_empty() {
        format!("QuickBooks answered HTTP {status}: {text}")
    } else {
        format!("QuickBooks answered HTTP {status} (code {code}): {text}")
    };
    if status == 401 {
        return ConnectorError::Unauthorized(message);
    }
    if status == 429 || kind == "ThrottleExceeded" {
        return ConnectorError::Throttled {
            message,
            retry_after,
        };
    }
    if code == STALE_OBJECT {
        return ConnectorError::StaleToken(message);
    }
    let class = match status {
        500..=599 => ErrorClass::Server,
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

    fn body(kind: &str, code: &str) -> Value {
        json!({"Fault": {"Error": [{"Message": "msg", "Detail": "detail", "code": code}], "type": kind}})
    }

    #[test]
    fn quickbooks_signals_become_classes() {
        assert!(matches!(
            classify(401, None, &body("AuthenticationFault", "3200")),
            ConnectorError::Unauthorized(m) if m.contains("3200")
        ));
        assert!(matches!(
            classify(429, Some("7".into()), &body("ThrottleExceeded", "3001")),
            ConnectorError::Throttled { retry_after: Some(r), .. } if r == "7"
        ));
        assert!(matches!(
            classify(400, None, &body("ValidationFault", "5010")),
            ConnectorError::StaleToken(_)
        ));
        assert_eq!(
            classify(503, None, &json!("down")).class(),
            ErrorClass::Server
        );
        assert_eq!(
            classify(200, None, &body("ValidationFault", "2020")).class(),
            ErrorClass::Client
        );
        assert_eq!(
            classify(400, None, &body("ValidationFault", "2020")).class(),
            ErrorClass::Client
        );
    }
}
