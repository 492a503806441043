//! An integration as an admin configures it and as the API shows it: per workspace and
//! provider, whether it is enabled, the data types that move (only those), the frequency,
//! the provider settings (never a secret) and its [`Status`]. [`IntegrationRequest`] is the
//! body of `PUT …/integrations/{provider}`, validated here once ([`IntegrationRequest::check`])
//! with errors that name the field.
//!
//! Data types: a provider with a connector (the [`Connectors`] registry: QuickBooks `invoices`
//! out and `payments` in, Stripe, Salesforce, and whatever connector is registered) takes
//! exactly the data types its connector declares, and the integration's JSON shows the way
//! each moves (`directions`). A provider without a connector yet accepts any identifier of
//! lowercase letters, digits and `_` (the connector that comes for it narrows it).

use chrono::{DateTime, Utc};
use hangar_schedules::Spec;
use hangar_workers::targets::{self, TargetPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use crate::credentials::{AuthKind, Credential};
use crate::provider::Provider;
use crate::sync::connector::Connectors;

/// Where an integration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Enabled and its credential works: its schedules run.
    Active,
    /// Disabled by an admin: nothing runs.
    Disabled,
    /// The provider refused the credential for good (`invalid_grant`, a second 401): its
    /// schedules are stopped until an admin gives new credentials.
    NeedsReauth,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::NeedsReauth => "needs_reauth",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            "needs_reauth" => Some(Status::NeedsReauth),
            _ => None,
        }
    }
}

/// An integration as the API, the CLI and the jobs see it. No credential, ever: only its
/// kind, version and the access token's expiry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Integration {
    /// `int_` and 24 hex digits.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The provider id (`quickbooks`, `satcom_direct`, …).
    pub provider: String,
    /// Whether an admin enabled it.
    pub enabled: bool,
    /// `active`, `disabled` or `needs_reauth`.
    pub status: Status,
    /// Why it needs re-authorisation (the provider's answer), when it does.
    pub status_reason: Option<String>,
    /// The data types that move.
    pub data_types: Vec<String>,
    /// The way each of its data types moves, `in` or `out`, as the provider's connector
    /// declares it (a data type of a provider without a connector has none).
    pub directions: BTreeMap<String, String>,
    /// `realtime`, `hourly`, `every_6_hours`, `daily`, `manual` or a 6-field cron expression.
    pub frequency: String,
    /// Provider settings (`base_url`, `realm_id`, …); never a secret.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The kind of credential it has (`api_key`, `oauth`), none when none was given.
    pub auth: Option<AuthKind>,
    /// Bumped by every credential change and token refresh.
    pub credential_version: i64,
    /// When the OAuth access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// When the token was last refreshed.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its settings or state last changed.
    pub updated_at: DateTime<Utc>,
}

impl Integration {
    /// The provider, parsed.
    pub fn provider(&self) -> Option<Provider> {
        self.provider.parse().ok()
    }
}

/// The body of `PUT /api/v1/workspaces/{ws}/integrations/{provider}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationRequest {
    /// Whether it runs.
    pub enabled: bool,
    /// The data types that move (QuickBooks: `invoices`, `payments`).
    #[serde(default)]
    pub data_types: Vec<String>,
    /// `realtime`, `hourly`, `every_6_hours`, `daily`, `manual` or a 6-field cron expression.
    pub frequency: String,
    /// Provider settings; `base_url` replaces the provider's address (sandboxes,
    /// simulators). Never a secret.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub settings: Value,
    /// `{"api_key": "…"}` or `{"oauth": {"access_token", "refresh_token", "expires_at",
    /// "token_url", "client_id", "client_secret", "scopes"}}`; write-only. Absent: the stored
    /// credential stays.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Credential>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A request field that is not acceptable; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    /// The field, e.g. `data_types[1]`, `settings.base_url`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The way each of `data_types` of `provider` moves (`in`, `out`), as its connector in
/// `connectors` declares it; data types it does not know (or a provider without a
/// connector) have none.
pub fn directions(
    connectors: &Connectors,
    provider: Provider,
    data_types: &[String],
) -> BTreeMap<String, String> {
    let Some(connector) = connectors.get(provider) else {
        return BTreeMap::new();
    };
    data_types
        .iter()
        .filter_map(|d| {
            let spec = connector.data_type(d)?;
            Some((d.clone(), spec.direction.as_str().to_owned()))
        })
        .collect()
}

impl Integration {
    /// The same with its `directions` as `connectors` declare them.
    pub fn with_directions(mut self, connectors: &Connectors) -> Integration {
        if let Some(provider) = self.provider() {
            self.directions = directions(connectors, provider, &self.data_types);
        }
        self
    }
}

fn identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl IntegrationRequest {
    /// Checks every field for `provider` (its data types against its connector in
    /// `connectors`), with provider URLs limited by `targets`.
    pub fn check(
        &self,
        provider: Provider,
        connectors: &Connectors,
        targets: &TargetPolicy,
    ) -> Result<(), InvalidField> {
        let connector = connectors.get(provider);
        if self.enabled && self.data_types.is_empty() {
            return Err(invalid(
                "data_types",
                "an enabled integration needs at least one data type",
            ));
        }
        for (i, data_type) in self.data_types.iter().enumerate() {
            let field = format!("data_types[{i}]");
            match &connector {
                Some(c) if c.data_type(data_type).is_none() => {
                    let known = c.data_types();
                    let known = if known.is_empty() {
                        String::new()
                    } else {
                        format!(" (known: {})", known.join(", "))
                    };
                    return Err(invalid(
                        field,
                        format!("unknown data type '{data_type}' for {provider}{known}"),
                    ));
                }
                None if !identifier(data_type) => {
                    return Err(invalid(
                        field,
                        "use 1 to 64 lowercase letters, digits and '_', starting with a letter",
                    ));
                }
                _ => {}
            }
            if self.data_types[..i].contains(data_type) {
                return Err(invalid(field, format!("'{data_type}' is listed twice")));
            }
        }
        Spec::parse(&self.frequency).map_err(|e| {
            invalid(
                "frequency",
                format!(
                    "use realtime, hourly, every_6_hours, daily, manual or a 6-field cron \
                     expression: {e}"
                ),
            )
        })?;
        let Some(settings) = self.settings.as_object() else {
            return Err(invalid("settings", "must be a JSON object"));
        };
        if let Some(base_url) = settings.get("base_url") {
            let text = base_url
                .as_str()
                .ok_or_else(|| invalid("settings.base_url", "must be a string"))?;
            check_url("settings.base_url", text, targets)?;
        }
        if let Some(realm) = settings.get("realm_id")
            && !realm.is_string()
        {
            return Err(invalid("settings.realm_id", "must be a string"));
        }
        for key in settings.keys() {
            let lower = key.to_ascii_lowercase();
            if ["secret", "password", "token", "api_key"]
                .iter()
                .any(|s| lower.contains(s))
            {
                return Err(invalid(
                    format!("settings.{key}"),
                    "settings are not secret: put credentials in `credentials`",
                ));
            }
        }
        match &self.credentials {
            Some(Credential::ApiKey(key)) if key.trim().is_empty() => {
                Err(invalid("credentials.api_key", "must not be empty"))
            }
            Some(Credential::OAuth(oauth)) => {
                if oauth.access_token.is_empty() {
                    return Err(invalid(
                        "credentials.oauth.access_token",
                        "must not be empty",
                    ));
                }
                if let Some(url) = &oauth.token_url {
                    check_url("credentials.oauth.token_url", url, targets)?;
                }
                if oauth.refresh_token.is_some() && oauth.client_id.is_none() {
                    return Err(invalid(
                        "credentials.oauth.client_id",
                        "a refresh token needs the client id it was issued to",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// An `http://` or `https://` URL whose host the target policy allows (a literal address
/// here; a name is checked again when it is resolved, at each call).
pub fn check_url(field: &str, text: &str, targets: &TargetPolicy) -> Result<(), InvalidField> {
    let url = reqwest::Url::parse(text).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(field, "must be an http:// or https:// URL"));
    }
    targets::check_literal(targets, &url).map_err(|refused| invalid(field, refused.to_string()))
}

/// The id of a new integration: `int_` and 24 random hex digits.
pub fn new_id() -> String {
    let bytes: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("int_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> IntegrationRequest {
        serde_json::from_value(body).expect("request")
    }

    #[test]
    fn every_field_is_checked_and_named() {
        let policy = TargetPolicy::default();
        let connectors = Connectors::builtin();
        let ok = request(
            json!({"enabled": true, "data_types": ["payments"], "frequency": "hourly",
            "settings": {"realm_id": "1", "base_url": "https://sandbox.example.com"},
            "credentials": {"api_key": "k"}}),
        );
        ok.check(Provider::Quickbooks, &connectors, &policy)
            .unwrap();
        let cases = [
            (
                json!({"enabled": true, "data_types": [], "frequency": "hourly"}),
                "data_types",
            ),
            (
                json!({"enabled": true, "data_types": ["bills"], "frequency": "hourly"}),
                "data_types[0]",
            ),
            (
                json!({"enabled": true, "data_types": ["payments", "payments"], "frequency": "hourly"}),
                "data_types[1]",
            ),
            (
                json!({"enabled": true, "data_types": ["payments"], "frequency": "weekly"}),
                "frequency",
            ),
            (
                json!({"enabled": false, "frequency": "daily", "settings": {"base_url": "http://127.0.0.1:9"}}),
                "settings.base_url",
            ),
            (
                json!({"enabled": false, "frequency": "daily", "settings": {"client_secret": "x"}}),
                "settings.client_secret",
            ),
            (
                json!({"enabled": false, "frequency": "daily", "credentials": {"oauth": {"access_token": "a", "token_url": "ftp://x"}}}),
                "credentials.oauth.token_url",
            ),
        ];
        for (body, field) in cases {
            let error = request(body.clone())
                .check(Provider::Quickbooks, &connectors, &policy)
                .unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
        }
        let other = request(
            json!({"enabled": true, "data_types": ["flights", "trips"], "frequency": "0 0 3 * * *"}),
        );
        other
            .check(Provider::Foreflight, &connectors, &policy)
            .unwrap();
        let bad =
            request(json!({"enabled": true, "data_types": ["Flights!"], "frequency": "daily"}));
        assert_eq!(
            bad.check(Provider::Foreflight, &connectors, &policy)
                .unwrap_err()
                .field,
            "data_types[0]"
        );
        assert!(new_id().starts_with("int_") && new_id().len() == 28);
    }

    /// Every registered connector's data types are what its provider takes, listed when
    /// another is asked for; the integration shows the way each moves.
    #[test]
    fn a_connectors_data_types_are_its_providers() {
        let policy = TargetPolicy::default();
        let connectors = Connectors::builtin();
        for (provider, good) in [
            (Provider::Stripe, ["payments", "payment_intents"]),
            (Provider::Salesforce, ["customers", "trips"]),
            (Provider::Quickbooks, ["invoices", "payments"]),
        ] {
            let body = json!({"enabled": true, "data_types": good, "frequency": "daily"});
            request(body).check(provider, &connectors, &policy).unwrap();
            let body =
                json!({"enabled": true, "data_types": [good[0], "bills"], "frequency": "daily"});
            let error = request(body)
                .check(provider, &connectors, &policy)
                .unwrap_err();
            assert_eq!(error.field, "data_types[1]", "{provider}");
            assert!(
                error
                    .problem
                    .contains(&format!("known: {}", good.join(", "))),
                "{provider}: {error}"
            );
        }
        let shown = directions(
            &connectors,
            Provider::Stripe,
            &["payments".to_owned(), "payment_intents".to_owned()],
        );
        assert_eq!(
            shown.into_iter().collect::<Vec<_>>(),
            [
                ("payment_intents".to_owned(), "out".to_owned()),
                ("payments".to_owned(), "in".to_owned())
            ]
        );
        // A provider without a registered connector shows no directions.
        let none = Connectors::default();
        assert!(directions(&none, Provider::Foreflight, &["flights".to_owned()]).is_empty());
        assert_eq!(
            connectors.data_types(Provider::Salesforce).map(|d| d.len()),
            Some(2)
        );
        assert_eq!(none.data_types(Provider::Foreflight), None);
    }
}
