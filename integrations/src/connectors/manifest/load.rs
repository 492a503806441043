//! Loading a manifest: [`Document::parse`] reads any manifest, filled or not (for display
//! and for the connector's fixed catalog: its streams' data types, directions, object types,
//! conflict classes and events, which are never vendor-specific); [`Document::manifest`]
//! gives the typed [`Manifest`] only when no placeholder is left and every field checks out
//! ([`super::validate`]). Every error names the source (a file, or `settings.manifest`),
//! the field and, where the text has it, the line.
//!
//! A placeholder is a string holding `<<VENDOR: what to ask the vendor>>`; a manifest with
//! any loads, but cannot be enabled.

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::model::{Conflict, Manifest, VERSION, Way};
use crate::provider::Provider;

/// What opens a placeholder.
pub const PLACEHOLDER_OPEN: &str = "<<VENDOR:";
/// What closes it.
pub const PLACEHOLDER_CLOSE: &str = ">>";
/// The largest manifest read (64 KiB).
pub const MAX_BYTES: usize = 64 * 1024;

/// A manifest that cannot be read; the message names the source, field and line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {field}: {problem}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct LoadError {
    /// Where the manifest came from (`integrations/manifests/camp.toml`, `settings.manifest`).
    pub file: String,
    /// The line, where known.
    pub line: Option<usize>,
    /// The field (`streams[1].cursor.param`; `manifest` for the whole text).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// A value still to be had from the vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder {
    /// The field holding it.
    pub field: String,
    /// Its line.
    pub line: usize,
    /// The placeholder's text (what to ask the vendor).
    pub text: String,
}

/// What a stream is, independent of the vendor: fixed by the integration document.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The data type.
    pub data_type: String,
    /// Its direction.
    pub direction: Way,
    /// The object type of its records.
    pub object_type: String,
    /// Their conflict class.
    pub conflict: Conflict,
    /// Out: the events that make a record.
    #[serde(default)]
    pub events: Vec<String>,
    /// Out: the path of the platform's id in an event's data.
    #[serde(default)]
    pub internal_id: Option<String>,
}

#[derive(Deserialize)]
struct IdentityDoc {
    version: i64,
    provider: String,
    #[serde(default)]
    streams: Vec<Identity>,
}

/// A manifest read, filled or not.
#[derive(Clone, Debug)]
pub struct Document {
    /// Where it came from.
    pub file: String,
    /// The provider it is for.
    pub provider: Provider,
    /// Its streams' identities.
    pub streams: Vec<Identity>,
    /// The placeholders left, in the order of the text.
    pub placeholders: Vec<Placeholder>,
    text: String,
}

impl Document {
    /// Reads `text` (from `file`): TOML, version, provider, streams, placeholders.
    pub fn parse(file: &str, text: &str) -> Result<Document, LoadError> {
        let error = |line, field: &str, problem: String| LoadError {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            problem,
        };
        if text.len() > MAX_BYTES {
            return Err(error(
                None,
                "manifest",
                format!("{} bytes, more than {MAX_BYTES}", text.len()),
            ));
        }
        let table = DeTable::parse(text).map_err(|e| toml_error(file, text, &e))?;
        let mut placeholders = Vec::new();
        walk_strings(table.get_ref(), "", &mut |field, span, value| {
            if value.contains(PLACEHOLDER_OPEN) {
                placeholders.push(Placeholder {
                    field: field.to_owned(),
                    line: line_at(text, span.start),
                    text: value.to_owned(),
                });
            }
        });
        for p in &placeholders {
            let open = p.text.find(PLACEHOLDER_OPEN).unwrap_or(0);
            if !p.text[open..].contains(PLACEHOLDER_CLOSE) {
                return Err(error(
                    Some(p.line),
                    &p.field,
                    format!("placeholder not closed with `{PLACEHOLDER_CLOSE}`"),
                ));
            }
        }
        let doc: IdentityDoc = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        let line = |field: &str| line_of(text, field);
        if doc.version != VERSION {
            return Err(error(
                line("version"),
                "version",
                format!(
                    "manifest version {} is not read by this build (it reads {VERSION})",
                    doc.version
                ),
            ));
        }
        let provider: Provider =
            doc.provider
                .parse()
                .map_err(|e: crate::provider::UnknownProvider| {
                    error(line("provider"), "provider", e.to_string())
                })?;
        if doc.streams.is_empty() {
            return Err(error(line("streams"), "streams", "no stream".to_owned()));
        }
        for (i, s) in doc.streams.iter().enumerate() {
            let at = |f: &str| format!("streams[{i}].{f}");
            let fixed = [
                ("data_type", Some(&s.data_type)),
                ("object_type", Some(&s.object_type)),
                ("internal_id", s.internal_id.as_ref()),
            ];
            for (name, value) in fixed {
                if value.is_some_and(|v| v.contains(PLACEHOLDER_OPEN)) {
                    return Err(error(
                        line(&at(name)),
                        &at(name),
                        "fixed by the integration document, not the vendor: no placeholder"
                            .to_owned(),
                    ));
                }
            }
            if !identifier(&s.data_type) {
                return Err(error(
                    line(&at("data_type")),
                    &at("data_type"),
                    "use 1 to 64 lowercase letters, digits and '_', starting with a letter"
                        .to_owned(),
                ));
            }
            if s.object_type.trim().is_empty() {
                return Err(error(
                    line(&at("object_type")),
                    &at("object_type"),
                    "must not be empty".to_owned(),
                ));
            }
            if doc.streams[..i]
                .iter()
                .any(|other| other.data_type == s.data_type)
            {
                return Err(error(
                    line(&at("data_type")),
                    &at("data_type"),
                    format!("'{}' has two streams", s.data_type),
                ));
            }
            match s.direction {
                Way::Out if s.events.is_empty() => {
                    return Err(error(
                        line(&at("direction")),
                        &at("events"),
                        "an outbound stream names the events that make its records".to_owned(),
                    ));
                }
                Way::Out if s.internal_id.is_none() => {
                    return Err(error(
                        line(&at("direction")),
                        &at("internal_id"),
                        "an outbound stream names the path of the platform's id in the event"
                            .to_owned(),
                    ));
                }
                Way::In if !s.events.is_empty() || s.internal_id.is_some() => {
                    return Err(error(
                        line(&at("events")),
                        &at("events"),
                        "only an outbound stream takes events".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        Ok(Document {
            file: file.to_owned(),
            provider,
            streams: doc.streams,
            placeholders,
            text: text.to_owned(),
        })
    }

    /// The text it was read from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The stream of `data_type`.
    pub fn stream(&self, data_type: &str) -> Option<&Identity> {
        self.streams.iter().find(|s| s.data_type == data_type)
    }

    /// The complete manifest: refused while a placeholder is left, or when a field is wrong.
    pub fn manifest(&self) -> Result<Manifest, LoadError> {
        if let Some(first) = self.placeholders.first() {
            let listed: Vec<String> = self
                .placeholders
                .iter()
                .map(|p| format!("{} (line {}): {}", p.field, p.line, p.text))
                .collect();
            return Err(LoadError {
                file: self.file.clone(),
                line: Some(first.line),
                field: first.field.clone(),
                problem: format!(
                    "{} placeholder(s) still to fill with the vendor's values: {}",
                    listed.len(),
                    listed.join("; ")
                ),
            });
        }
        let manifest: Manifest =
            toml::from_str(&self.text).map_err(|e| toml_error(&self.file, &self.text, &e))?;
        super::validate::check(&manifest).map_err(|(field, problem)| LoadError {
            file: self.file.clone(),
            line: line_of(&self.text, &field),
            field,
            problem,
        })?;
        Ok(manifest)
    }
}

/// An identifier of the integration API (data types).
pub fn identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> LoadError {
    let line = e.span().map(|s| line_at(text, s.start));
    let field = e
        .span()
        .and_then(|s| field_at(text, s.start))
        .unwrap_or_else(|| "manifest".to_owned());
    LoadError {
        file: file.to_owned(),
        line,
        field,
        // The first line of toml's message; its own rendering repeats the source text.
        problem: e.message().lines().next().unwrap_or("not TOML").to_owned(),
    }
}

/// The field whose value holds byte `offset` of `text` (the deepest), if the text reads.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let table = DeTable::parse(text).ok()?;
    let mut found = None;
    walk_all(table.get_ref(), "", &mut |path, span| {
        if span.contains(&offset) || span.start == offset {
            found = Some(path.to_owned());
        }
    });
    found
}

fn walk_all(table: &DeTable<'_>, prefix: &str, f: &mut dyn FnMut(&str, std::ops::Range<usize>)) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        f(
            &path,
            key.span().start..value.span().end.max(key.span().end),
        );
        match value.get_ref() {
            DeValue::Table(t) => walk_all(t, &path, f),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    f(&at, item.span());
                    if let DeValue::Table(t) = item.get_ref() {
                        walk_all(t, &at, f);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The 1-based line of byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Calls `f` with the field path, span and value of every string in `table`.
fn walk_strings(
    table: &DeTable<'_>,
    prefix: &str,
    f: &mut dyn FnMut(&str, std::ops::Range<usize>, &str),
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        // A key can be the vendor's too (a field name in a mapping).
        f(&path, key.span(), key.get_ref());
        walk_value(value.get_ref(), value.span(), &path, f);
    }
}

fn walk_value(
    value: &DeValue<'_>,
    span: std::ops::Range<usize>,
    path: &str,
    f: &mut dyn FnMut(&str, std::ops::Range<usize>, &str),
) {
    match value {
        DeValue::String(s) => f(path, span, s),
        DeValue::Table(t) => walk_strings(t, path, f),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item.get_ref(), item.span(), &format!("{path}[{i}]"), f);
            }
        }
        _ => {}
    }
}

/// The line of field `path` (`streams[1].cursor.param`) in `text`, or of its nearest
/// ancestor that is there.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut current: Option<&DeValue<'_>> = None;
    let mut root = Some(table.get_ref());
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let tbl = match (root.take(), current) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((key, value)) = tbl.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        span = Some(key.span());
        current = Some(value.get_ref());
        if let Some(i) = index {
            let Some(DeValue::Array(items)) = current else {
                break;
            };
            let Some(item) = items.get(i) else { break };
            span = Some(item.span());
            current = Some(item.get_ref());
        }
    }
    span.map(|s| line_at(text, s.start))
}
