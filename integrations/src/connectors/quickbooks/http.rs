//! One QuickBooks call: bearer token, JSON, classified by [`super::faults`]; a request that
//! got no answer by the engine's one transport classification. The token never reaches a
//! message (errors are stripped of the URL and carry no header).

use hangar_workers::transport_failure::transport_failure;
use serde_json::Value;

use super::faults;
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn get(
    cx: &CallContext,
    url: &str,
    query: &[(&str, String)],
) -> Result<Value, ConnectorError> {
    let request = cx
        .http
        .get(url)
        .query(&[("minorversion", "75")])
        .query(query)
        .bearer_auth(&cx.token.token)
        .header("Accept", "application/json")
        .timeout(TIMEOUT);
    answer(request).await
}

pub(super) async fn post(
    cx: &CallContext,
    url: &str,
    query: &[(&str, String)],
    body: &Value,
) -> Result<Value, ConnectorError> {
    let request = cx
        .http
        .post(url)
        .query(&[("minorversion", "75")])
        .query(query)
        .bearer_auth(&cx.token.token)
        .header("Accept", "application/json")
        .json(body)
        .timeout(TIMEOUT);
    answer(request).await
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
    let response = request
        .send()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e)))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e)))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) && body.is_object() && body.get("Fault").is_none() {
        return Ok(body);
    }
    if (200..300).contains(&status) && !body.is_object() {
        return Err(faults::classify(502, None, &body));
    }
    Err(faults::classify(status, retry_after, &body))
}
