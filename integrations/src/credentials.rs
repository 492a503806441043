//! An integration's credential: an API key or an OAuth 2.0 connection (access token, refresh
//! token, expiry, token endpoint, client id and secret, scopes). Write-only: it is sealed
//! with the master key before it is stored ([`seal`]), bound to its row (the associated data
//! names the integration id, so a ciphertext copied to another row does not open), opened by
//! the worker when a job runs ([`open`]), and never returned, logged or put in a job's
//! arguments. `Debug` prints no secret.

use chrono::{DateTime, Utc};
use hangar_workers::secrets::{Keyring, SecretError};
use serde::{Deserialize, Serialize};

/// A credential as an admin gives it (`PUT …/integrations/{provider}`, `credentials`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Credential {
    /// An API key (ForeFlight, maintenance systems, most others).
    #[serde(rename = "api_key")]
    ApiKey(String),
    /// An OAuth 2.0 connection (QuickBooks, Stripe Connect, Salesforce).
    #[serde(rename = "oauth")]
    OAuth(OAuthCredential),
    /// Named secrets (`{"secrets": {"username": …, "password": …}}`), for a manifest
    /// connector whose manifest references several (`{{secret.NAME}}`). Stored under the
    /// `api_key` kind: static secrets, nothing to refresh.
    #[serde(rename = "secrets")]
    Secrets(SecretFields),
}

/// Named secrets, with their JSON form kept as the token calls carry (the manifest
/// connector reads the fields back from it).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "std::collections::BTreeMap<String, String>")]
#[serde(into = "std::collections::BTreeMap<String, String>")]
pub struct SecretFields {
    fields: std::collections::BTreeMap<String, String>,
    json: String,
}

impl From<std::collections::BTreeMap<String, String>> for SecretFields {
    fn from(fields: std::collections::BTreeMap<String, String>) -> Self {
        // A map of strings always serializes.
        let json = serde_json::to_string(&fields).unwrap_or_default();
        SecretFields { fields, json }
    }
}

impl From<SecretFields> for std::collections::BTreeMap<String, String> {
    fn from(s: SecretFields) -> Self {
        s.fields
    }
}

impl SecretFields {
    /// The names and values.
    pub fn fields(&self) -> &std::collections::BTreeMap<String, String> {
        &self.fields
    }
}

/// An OAuth 2.0 connection's tokens and client.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthCredential {
    /// The bearer token of API calls.
    pub access_token: String,
    /// The token that gets the next access token (absent for providers whose tokens do not
    /// expire).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires (`None`: it does not).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The provider's token endpoint (the provider's own when absent); obeys the target
    /// policy.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The OAuth client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Secrets(s) => f
                .debug_map()
                .entries(s.fields.keys().map(|k| (k, "<redacted>")))
                .finish(),
            Credential::OAuth(o) => f
                .debug_struct("OAuth")
                .field("access_token", &"<redacted>")
                .field(
                    "refresh_token",
                    &o.refresh_token.as_ref().map(|_| "<redacted>"),
                )
                .field("expires_at", &o.expires_at)
                .field("token_url", &o.token_url)
                .field("client_id", &o.client_id)
                .field(
                    "client_secret",
                    &o.client_secret.as_ref().map(|_| "<redacted>"),
                )
                .field("scopes", &o.scopes)
                .finish(),
        }
    }
}

impl std::fmt::Debug for OAuthCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Credential::OAuth(self.clone()), f)
    }
}

/// Which kind of credential an integration has (shown; the credential itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// An API key.
    ApiKey,
    /// An OAuth 2.0 connection.
    Oauth,
}

impl Credential {
    /// Its kind.
    pub fn kind(&self) -> AuthKind {
        match self {
            Credential::ApiKey(_) | Credential::Secrets(_) => AuthKind::ApiKey,
            Credential::OAuth(_) => AuthKind::Oauth,
        }
    }

    /// The token API calls carry: the API key, the OAuth access token, or the named
    /// secrets as a JSON object.
    pub fn bearer(&self) -> &str {
        match self {
            Credential::ApiKey(key) => key,
            Credential::Secrets(s) => &s.json,
            Credential::OAuth(o) => &o.access_token,
        }
    }

    /// When the access token expires (an API key does not).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Credential::ApiKey(_) | Credential::Secrets(_) => None,
            Credential::OAuth(o) => o.expires_at,
        }
    }

    /// Every secret it holds, for checks that none leaks (tests, log scrubbing).
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Credential::ApiKey(key) => vec![key.as_str()],
            Credential::Secrets(s) => s.fields.values().map(String::as_str).collect(),
            Credential::OAuth(o) => [
                Some(o.access_token.as_str()),
                o.refresh_token.as_deref(),
                o.client_secret.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

impl AuthKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::ApiKey => "api_key",
            AuthKind::Oauth => "oauth",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<AuthKind> {
        match s {
            "api_key" => Some(AuthKind::ApiKey),
            "oauth" => Some(AuthKind::Oauth),
            _ => None,
        }
    }
}

/// The associated data a credential is sealed with: the row it belongs to.
fn aad(integration_id: &str) -> String {
    format!("hangar_integrations:{integration_id}")
}

/// Seals `credential` for the integration `integration_id`; returns the sealed value and the
/// id of the key that sealed it.
pub fn seal(keyring: &Keyring, integration_id: &str, credential: &Credential) -> (String, String) {
    // Serializing a struct of strings cannot fail.
    let json = serde_json::to_vec(credential).unwrap_or_default();
    let sealed = keyring.seal(&json, &aad(integration_id));
    (sealed, keyring.current().id().to_owned())
}

/// Opens the credential sealed for `integration_id`.
pub fn open(
    keyring: &Keyring,
    integration_id: &str,
    sealed: &str,
) -> Result<Credential, SecretError> {
    let what = format!("the credential of integration {integration_id}");
    let plain = keyring.open(sealed, &aad(integration_id), &what)?;
    serde_json::from_slice(&plain).map_err(|_| SecretError::Corrupt { what })
}

/// Why the credentials could not be re-sealed.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// A credential did not open with the current keys.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::IntegrationStoreError),
}

/// Re-seals every integration's credential with `new` (`hangar keys rotate`), in one
/// transaction; returns how many.
pub async fn reseal_all(
    rows: &crate::store::IntegrationRows,
    keyring: &Keyring,
    new: &hangar_workers::secrets::MasterKey,
) -> Result<u64, ResealError> {
    let target = Keyring::new(new.clone());
    rows.reseal_credentials(|id, sealed| -> Result<(String, String), ResealError> {
        let what = format!("the credential of integration {id}");
        let plain = keyring.open(sealed, &aad(id), &what)?;
        Ok((target.seal(&plain, &aad(id)), new.id().to_owned()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_workers::secrets::MasterKey;

    #[test]
    fn a_credential_opens_on_its_own_row_only_and_debug_shows_no_secret() {
        let ring = Keyring::new(MasterKey::generate());
        let credential = Credential::OAuth(OAuthCredential {
            access_token: "at-secret".to_owned(),
            refresh_token: Some("rt-secret".to_owned()),
            expires_at: None,
            token_url: None,
            client_id: Some("client".to_owned()),
            client_secret: Some("cs-secret".to_owned()),
            scopes: vec![],
        });
        let (sealed, key_id) = seal(&ring, "int_a", &credential);
        assert_eq!(key_id, ring.current().id());
        assert!(!sealed.contains("secret"));
        assert_eq!(open(&ring, "int_a", &sealed).unwrap(), credential);
        assert!(matches!(
            open(&ring, "int_b", &sealed),
            Err(SecretError::Corrupt { .. })
        ));
        let shown = format!("{credential:?}");
        assert!(!shown.contains("-secret"), "{shown}");
        let parsed: Credential = serde_json::from_str(r#"{"api_key": "k"}"#).unwrap();
        assert_eq!(parsed.kind(), AuthKind::ApiKey);
    }
}
