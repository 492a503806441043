//! One Stripe call: the platform's secret key as a bearer token, `Stripe-Account` naming the
//! connected account, form-encoded writes with an `Idempotency-Key`, classified by
//! [`super::errors`]. The key never reaches a message (errors are stripped of the URL and
//! carry no header).

use hangar_workers::transport_failure::transport_failure;
use serde_json::Value;

use super::errors;
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn get(
    cx: &CallContext,
    account: &str,
    url: &str,
    query: &[(&str, String)],
) -> Result<Value, ConnectorError> {
    let request = cx
        .http
        .get(url)
        .query(query)
        .bearer_auth(&cx.token.token)
        .header("Stripe-Account", account)
        .timeout(TIMEOUT);
    answer(request).await
}

pub(super) async fn post_form(
    cx: &CallContext,
    account: &str,
    url: &str,
    form: &[(String, String)],
    idempotency_key: &str,
) -> Result<Value, ConnectorError> {
    let request = cx
        .http
        .post(url)
        .bearer_auth(&cx.token.token)
        .header("Stripe-Account", account)
        .header("Idempotency-Key", idempotency_key)
        .form(form)
        .timeout(TIMEOUT);
    answer(request).await
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
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
        200..=299 if body.is_object() && body.get("error").is_none() => Ok(body),
        200..=299 => Err(errors::classify(502, None, &body)),
        _ => Err(errors::classify(status, retry_after, &body)),
    }
}
