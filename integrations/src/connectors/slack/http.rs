//! One Slack call: a JSON `POST` to the Web API (the bot token as a bearer) or to an incoming
//! webhook URL (the URL is the credential), classified by [`super::errors`]. Neither the URL
//! nor the token reaches a message: transport errors are stripped of the URL, and a webhook
//! URL whose host is a literal address is checked against the target policy before the call
//! (names are checked by the client's resolver).

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::targets::check_literal;
use hangar_workers::transport_failure::transport_failure;
use serde_json::Value;

use super::errors;
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest answer read (Slack's are a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// Posts `body` to `chat.postMessage` at `url` with the bot token; the answer's JSON.
pub(super) async fn post_message(
    cx: &CallContext,
    url: &str,
    body: &Value,
) -> Result<Value, ConnectorError> {
    let request = cx
        .http
        .post(url)
        .bearer_auth(&cx.token.token)
        .json(body)
        .timeout(TIMEOUT);
    let (status, retry_after, text) = send(request).await?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    errors::web_api(status, retry_after, &answer)?;
    Ok(answer)
}

/// Posts `body` to the incoming webhook URL (the token).
pub(super) async fn post_webhook(cx: &CallContext, body: &Value) -> Result<(), ConnectorError> {
    let url = reqwest::Url::parse(&cx.token.token).map_err(|_| {
        ConnectorError::Failed(JobFailure::new(
            ErrorClass::Client,
            "credentials.api_key: not a webhook URL",
        ))
    })?;
    check_literal(&cx.targets, &url).map_err(|refused| {
        ConnectorError::Failed(JobFailure::new(
            ErrorClass::Client,
            format!("the webhook URL is refused: {refused}"),
        ))
    })?;
    let request = cx.http.post(url).json(body).timeout(TIMEOUT);
    let (status, retry_after, text) = send(request).await?;
    errors::webhook(status, retry_after, &text)
}

async fn send(
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<String>, String), ConnectorError> {
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
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ANSWER)]).into_owned();
    Ok((status, retry_after, text))
}
