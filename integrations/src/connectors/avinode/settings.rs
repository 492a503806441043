//! The Avinode connector's settings, read from the integration's when a call is made: a
//! malformed one is a client failure naming the field.

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use serde_json::Value;

use crate::access::IntegrationInfo;

/// Avinode's sandbox API (`settings.base_url` replaces it: the production address comes
/// with the API connection Avinode sets up).
pub const DEFAULT_BASE_URL: &str = "https://sandbox.avinode.com/api";

pub(super) struct Settings {
    pub base_url: String,
    pub api_version: String,
    pub product: String,
    pub act_as_account: Option<String>,
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
        let base_url = match settings.get("base_url") {
            None | Some(Value::Null) => DEFAULT_BASE_URL.to_owned(),
            Some(Value::String(s)) if s.starts_with("https://") || s.starts_with("http://") => {
                s.trim_end_matches('/').to_owned()
            }
            Some(_) => return Err(bad("base_url", "must be an http(s) URL")),
        };
        let text = |field: &str, default: Option<&str>| -> Result<Option<String>, JobFailure> {
            match settings.get(field) {
                None | Some(Value::Null) => Ok(default.map(str::to_owned)),
                Some(Value::String(s))
                    if !s.is_empty()
                        && s.len() <= 100
                        && s.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
                {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(bad(
                    field,
                    "must be printable ASCII text of at most 100 bytes",
                )),
            }
        };
        Ok(Settings {
            base_url,
            api_version: text("api_version", Some("v1.0"))?.unwrap_or_default(),
            product: text(
                "product",
                Some(concat!("Hangar/", env!("CARGO_PKG_VERSION"))),
            )?
            .unwrap_or_default(),
            act_as_account: text("act_as_account", None)?,
        })
    }
}
