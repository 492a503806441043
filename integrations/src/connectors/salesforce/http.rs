//! One Salesforce call: the OAuth access token as a bearer token, JSON, classified by
//! [`super::errors`]; every answer's `Sforce-Limit-Info` is recorded in [`super::limits`], and
//! a call is not made once the org's daily budget is seen spent. The token never reaches a
//! message.

use hangar_workers::transport_failure::transport_failure;
use reqwest::Method;
use serde_json::Value;

use super::errors;
use super::limits::Usages;
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One call; `org` is the instance URL (the key of the org's usage).
pub(super) async fn call(
    cx: &CallContext,
    usages: &Usages,
    org: &str,
    method: Method,
    url: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<(u16, Value), ConnectorError> {
    if let Some(usage) = usages.of(org)
        && usage.used >= usage.max
    {
        return Err(ConnectorError::Throttled {
            message: format!(
                "Salesforce's daily API budget is spent ({}/{} at the last answer)",
                usage.used, usage.max
            ),
            retry_after: Some(errors::BUDGET_WAIT_SECS.to_string()),
        });
    }
    let mut request = cx
        .http
        .request(method, url)
        .query(query)
        .bearer_auth(&cx.token.token)
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
    if let Some(info) = response
        .headers()
        .get("Sforce-Limit-Info")
        .and_then(|v| v.to_str().ok())
    {
        usages.record(org, info);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let body: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    match status {
        200..=299 => Ok((status, body)),
        _ => Err(errors::classify(status, retry_after, &body)),
    }
}
