//! One call to the provider as the manifest describes it ([`exchange`]): the request built
//! from a [`Request`] (its templates rendered, values put in a path percent-encoded), the
//! authentication applied, the answer decoded and judged by the response rules; a "refresh"
//! verdict gets a new token and retries once (a static credential has none to get: it is
//! handed to the engine as unauthorized, which refreshes or marks it for re-authorisation).

use std::time::Duration;

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::transport_failure::transport_failure;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::auth::{self, Secrets, Sessions};
use super::decode::decode;
use super::model::{BodyFormat, Format, Manifest, Request};
use super::response::{Verdict, classify};
use super::select;
use super::template::{Ref, render};
use crate::sync::connector::{CallContext, ConnectorError};

/// How long one call may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What a call needs: the engine's context, the manifest, the effective base URL, the
/// credential's secrets and the connector's tokens.
pub struct Env<'a> {
    pub cx: &'a CallContext,
    pub manifest: &'a Manifest,
    pub base: String,
    pub secrets: Secrets,
    pub sessions: &'a Sessions,
    /// Which manifest (and base URL) a token was got under.
    pub fingerprint: u64,
}

/// A decoded answer.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Value,
}

/// `base` and `path` joined (the base's own path kept).
pub fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

impl Env<'_> {
    /// `text` with its references resolved (a record's values as they are).
    pub fn render(
        &self,
        text: &str,
        record: Option<&Value>,
        external_id: Option<&str>,
    ) -> Result<String, String> {
        render(text, &|r| self.resolve(r, record, external_id))
    }

    fn resolve(
        &self,
        r: Ref<'_>,
        record: Option<&Value>,
        external_id: Option<&str>,
    ) -> Option<String> {
        match r {
            Ref::Secret(name) => self.secrets.get(name).map(str::to_owned),
            Ref::Setting(name) => select::text(&self.cx.integration.settings, name),
            Ref::Record(path) => record.and_then(|v| select::text(v, path)),
            Ref::ExternalId => external_id.map(str::to_owned),
        }
    }

    /// The URL of `path` below the base, its references percent-encoded.
    pub fn url(
        &self,
        path: &str,
        record: Option<&Value>,
        external_id: Option<&str>,
    ) -> Result<String, String> {
        let rendered = render(path, &|r| {
            self.resolve(r, record, external_id).map(|v| encode(&v))
        })?;
        Ok(join(&self.base, &rendered))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A manifest problem found while calling (a reference the credential lacks): no retry.
pub fn config_failure(message: String) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Client,
        format!("manifest: {message}"),
    ))
}

/// What one call sends beyond the [`Request`]'s own.
#[derive(Default)]
pub struct Extra<'a> {
    /// An absolute URL instead of the request's path (a `Link` header's next page).
    pub url: Option<String>,
    /// Query parameters (cursor, page).
    pub query: Vec<(String, String)>,
    /// A header (the idempotency key of a write).
    pub headers: Vec<(String, String)>,
    /// The body of a write.
    pub body: Option<Value>,
    /// The outbound record's data, for `{{record.…}}`.
    pub record: Option<&'a Value>,
    /// The provider's id, for `{{external_id}}`.
    pub external_id: Option<&'a str>,
}

/// Makes `request` with `extra`, decodes the answer as `format` and judges it.
pub async fn exchange(
    env: &Env<'_>,
    request: &Request,
    extra: &Extra<'_>,
    format: Format,
) -> Result<Answer, ConnectorError> {
    let mut refreshed = false;
    loop {
        let url = match &extra.url {
            Some(url) => url.clone(),
            None => env
                .url(&request.path, extra.record, extra.external_id)
                .map_err(config_failure)?,
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| config_failure(format!("method {}", request.method)))?;
        let mut builder = env.cx.http.request(method, url).timeout(TIMEOUT);
        if extra.url.is_none() {
            let mut query = Vec::new();
            for (k, v) in &request.query {
                query.push((
                    k.clone(),
                    env.render(v, extra.record, extra.external_id)
                        .map_err(config_failure)?,
                ));
            }
            builder = builder.query(&query);
        }
        builder = builder.query(&extra.query);
        for (k, v) in &request.headers {
            builder = builder.header(
                k.as_str(),
                env.render(v, extra.record, extra.external_id)
                    .map_err(config_failure)?,
            );
        }
        for (k, v) in &extra.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &extra.body {
            builder = match request.body {
                BodyFormat::Json => builder.json(body),
                BodyFormat::Form => builder.form(&form_fields(body)),
            };
        }
        let builder = auth::apply(env, builder).await?;
        let response = builder
            .send()
            .await
            .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
        let decoded = decode(format, &bytes);
        let judged = judged(format, &headers, &bytes, &decoded);
        match classify(status, &headers, &judged, &env.manifest.rules) {
            Verdict::Success => {
                let body = decoded.map_err(|e| {
                    ConnectorError::Failed(JobFailure {
                        class: ErrorClass::Server,
                        message: format!("the answer (HTTP {status}) does not decode: {e}"),
                        http_status: Some(status),
                        retry_after: None,
                    })
                })?;
                return Ok(Answer { headers, body });
            }
            Verdict::Refresh(message) if !refreshed && auth::refreshable(&env.manifest.auth) => {
                tracing::info!(integration = %env.cx.integration.id, %message, "manifest: new session, retrying once");
                env.sessions.forget(&env.cx.integration.id);
                refreshed = true;
            }
            Verdict::Refresh(message) => {
                env.sessions.forget(&env.cx.integration.id);
                return Err(ConnectorError::Unauthorized(message));
            }
            Verdict::Fail(e) => return Err(e),
        }
    }
}

/// What the response rules read of an answer: its decoded body; but a JSON answer (by its
/// `Content-Type`) of a stream decoded otherwise is read as JSON, since a CSV decoder takes
/// any text (a vendor's `{"errors": […]}` would be a header line without rows, and its
/// rules' paths would never match), and a body that does not decode is tried as JSON.
fn judged(
    format: Format,
    headers: &HeaderMap,
    bytes: &[u8],
    decoded: &Result<Value, String>,
) -> Value {
    let json_answer = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    match decoded {
        Ok(v) if format == Format::Json || !json_answer => v.clone(),
        _ => serde_json::from_slice(bytes).unwrap_or(Value::Null),
    }
}

fn form_fields(body: &Value) -> Vec<(String, String)> {
    body.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}
