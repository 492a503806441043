//! One call to a provider's OAuth 2.0 token endpoint: the refresh-token grant (RFC 6749
//! §6), with the provider's client authentication (HTTP Basic for QuickBooks and most
//! others, the request body for Salesforce), over our own reqwest client (so the target
//! policy and "no redirects" apply). The answer is classified here: 5xx, 408, 429 (with its
//! `Retry-After`), timeouts and connection failures are [`TokenCallError::Transient`] (the
//! retry table); any other refusal (`invalid_grant`, `invalid_client`, a 401, a token URL
//! the target policy refuses) is [`TokenCallError::Refused`]: the stored credential cannot
//! get tokens any more, an admin must re-authorise. Nothing here logs a token.
//!
//! Plain reqwest rather than the `oauth2` crate: oauth2 5 would bring a second `thiserror`
//! (1.x) and `rand` 0.8's ChaCha (`cargo tree -d`), and it keeps only the body of a refusal,
//! while the status decides whether a refusal is transient; the grant itself is one form
//! POST.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use serde::Deserialize;

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

/// Whether the client authenticates with HTTP Basic (RFC 6749 §2.3.1, the default) or
/// with `client_id`/`client_secret` in the form (Salesforce).
fn basic_auth(provider: Provider) -> bool {
    !matches!(provider, Provider::Salesforce)
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 §2.3.1 encodes the client id
/// and secret so before joining them for Basic authentication).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A successful answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A refusal (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
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

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
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
    let url =
        reqwest::Url::parse(url).map_err(|e| TokenCallError::Refused(format!("token_url: {e}")))?;
    let client_id = oauth.client_id.clone().unwrap_or_default();
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.clone()),
    ];
    let mut request = http.post(url).header("accept", "application/json");
    if basic_auth(provider) {
        request = request.basic_auth(
            form_encode(&client_id),
            oauth.client_secret.as_deref().map(form_encode),
        );
    } else {
        form.push(("client_id", client_id));
        if let Some(secret) = &oauth.client_secret {
            form.push(("client_secret", secret.clone()));
        }
    }
    let call = async {
        let response = request.form(&form).send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, retry_after, body))
    };
    let (status, retry_after, body) = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            return Err(transient(
                format!(
                    "the token endpoint did not answer within {} ms",
                    timeout.as_millis()
                ),
                ErrorClass::Timeout,
            ));
        }
        Ok(Err(error)) => return Err(transport(error)),
        Ok(Ok(answer)) => answer,
    };
    classify(status, retry_after, &body)
}

/// A request that got no answer, by the engine's one classification: a target the policy
/// refuses (or an unbuildable request) cannot get tokens; the rest is transient.
fn transport(error: reqwest::Error) -> TokenCallError {
    let failure = hangar_workers::transport_failure::transport_failure(error);
    match failure.class {
        ErrorClass::Client => TokenCallError::Refused(format!("token_url: {}", failure.message)),
        class => TokenCallError::Transient {
            reason: format!("the token endpoint: {}", failure.message),
            class,
            retry_after: None,
        },
    }
}

/// The tokens of an answer, or why there are none: by the status first (429, 408, 5xx are
/// transient whatever the body), then by the OAuth error code.
fn classify(
    status: u16,
    retry_after: Option<String>,
    body: &[u8],
) -> Result<Tokens, TokenCallError> {
    match status {
        200 => {
            let answer: TokenAnswer = serde_json::from_slice(body).map_err(|_| {
                transient(
                    "the token endpoint's answer is not a token response",
                    ErrorClass::Server,
                )
            })?;
            Ok(Tokens {
                access_token: answer.access_token,
                refresh_token: answer.refresh_token,
                expires_at: answer
                    .expires_in
                    .map(|s| Utc::now() + chrono::Duration::seconds(s)),
            })
        }
        429 => Err(TokenCallError::Transient {
            reason: "the token endpoint answered 429 (rate limited)".to_owned(),
            class: ErrorClass::RateLimit,
            retry_after,
        }),
        408 | 500.. => Err(transient(
            format!("the token endpoint answered HTTP {status}"),
            ErrorClass::Server,
        )),
        _ => {
            let mut reason = format!("HTTP {status}");
            if let Ok(error) = serde_json::from_slice::<ErrorAnswer>(body) {
                reason += &format!(" {}", error.error.chars().take(100).collect::<String>());
                if let Some(description) = error.error_description {
                    reason += &format!(": {}", description.chars().take(200).collect::<String>());
                }
            }
            Err(TokenCallError::Refused(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_then_oauth_error() {
        let ok = classify(200, None, br#"{"access_token":"a","expires_in":3600}"#).unwrap();
        assert_eq!(ok.access_token, "a");
        assert!(
            ok.refresh_token.is_none(),
            "omitted: the caller keeps the old one"
        );
        let refused = classify(400, None, br#"{"error":"invalid_grant"}"#).unwrap_err();
        assert_eq!(
            refused,
            TokenCallError::Refused("HTTP 400 invalid_grant".to_owned())
        );
        assert!(matches!(
            classify(401, None, b"nope"),
            Err(TokenCallError::Refused(_))
        ));
        for status in [500, 502, 503, 408] {
            let error = classify(status, None, br#"{"error":"temporarily_unavailable"}"#);
            assert!(
                matches!(
                    error,
                    Err(TokenCallError::Transient {
                        class: ErrorClass::Server,
                        ..
                    })
                ),
                "{status}"
            );
        }
        let limited = classify(429, Some("7".to_owned()), b"").unwrap_err();
        assert_eq!(
            limited,
            TokenCallError::Transient {
                reason: "the token endpoint answered 429 (rate limited)".to_owned(),
                class: ErrorClass::RateLimit,
                retry_after: Some("7".to_owned()),
            }
        );
        assert!(matches!(
            classify(200, None, b"<html>"),
            Err(TokenCallError::Transient { .. })
        ));
        assert_eq!(form_encode("a b/c:d"), "a+b%2Fc%3Ad");
    }
}
