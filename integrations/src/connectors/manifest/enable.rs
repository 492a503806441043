//! What saving an integration of a manifest provider checks ([`check`], called by
//! `IntegrationContext::put` before anything is stored), each problem a 422 naming the
//! field: `settings.manifest` must read (even while disabled: it is shown), keep the
//! template's streams ([`compatible`]) and, to enable, be complete: the shipped template
//! with its `<<VENDOR: …>>` placeholders cannot be enabled. The data types must be the
//! manifest's, and the secrets it references must be in the credential given.

use serde_json::Value;

use super::load::{Document, LoadError};
use super::{SETTINGS_FIELD, auth::Secrets, templates};
use crate::credentials::Credential;
use crate::integration::InvalidField;
use crate::provider::Provider;

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Whether `filled` keeps `base`'s provider and stream identities (a filled manifest says
/// how the vendor speaks, never what moves).
pub fn compatible(base: &Document, filled: &Document) -> Result<(), LoadError> {
    let error = |field: String, problem: String| LoadError {
        file: filled.file.clone(),
        line: super::load::line_of(filled.text(), &field),
        field,
        problem,
    };
    if filled.provider != base.provider {
        return Err(error(
            "provider".into(),
            format!(
                "is {}, the integration's provider is {}",
                filled.provider, base.provider
            ),
        ));
    }
    for (i, stream) in filled.streams.iter().enumerate() {
        match base.stream(&stream.data_type) {
            Some(template) if template == stream => {}
            Some(template) => {
                return Err(error(
                    format!("streams[{i}]"),
                    format!(
                        "'{}' must keep the template's direction ({:?}), object type ({}), conflict class ({:?}), events ({}) and internal id",
                        stream.data_type,
                        template.direction,
                        template.object_type,
                        template.conflict,
                        template.events.join(", ")
                    ),
                ));
            }
            None => {
                let known: Vec<&str> = base.streams.iter().map(|s| s.data_type.as_str()).collect();
                return Err(error(
                    format!("streams[{i}].data_type"),
                    format!(
                        "'{}' is not a data type of {} (known: {})",
                        stream.data_type,
                        base.provider,
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The secret names a manifest's text references.
pub fn secret_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{secret.") {
        let after = &rest[at + "{{secret.".len()..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end..];
    }
    names
}

/// Checks a save of `provider`'s integration (see the module doc); `Ok` for a provider
/// without a manifest connector.
pub fn check(
    provider: Provider,
    enabled: bool,
    data_types: &[String],
    settings: &Value,
    credential: Option<&Credential>,
) -> Result<(), InvalidField> {
    let Some(connector) = templates::connector(provider) else {
        return Ok(());
    };
    let base = connector.document();
    let field = format!("settings.{SETTINGS_FIELD}");
    let given = match settings.get(SETTINGS_FIELD) {
        None => None,
        Some(Value::String(text)) => {
            let doc = Document::parse(&field, text).map_err(|e| invalid(&field, e.to_string()))?;
            compatible(base, &doc).map_err(|e| invalid(&field, e.to_string()))?;
            Some(doc)
        }
        Some(_) => return Err(invalid(&field, "must be the manifest's TOML text")),
    };
    for (i, data_type) in data_types.iter().enumerate() {
        if base.stream(data_type).is_none() {
            let known: Vec<&str> = base.streams.iter().map(|s| s.data_type.as_str()).collect();
            return Err(invalid(
                format!("data_types[{i}]"),
                format!(
                    "unknown data type '{data_type}' for {provider} (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    if !enabled {
        return Ok(());
    }
    let doc = given.as_ref().unwrap_or(base);
    let manifest = doc.manifest().map_err(|e| match &given {
        Some(_) => invalid(&field, e.to_string()),
        None => invalid(
            &field,
            format!(
                "{provider} publishes no API: it cannot be enabled until an admin gives the filled manifest here (a copy of integrations/manifests/{provider}.toml with the vendor's values). The shipped template: {e}"
            ),
        ),
    })?;
    for (i, data_type) in data_types.iter().enumerate() {
        if !manifest.streams.iter().any(|s| &s.data_type == data_type) {
            return Err(invalid(
                format!("data_types[{i}]"),
                format!("the manifest has no stream for '{data_type}'"),
            ));
        }
    }
    if let Some(credential) = credential {
        let secrets = Secrets::from_token(credential.bearer());
        for name in secret_names(doc.text()) {
            if secrets.get(&name).is_none() {
                return Err(invalid(
                    "credentials",
                    format!(
                        "the manifest references {{{{secret.{name}}}}}: give it in credentials.secrets (or as credentials.api_key when it is the only one)"
                    ),
                ));
            }
        }
    }
    Ok(())
}
