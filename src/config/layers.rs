//! The layers of the configuration, merged by figment: built-in defaults (absent keys) →
//! `hangar.toml` → environment (`HANGAR_*`) → command-line flags. Figment remembers which layer
//! gave each value, so an error names that source and the field: `hangar.toml: bind: …`,
//! `HANGAR_BIND: …`, `--bind: …`.
//!
//! The file is parsed here with the `toml` crate (its errors fit on one line) and checked for
//! unknown keys and for the master key, which it must not hold. Environment values are taken
//! as text and converted where a setting is a number (figment's own `Env` provider would read
//! `HANGAR_ALLOW_PRIVATE_TARGETS=1` as a number and refuse it for that text setting).

use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use super::settings;
use crate::exit::Fatal;

/// The prefix of the environment variables: `bind` is `HANGAR_BIND`.
const ENV_PREFIX: &str = "HANGAR_";

/// The values given on the command line, from the option groups of the subcommand.
#[derive(Debug, Default)]
pub struct Flags {
    values: Dict,
    /// A flag value that cannot be a configuration value (a path that is not UTF-8).
    error: Option<String>,
}

impl Flags {
    /// No flags.
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Adds the flags of one option group (those given; absent ones are not serialized).
    pub fn with(mut self, group: &impl Serialize) -> Flags {
        match Value::serialize(group) {
            Ok(Value::Dict(_, values)) => self.values.extend(values),
            Ok(_) => {}
            Err(error) => {
                let field = match error.path.join(".") {
                    path if path.is_empty() => "command line".to_owned(),
                    path => format!("--{}", path.replace('_', "-")),
                };
                self.error.get_or_insert(format!("{field}: {}", error.kind));
            }
        }
        self
    }
}

/// One layer: its values and the metadata that names its keys in errors.
struct Layer {
    values: Dict,
    metadata: Metadata,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// The merged layers.
pub struct Layers {
    figment: Figment,
}

impl Layers {
    /// Reads `hangar.toml` (`--config`, else `./hangar.toml` when present) and the environment,
    /// and puts `flags` on top.
    pub fn load(config_file: Option<&Path>, flags: Flags) -> Result<Layers, Fatal> {
        if let Some(error) = flags.error {
            return Err(Fatal::config(error));
        }
        let mut figment = Figment::new();
        if let Some(file) = file_layer(config_file)? {
            figment = figment.merge(file);
        }
        let figment = figment.merge(env_layer()?).merge(Layer {
            values: flags.values,
            metadata: Metadata::named("command line").interpolater(|_: &Profile, keys: &[&str]| {
                format!("--{}", keys.join(".").replace('_', "-"))
            }),
        });
        Ok(Layers { figment })
    }

    /// The values of one option group; a value of the wrong type is reported with its source.
    pub fn group<'a, G: Deserialize<'a>>(&self) -> Result<G, Fatal> {
        self.figment.extract_lossy().map_err(|error| {
            let field = match &error.metadata {
                Some(metadata) if !error.path.is_empty() => {
                    metadata.interpolate(&Profile::Default, &error.path)
                }
                _ => error.path.join("."),
            };
            Fatal::config(format!("{field}: {}", readable(&error.kind)))
        })
    }

    /// Where the value of `key` came from, as a user names it: `hangar.toml: bind`,
    /// `HANGAR_BIND` or `--bind`; `bind (default)` when no layer set it.
    pub fn source(&self, key: &str) -> String {
        match self.figment.find_metadata(key) {
            Some(metadata) => metadata.interpolate(&Profile::Default, &[key]),
            None => format!("{key} (default)"),
        }
    }

    /// A configuration error about `key`, naming where its value came from.
    pub fn invalid(&self, key: &str, message: impl std::fmt::Display) -> Fatal {
        Fatal::config(format!("{}: {message}", self.source(key)))
    }
}

/// A type error in words a user knows: `expected a whole number, found string "abc"`.
fn readable(kind: &Kind) -> String {
    let words = |expected: &str| match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number".to_owned(),
        "a string" | "a path string" => "text".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
            format!("expected {}, found {found}", words(expected))
        }
        other => other.to_string(),
    }
}

/// The file layer, or none when no file was named and `./hangar.toml` does not exist.
fn file_layer(explicit: Option<&Path>) -> Result<Option<Layer>, Fatal> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("hangar.toml");
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Fatal::config(format!("{name}: cannot read: {e}")))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Fatal::config(format!("{name}: {}", e.message().trim())))?;
    if table.contains_key(settings::FILE_FORBIDDEN) {
        return Err(Fatal::config(format!(
            "{name}: {}: not allowed in the configuration file (a key stored next to the config protects nothing); set HANGAR_MASTER_KEY or pass --master-key",
            settings::FILE_FORBIDDEN
        )));
    }
    let known = settings::names();
    if let Some(unknown) = table.keys().find(|k| !known.contains(k)) {
        let allowed: Vec<&str> = known
            .iter()
            .map(String::as_str)
            .filter(|k| *k != settings::FILE_FORBIDDEN)
            .collect();
        return Err(Fatal::config(format!(
            "{name}: {unknown}: unknown setting (known: {})",
            allowed.join(", ")
        )));
    }
    let values = match Value::serialize(&table) {
        Ok(Value::Dict(_, values)) => values,
        _ => return Err(Fatal::config(format!("{name}: not a table of settings"))),
    };
    Ok(Some(Layer {
        values,
        metadata: Metadata::named("configuration file")
            .source(figment::Source::File(path))
            .interpolater(move |_: &Profile, keys: &[&str]| format!("{name}: {}", keys.join("."))),
    }))
}

/// The environment layer: `HANGAR_<SETTING>` for every setting, as text; empty ones count as
/// unset.
fn env_layer() -> Result<Layer, Fatal> {
    let mut values = Dict::new();
    for key in settings::names() {
        let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
        match std::env::var(&var) {
            Ok(value) if value.is_empty() => {}
            Ok(value) => {
                values.insert(key, Value::from(value));
            }
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Fatal::config(format!("{var}: not valid UTF-8")));
            }
        }
    }
    Ok(Layer {
        values,
        metadata: Metadata::named("environment").interpolater(|_: &Profile, keys: &[&str]| {
            format!("{ENV_PREFIX}{}", keys.join(".").to_ascii_uppercase())
        }),
    })
}
