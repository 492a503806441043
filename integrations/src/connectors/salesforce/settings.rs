//! The connector's settings, read from the integration's when a call is made: a missing or
//! malformed one is a client failure naming the field.

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use super::DEFAULT_API_VERSION;
use crate::access::IntegrationInfo;

const DEFAULT_FIELDS: [&str; 8] = [
    "Name",
    "AccountNumber",
    "Type",
    "Industry",
    "BillingCity",
    "BillingCountry",
    "Website",
    "Phone",
];

pub(super) struct Settings {
    pub instance_url: String,
    pub api_version: String,
    pub customer_object: String,
    pub fields: Vec<String>,
    pub trip_object: String,
    pub external_id_field: String,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Settings {
    pub fn of(integration: &IntegrationInfo) -> Result<Settings, JobFailure> {
        let settings = &integration.settings;
        let bad = |field: &str, why: &str| {
            JobFailure::new(
                ErrorClass::Client,
                format!("integration {}: settings.{field} {why}", integration.id),
            )
        };
        let (field, url) = match (settings.get("instance_url"), settings.get("base_url")) {
            (Some(v), _) if !v.is_null() => ("instance_url", v),
            (_, Some(v)) if !v.is_null() => ("base_url", v),
            _ => {
                return Err(bad(
                    "instance_url",
                    "is required for Salesforce (the org's https://….my.salesforce.com)",
                ));
            }
        };
        let instance_url = match url.as_str() {
            Some(s) if s.starts_with("https://") || s.starts_with("http://") => {
                s.trim_end_matches('/').to_owned()
            }
            _ => return Err(bad(field, "must be an http(s) URL")),
        };
        let name = |field: &str, default: &str| -> Result<String, JobFailure> {
            match settings.get(field) {
                None | Some(Value::Null) => Ok(default.to_owned()),
                Some(Value::String(s)) if is_name(s) => Ok(s.clone()),
                Some(_) => Err(bad(
                    field,
                    "must be a Salesforce API name (letters, digits, _)",
                )),
            }
        };
        let api_version = match settings.get("api_version") {
            None | Some(Value::Null) => DEFAULT_API_VERSION.to_owned(),
            Some(Value::String(s))
                if s.starts_with('v')
                    && s[1..].split_once('.').is_some_and(|(a, b)| {
                        !a.is_empty()
                            && !b.is_empty()
                            && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
                    }) =>
            {
                s.clone()
            }
            Some(_) => return Err(bad("api_version", "must look like v62.0")),
        };
        let mut fields = vec!["Id".to_owned()];
        match settings.get("customer_fields") {
            None | Some(Value::Null) => fields.extend(DEFAULT_FIELDS.map(str::to_owned)),
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(s) if is_name(s) => fields.push(s.to_owned()),
                        _ => {
                            return Err(bad(
                                "customer_fields",
                                "must be a list of Salesforce field API names",
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(bad(
                    "customer_fields",
                    "must be a list of Salesforce field API names",
                ));
            }
        }
        fields.extend(["LastModifiedDate".to_owned(), "SystemModstamp".to_owned()]);
        let mut seen = std::collections::HashSet::new();
        fields.retain(|f| seen.insert(f.clone()));
        Ok(Settings {
            customer_object: name("customer_object", "Account")?,
            trip_object: name("trip_object", "Hangar_Trip__c")?,
            external_id_field: name("external_id_field", "Hangar_Id__c")?,
            instance_url,
            api_version,
            fields,
        })
    }

    pub fn api(&self) -> String {
        format!("{}/services/data/{}", self.instance_url, self.api_version)
    }

    /// The sobject of a record type the engine names (`Trip` is the trip object).
    pub fn sobject(&self, object_type: &str) -> String {
        if object_type == "Trip" {
            self.trip_object.clone()
        } else {
            self.customer_object.clone()
        }
    }
}

/// Settings for the connector's unit tests: an org at `https://acme.my.salesforce.com`, the
/// defaults otherwise.
#[cfg(test)]
pub(super) fn tests_settings() -> Settings {
    let info = IntegrationInfo {
        id: "int_1".into(),
        workspace_id: "ws".into(),
        provider: crate::provider::Provider::Salesforce,
        enabled: true,
        data_types: vec![],
        settings: serde_json::json!({"instance_url": "https://acme.my.salesforce.com"}),
    };
    Settings::of(&info).expect("settings")
}
