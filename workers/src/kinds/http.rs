//! `http`: one HTTP request, classified by the default mapping of the retry rules (2xx
//! completes; 401 auth; 429 rate limit with its `Retry-After`; 5xx server; other 4xx and
//! any 3xx client, since redirects are never followed; timeouts and connection errors
//! timeout). Args (CONTRACT.md): `{"url", "method" (default POST), "headers": {…},
//! "body": <JSON value or string>, "timeout_ms" (default 15000)}`.
//!
//! Header values are secrets (`Authorization`, API keys): at enqueue they are sealed with the
//! master key ([`crate::secrets`], the header's name as associated data), so the stored row
//! holds `hk1:…` and every surface shows `"<redacted>"`; the handler opens them when it sends
//! the request. A value that is not sealed (a job written straight to the store) is sent as is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Deserialize;

use super::{ArgsError, BoxFuture, Handler, HttpArgsError, JobFailure};
use crate::error_class::ErrorClass;
use crate::job::ClaimedJob;
use crate::response_excerpt::read_excerpt;
use crate::secrets::Keyring;
use crate::targets::{self, TargetPolicy};
use crate::transport_failure::transport_failure;

/// How much of a failed response's body is read and kept in the attempt history (a
/// successful response's body is not read at all).
const EXCERPT_BYTES: usize = 512;

/// The arguments of an `http` job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// Absolute http(s) URL.
    pub url: String,
    /// HTTP method, default POST.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body: a string is sent as is, any other JSON value as JSON.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Whole-request timeout in milliseconds, default 15000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_timeout_ms() -> u64 {
    15_000
}

impl HttpArgs {
    /// Parses and checks the arguments; the error says which field is wrong.
    pub fn parse(args: &serde_json::Value) -> Result<HttpArgs, ArgsError> {
        let parsed: HttpArgs =
            serde_json::from_value(args.clone()).map_err(|e| ArgsError::shape("http", &e))?;
        let url = reqwest::Url::parse(&parsed.url).map_err(|reason| HttpArgsError::Url {
            url: parsed.url.clone(),
            reason,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpArgsError::Scheme(parsed.url).into());
        }
        reqwest::Method::from_bytes(parsed.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| HttpArgsError::Method(parsed.method.clone()))?;
        for (name, value) in &parsed.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpArgsError::HeaderName(name.clone()))?;
            HeaderValue::from_str(value).map_err(|_| HttpArgsError::HeaderValue(name.clone()))?;
        }
        if parsed.timeout_ms == 0 || parsed.timeout_ms > 3_600_000 {
            return Err(HttpArgsError::Timeout.into());
        }
        Ok(parsed)
    }
}

/// What every surface shows instead of a header value.
pub const REDACTED: &str = "<redacted>";

/// The associated data of a sealed header value: the header it belongs to, so a sealed value
/// moved to another header does not open.
fn header_aad(name: &str) -> String {
    format!("hangar_jobs.args.headers:{}", name.to_ascii_lowercase())
}

/// Replaces every header value of `http` args by [`REDACTED`].
pub(crate) fn redact_headers(args: &mut serde_json::Value) {
    if let Some(headers) = args
        .get_mut("headers")
        .and_then(serde_json::Value::as_object_mut)
    {
        for value in headers.values_mut() {
            *value = serde_json::Value::String(REDACTED.to_owned());
        }
    }
}

/// The `http` kind. Redirects are not followed.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    client: reqwest::Client,
    targets: TargetPolicy,
    /// Seals header values at enqueue and opens them at run time; without it a job with
    /// headers is refused at enqueue.
    keyring: Option<Arc<Keyring>>,
}

impl HttpHandler {
    /// A handler with its own connection pool that reaches public addresses only.
    pub fn new() -> Self {
        Self::with_targets(TargetPolicy::default())
    }

    /// A handler whose requests may reach what `targets` allows.
    pub fn with_targets(targets: TargetPolicy) -> Self {
        let client = targets::client_builder(&targets)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        HttpHandler {
            client,
            targets,
            keyring: None,
        }
    }

    /// The same handler, sealing and opening header values with `keyring`.
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }
}

/// The value of header `name` to send: opened when sealed, else as stored.
fn open_header(keyring: Option<&Keyring>, name: &str, value: &str) -> Result<String, JobFailure> {
    if Keyring::key_id_of(value).is_none() {
        return Ok(value.to_owned());
    }
    let internal = |message: String| JobFailure::new(ErrorClass::Internal, message);
    let keyring = keyring.ok_or_else(|| {
        internal(format!(
            "http header '{name}' is sealed and this process holds no master key"
        ))
    })?;
    let opened = keyring
        .open(value, &header_aad(name), &format!("http header '{name}'"))
        .map_err(|e| internal(e.to_string()))?;
    String::from_utf8(opened).map_err(|_| {
        internal(format!(
            "http header '{name}': the sealed value is not text"
        ))
    })
}

impl Default for HttpHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for HttpHandler {
    fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        HttpArgs::parse(args).map(|_| ())
    }

    fn prepare(&self, mut args: serde_json::Value) -> Result<serde_json::Value, ArgsError> {
        let parsed = HttpArgs::parse(&args)?;
        if parsed.headers.is_empty() {
            return Ok(args);
        }
        let Some(keyring) = &self.keyring else {
            return Err(HttpArgsError::NoMasterKey.into());
        };
        if let Some(headers) = args
            .get_mut("headers")
            .and_then(serde_json::Value::as_object_mut)
        {
            for (name, value) in headers.iter_mut() {
                let plain = value.as_str().unwrap_or_default();
                *value =
                    serde_json::Value::String(keyring.seal(plain.as_bytes(), &header_aad(name)));
            }
        }
        Ok(args)
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let client = self.client.clone();
        let policy = self.targets.clone();
        let keyring = self.keyring.clone();
        Box::pin(async move {
            let args = HttpArgs::parse(&job.args)
                .map_err(|e| JobFailure::new(ErrorClass::Client, e.to_string()))?;
            if let Ok(url) = reqwest::Url::parse(&args.url) {
                targets::check_literal(&policy, &url).map_err(|refused| {
                    JobFailure::new(ErrorClass::Client, format!("refused: {refused}"))
                })?;
            }
            let method = reqwest::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
                .unwrap_or(reqwest::Method::POST);
            let mut request = client
                .request(method, &args.url)
                .timeout(Duration::from_millis(args.timeout_ms));
            for (name, value) in &args.headers {
                let value = open_header(keyring.as_deref(), name, value)?;
                request = request.header(name, value);
            }
            request = match &args.body {
                None | Some(serde_json::Value::Null) => request,
                Some(serde_json::Value::String(text)) => request.body(text.clone()),
                Some(value) => request
                    .header(CONTENT_TYPE, "application/json")
                    .body(value.to_string()),
            };
            let response = request.send().await.map_err(transport_failure)?;
            let status = response.status().as_u16();
            let Some(class) = ErrorClass::from_http_status(status) else {
                return Ok(());
            };
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let excerpt = read_excerpt(response, EXCERPT_BYTES).await;
            Err(JobFailure {
                class,
                message: format!("HTTP {status}: {excerpt}"),
                http_status: Some(status),
                retry_after,
            })
        })
    }
}
