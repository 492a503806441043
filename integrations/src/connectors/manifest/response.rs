//! Response rules: what an answer means, as one pure function ([`classify`]) of its status,
//! headers and decoded body. The manifest's rules are tried first, in order (every
//! condition a rule gives must hold); the retry table of the integration document is the
//! default after them: 2xx success, 401 refresh then retry, 429 rate-limited with
//! `Retry-After`, 408 timeout, 5xx retry, any other status fatal (`client`; a redirect is
//! not followed). A message is taken from the body at the rule's `message_path`, cut short,
//! and never holds the request (whose URL may carry a key).

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::model::{Action, FailureClass, Rule, StatusMatch};
use super::select;
use crate::sync::connector::ConnectorError;

/// What to do with an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Decode it.
    Success,
    /// Get a new session or token and retry once.
    Refresh(String),
    /// Stop with this error.
    Fail(ConnectorError),
}

/// The verdict on an answer of `status` with `headers` and `body` (decoded; `Null` when it
/// did not decode) under `rules`.
pub fn classify(status: u16, headers: &HeaderMap, body: &Value, rules: &[Rule]) -> Verdict {
    let rule = rules.iter().find(|r| matches(r, status, headers, body));
    let (action, class, wait_header, message) = match rule {
        Some(r) => (
            r.action,
            r.class,
            r.wait_header.as_deref().unwrap_or("retry-after"),
            r.message_path
                .as_deref()
                .and_then(|p| select::text(body, p))
                .map(|m| m.chars().take(200).collect::<String>()),
        ),
        None => (default_action(status), None, "retry-after", None),
    };
    let message = message.unwrap_or_else(|| format!("HTTP {status}"));
    let failure = |default: ErrorClass, what: &str| {
        ConnectorError::Failed(JobFailure {
            class: class.map(error_class).unwrap_or(default),
            message: format!("{what} (HTTP {status}): {message}"),
            http_status: Some(status),
            retry_after: None,
        })
    };
    match action {
        Action::Success => Verdict::Success,
        Action::Refresh => Verdict::Refresh(format!("session refused (HTTP {status}): {message}")),
        Action::RateLimited => Verdict::Fail(ConnectorError::Throttled {
            message: format!("rate limited (HTTP {status}): {message}"),
            retry_after: headers
                .get(wait_header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        Action::Retry if status == 408 && class.is_none() => {
            Verdict::Fail(failure(ErrorClass::Timeout, "timed out"))
        }
        Action::Retry => Verdict::Fail(failure(ErrorClass::Server, "provider failure")),
        Action::SoftError => Verdict::Fail(failure(ErrorClass::Client, "soft error")),
        Action::Fatal => Verdict::Fail(failure(ErrorClass::Client, "refused")),
    }
}

fn default_action(status: u16) -> Action {
    match status {
        200..=299 => Action::Success,
        401 => Action::Refresh,
        429 => Action::RateLimited,
        408 | 500..=599 => Action::Retry,
        _ => Action::Fatal,
    }
}

fn matches(rule: &Rule, status: u16, headers: &HeaderMap, body: &Value) -> bool {
    if !rule.status.is_empty() && !rule.status.iter().any(|s| s.matches(status)) {
        return false;
    }
    if let Some(name) = &rule.header {
        let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if let Some(want) = &rule.header_equals
            && !value.trim().eq_ignore_ascii_case(want)
        {
            return false;
        }
    }
    if let Some(path) = &rule.path {
        let Some(found) = select::get(body, path) else {
            return false;
        };
        let present = match found {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        };
        if !present {
            return false;
        }
        if let Some(want) = &rule.equals
            && select::text(body, path).as_deref() != Some(want.as_str())
        {
            return false;
        }
    }
    true
}

/// The engine's class of a rule's class.
pub fn error_class(class: FailureClass) -> ErrorClass {
    match class {
        FailureClass::Timeout => ErrorClass::Timeout,
        FailureClass::Auth => ErrorClass::Auth,
        FailureClass::RateLimit => ErrorClass::RateLimit,
        FailureClass::Server => ErrorClass::Server,
        FailureClass::Client => ErrorClass::Client,
        FailureClass::Internal => ErrorClass::Internal,
    }
}

impl StatusMatch {
    /// `"5xx"` style, for messages.
    pub fn describe(&self) -> String {
        match self {
            StatusMatch::Code(c) => c.to_string(),
            StatusMatch::Class(c) => c.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(text: &str) -> Rule {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn rules_first_then_the_retry_table() {
        let rules = vec![
            rule(
                r#"status = [200]
path = "meta.errors"
action = "soft_error"
message_path = "meta.errors[0].title""#,
            ),
            rule(
                r#"status = [403]
path = "error.code"
equals = "QUOTA"
action = "rate_limited"
wait_header = "X-Quota-Reset""#,
            ),
            rule(
                r#"status = ["4xx"]
path = "error.code"
equals = "SESSION_EXPIRED"
action = "refresh""#,
            ),
            rule(
                r#"header = "X-Maintenance"
header_equals = "on"
action = "retry""#,
            ),
        ];
        let none = HeaderMap::new();
        let mut quota = HeaderMap::new();
        quota.insert("x-quota-reset", "17".parse().unwrap());
        let mut maint = HeaderMap::new();
        maint.insert("x-maintenance", "ON".parse().unwrap());
        let soft = classify(
            200,
            &none,
            &json!({"meta": {"errors": [{"title": "bad tail"}]}}),
            &rules,
        );
        assert!(
            matches!(&soft, Verdict::Fail(e) if e.class() == ErrorClass::Client),
            "{soft:?}"
        );
        assert_eq!(
            classify(200, &none, &json!({"meta": {"errors": []}}), &rules),
            Verdict::Success
        );
        let q = classify(403, &quota, &json!({"error": {"code": "QUOTA"}}), &rules);
        assert!(
            matches!(&q, Verdict::Fail(ConnectorError::Throttled { retry_after: Some(w), .. }) if w == "17"),
            "{q:?}"
        );
        assert!(matches!(
            classify(
                400,
                &none,
                &json!({"error": {"code": "SESSION_EXPIRED"}}),
                &rules
            ),
            Verdict::Refresh(_)
        ));
        let m = classify(200, &maint, &Value::Null, &rules);
        assert!(
            matches!(&m, Verdict::Fail(e) if e.class() == ErrorClass::Server),
            "{m:?}"
        );
        for (status, class) in [
            (408, ErrorClass::Timeout),
            (503, ErrorClass::Server),
            (404, ErrorClass::Client),
            (302, ErrorClass::Client),
            (429, ErrorClass::RateLimit),
        ] {
            match classify(status, &none, &Value::Null, &[]) {
                Verdict::Fail(e) => assert_eq!(e.class(), class, "{status}"),
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(401, &none, &Value::Null, &[]),
            Verdict::Refresh(_)
        ));
    }
}
