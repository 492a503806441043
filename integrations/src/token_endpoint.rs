//! One call to a provider's OAuth 2.0 token endpoint: the refresh-token grant, with the
//! provider's client authentication (HTTP Basic for QuickBooks and most others, the request
//! body for Salesforce), through the `oauth2` crate over our own reqwest client (so the
//! target policy and "no redirects" apply). The answer is classified here: 5xx, 429,
//! timeouts and connection failures are [`TokenCallError::Transient`] (the retry table);
//! any other refusal (`invalid_grant`, `invalid_client`, a 401, a token URL the target
//! policy refuses) is [`TokenCallError::Refused`]: the stored credential cannot get tokens
//! any more, an admin must re-authorise. Nothing here logs a token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, HttpClientError, HttpRequest, HttpResponse,
    RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
};

use crate::credentials::OAuthCredential;
use crate::provider::Provider;

/// The provider's own token endpoint, when it has a public one (PROVIDERS.md).
pub fn default_token_url(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Quickbooks => Some("https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"),
        Provider::Salesforce => Some("https://login.salesforce.com/services/oauth2/token"),
        Provider::Stripe => Some("https://connect.stripe.com/oauth/token"),
        _ => None,
    }
}

/// How the client authenticates to the token endpoint.
fn auth_type(provider: Provider) -> AuthType {
    match provider {
        Provider::Salesforce => AuthType::RequestBody,
        _ => AuthType::BasicAuth,
    }
}

/// New tokens from the endpoint.
pub struct Tokens {
    /// The new access token.
    pub access_token: String,
    /// A rotated refresh token (`None`: keep the old one).
    pub refresh_token: Option<String>,
    /// When the new access token expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why the call gave no tokens.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenCallError {
    /// Try again later: 5xx, 429, a timeout, no connection.
    #[error("{reason}")]
    Transient {
        /// What happened (never a token).
        reason: String,
        /// `timeout`, `rate_limit` or `server`.
        class: ErrorClass,
        /// The 429's `Retry-After`.
        retry_after: Option<String>,
    },
    /// The endpoint refused the credential for good (or cannot be used): re-authorise.
    #[error("{0}")]
    Refused(String),
}

fn transient(reason: impl Into<String>, class: ErrorClass) -> TokenCallError {
    TokenCallError::Transient {
        reason: reason.into(),
        class,
        retry_after: None,
    }
}

/// Refreshes `oauth` at the provider's token endpoint (or `oauth.token_url`), with
/// `http`, in at most `timeout`.
pub async fn refresh(
    http: &reqwest::Client,
    provider: Provider,
    oauth: &OAuthCredential,
    timeout: Duration,
) -> Result<Tokens, TokenCallError> {
    let Some(refresh_token) = &oauth.refresh_token else {
        return Err(TokenCallError::Refused(
            "the connection has no refresh token".to_owned(),
        ));
    };
    let Some(url) = oauth
        .token_url
        .as_deref()
        .or_else(|| default_token_url(provider))
    else {
        return Err(TokenCallError::Refused(format!(
            "no token endpoint is known for {provider}: give credentials.oauth.token_url"
        )));
    };
    let token_url = TokenUrl::new(url.to_owned())
        .map_err(|e| TokenCallError::Refused(format!("token_url: {e}")))?;
    let mut client = BasicClient::new(ClientId::new(oauth.client_id.clone().unwrap_or_default()))
        .set_token_uri(token_url)
        .set_auth_type(auth_type(provider));
    if let Some(secret) = &oauth.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
    }
    // The crate keeps only the body of a refusal; the status and Retry-After decide whether
    // it is transient, so the call records them on the way through.
    let recording = Recording {
        http,
        seen: Mutex::new(None),
    };
    let refresh_token = RefreshToken::new(refresh_token.clone());
    let request = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&recording);
    let answer = match tokio::time::timeout(timeout, request).await {
        Err(_) => {
            return Err(transient(
                format!(
                    "the token endpoint did not answer within {} ms",
                    timeout.as_millis()
                ),
                ErrorClass::Timeout,
            ));
        }
        Ok(answer) => answer,
    };
    let status = recording
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match answer {
        Ok(response) => Ok(Tokens {
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            expires_at: response
                .expires_in()
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
        }),
        Err(error) => Err(classify(error, status)),
    }
}

/// Our reqwest client, remembering the status and `Retry-After` of the answer.
struct Recording<'a> {
    http: &'a reqwest::Client,
    seen: Mutex<Option<(u16, Option<String>)>>,
}

impl<'c> AsyncHttpClient<'c> for Recording<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response: HttpResponse = self.http.call(request).await?;
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((response.status().as_u16(), retry_after));
            Ok(response)
        })
    }
}

type CallError = RequestTokenError<
    HttpClientError<reqwest::Error>,
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
>;

/// The class of a failed call: by the status first (429, 5xx are transient whatever the
/// body), then by the OAuth error code.
fn classify(error: CallError, status: Option<(u16, Option<String>)>) -> TokenCallError {
    if let Some((code, retry_after)) = &status {
        let code = *code;
        if code == 429 {
            return TokenCallError::Transient {
                reason: "the token endpoint answered 429 (rate limited)".to_owned(),
                class: ErrorClass::RateLimit,
                retry_after: retry_after.clone(),
            };
        }
        if code >= 500 || code == 408 {
            return transient(
                format!("the token endpoint answered HTTP {code}"),
                ErrorClass::Server,
            );
        }
    }
    match error {
        RequestTokenError::ServerResponse(response) => {
            let code = status.map_or(0, |(c, _)| c);
            let mut reason = format!("HTTP {code} {}", response.error());
            if let Some(description) = response.error_description() {
                reason += &format!(": {}", description.chars().take(200).collect::<String>());
            }
            TokenCallError::Refused(reason)
        }
        RequestTokenError::Request(HttpClientError::Reqwest(error)) => {
            if let Some(refused) = hangar_workers::targets::refusal(&error) {
                return TokenCallError::Refused(format!("token_url: {refused}"));
            }
            if error.is_timeout() {
                transient("the token endpoint timed out", ErrorClass::Timeout)
            } else {
                transient(
                    format!(
                        "the token endpoint could not be reached: {}",
                        error.without_url()
                    ),
                    ErrorClass::Server,
                )
            }
        }
        RequestTokenError::Request(other) => transient(
            format!("the token request failed: {other}"),
            ErrorClass::Server,
        ),
        RequestTokenError::Parse(_, _) => match status {
            Some((code, _)) if code != 200 => {
                TokenCallError::Refused(format!("the token endpoint answered HTTP {code}"))
            }
            _ => transient(
                "the token endpoint's answer is not a token response",
                ErrorClass::Server,
            ),
        },
        RequestTokenError::Other(message) => match status {
            Some((code, _)) if code != 200 => TokenCallError::Refused(format!(
                "the token endpoint answered HTTP {code}: {message}"
            )),
            _ => transient(message, ErrorClass::Server),
        },
    }
}
