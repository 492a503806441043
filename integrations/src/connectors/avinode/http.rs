//! One Avinode call: `Authorization: Bearer <the API connection's authentication token>`,
//! `X-Avinode-ApiToken` (the application's token), `X-Avinode-SentTimestamp` (now, ISO 8601
//! UTC: Avinode refuses a call without it), `X-Avinode-ApiVersion`, `X-Avinode-Product`
//! and, for a marketing agent acting for an operator, `X-Avinode-ActAsAccount`. The answer
//! is classified by [`super::errors`] (a 200 with `meta.errors[]` is a failure). No token
//! reaches a message (errors are stripped of the URL and carry no header).

use chrono::{SecondsFormat, Utc};
use hangar_workers::transport_failure::transport_failure;
use reqwest::Method;
use serde_json::Value;

use super::errors;
use super::settings::Settings;
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The credential's two tokens: `"<api token>:<authentication token>"` (an OAuth access
/// token, or a key without `:`, is the bearer alone).
fn tokens(credential: &str) -> (Option<&str>, &str) {
    match credential.split_once(':') {
        Some((api, bearer)) if !api.is_empty() && !bearer.is_empty() => (Some(api), bearer),
        _ => (None, credential),
    }
}

/// One call; the answer's `data` (or the whole body when it has none).
pub(super) async fn call(
    cx: &CallContext,
    settings: &Settings,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, ConnectorError> {
    let (api_token, bearer) = tokens(&cx.token.token);
    let mut request = cx
        .http
        .request(method, url)
        .bearer_auth(bearer)
        .header(
            "X-Avinode-SentTimestamp",
            Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .header("X-Avinode-ApiVersion", &settings.api_version)
        .header("X-Avinode-Product", &settings.product)
        .header("Accept", "application/json")
        .timeout(TIMEOUT);
    if let Some(api_token) = api_token {
        request = request.header("X-Avinode-ApiToken", api_token);
    }
    if let Some(account) = &settings.act_as_account {
        request = request.header("X-Avinode-ActAsAccount", account);
    }
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
    errors::classify(status, retry_after, &body)?;
    Ok(match body.get("data") {
        Some(data) if !data.is_null() => data.clone(),
        _ => body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_holds_the_api_token_and_the_bearer() {
        assert_eq!(
            tokens("app-token:eyJhbGciOi.x.y"),
            (Some("app-token"), "eyJhbGciOi.x.y")
        );
        assert_eq!(tokens("eyJhbGciOi.x.y"), (None, "eyJhbGciOi.x.y"));
        assert_eq!(tokens(":b"), (None, ":b"));
    }
}
