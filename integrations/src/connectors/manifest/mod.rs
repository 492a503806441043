//! The manifest-driven connector, for the systems that publish no API (PROVIDERS.md: Garmin
//! FltPlan.com, APG, Traxxall, Veryon, CMP, CAMP Systems, FuelerLinx, SatCom Direct,
//! Honeywell, ASAP Gateway). Nothing about their HTTP shapes is invented here: a versioned
//! TOML manifest per system says it, and no code is embedded in one.
//!
//! - [`model`]: the manifest's shape; [`load`] and [`validate`]: reading it, with errors
//!   naming file, field and line, and its `<<VENDOR: …>>` placeholders;
//! - [`auth`]: API key (header or query), Basic, bearer, OAuth client credentials, session
//!   login; secrets only by reference (`{{secret.NAME}}`, see [`template`]);
//! - [`cursor`], [`read`]: date-time and incrementing cursors, page number / offset /
//!   cursor token / `Link` header pagination; [`decode`]: JSON, XML, CSV; [`select`]:
//!   record selection and field mapping; [`response`]: the response rules; [`push`]: writes;
//! - [`templates`]: the shipped template per system and the built-in connectors;
//!   [`enable`]: what enabling an integration checks (a template cannot be enabled).
//!
//! **Which manifest a call uses.** The connector is built from a base document (for the
//! built-in ones, the shipped template). Its streams' data types, directions, object types,
//! conflict classes and events (fixed by the integration document, never by the vendor) are
//! the connector's catalog. An integration's `settings.manifest` holds the filled manifest
//! (TOML text; its streams must keep the template's identities); without it, the base
//! document must be complete. `settings.base_url` replaces the manifest's base URL.

pub mod auth;
pub mod cursor;
pub mod decode;
pub mod enable;
mod http;
pub mod load;
pub mod model;
pub mod push;
pub mod read;
pub mod response;
pub mod select;
pub mod template;
pub mod templates;
pub mod validate;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use serde_json::Value;

use self::auth::{Secrets, Sessions};
use self::http::{Env, Extra, exchange};
use self::load::{Document, LoadError};
use self::model::{Conflict, CursorKind, Manifest, Stream, Way};
use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};

/// The settings field holding an integration's filled manifest.
pub const SETTINGS_FIELD: &str = "manifest";

/// One catalog entry, kept for the process (the engine's catalog types are `'static`).
struct Entry {
    data_type: &'static str,
    direction: Direction,
    object_type: &'static str,
    class: RecordClass,
    events: &'static [&'static str],
    internal_id: Option<String>,
}

struct Inner {
    provider: Provider,
    base: Document,
    catalog: Vec<Entry>,
    sessions: Sessions,
    /// Complete manifests by the hash of their text.
    parsed: Mutex<HashMap<u64, Arc<Manifest>>>,
}

/// The connector of one manifest provider. Cheap to clone.
#[derive(Clone)]
pub struct ManifestConnector {
    inner: Arc<Inner>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn class_of(c: Conflict) -> RecordClass {
    match c {
        Conflict::Ordinary => RecordClass::Ordinary,
        Conflict::Financial => RecordClass::Financial,
        Conflict::Safety => RecordClass::Safety,
    }
}

fn hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn client_failure(message: String) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(ErrorClass::Client, message))
}

impl ManifestConnector {
    /// The connector of `base`'s provider. Its catalog is kept for the process: build each
    /// once (the built-in ones are, in [`templates::builtin`]).
    pub fn new(base: Document) -> ManifestConnector {
        let catalog = base
            .streams
            .iter()
            .map(|s| Entry {
                data_type: leak(&s.data_type),
                direction: match s.direction {
                    Way::In => Direction::In,
                    Way::Out => Direction::Out,
                },
                object_type: leak(&s.object_type),
                class: class_of(s.conflict),
                events: Box::leak(
                    s.events
                        .iter()
                        .map(|e| leak(e))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                internal_id: s.internal_id.clone(),
            })
            .collect();
        ManifestConnector {
            inner: Arc::new(Inner {
                provider: base.provider,
                base,
                catalog,
                sessions: Sessions::default(),
                parsed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The base document (for the built-in connectors, the shipped template).
    pub fn document(&self) -> &Document {
        &self.inner.base
    }

    fn entry(&self, data_type: &str) -> Option<&Entry> {
        self.inner.catalog.iter().find(|e| e.data_type == data_type)
    }

    /// The complete manifest `integration` calls with (its `settings.manifest`, else the
    /// base document), checked against the catalog.
    pub fn manifest_for(&self, integration: &IntegrationInfo) -> Result<Arc<Manifest>, LoadError> {
        let (file, text) = match integration.settings.get(SETTINGS_FIELD) {
            Some(Value::String(text)) => ("settings.manifest", text.as_str()),
            Some(_) => {
                return Err(LoadError {
                    file: "settings".into(),
                    line: None,
                    field: SETTINGS_FIELD.into(),
                    problem: "must be the manifest's TOML text".into(),
                });
            }
            None => (self.inner.base.file.as_str(), self.inner.base.text()),
        };
        let key = hash(text);
        if let Some(found) = self
            .inner
            .parsed
            .lock()
            .ok()
            .and_then(|p| p.get(&key).cloned())
        {
            return Ok(found);
        }
        let doc = Document::parse(file, text)?;
        enable::compatible(&self.inner.base, &doc)?;
        let manifest = Arc::new(doc.manifest()?);
        if let Ok(mut parsed) = self.inner.parsed.lock() {
            if parsed.len() > 64 {
                parsed.clear();
            }
            parsed.insert(key, manifest.clone());
        }
        Ok(manifest)
    }

    fn env<'a>(&'a self, cx: &'a CallContext, manifest: &'a Manifest) -> Env<'a> {
        let base = cx
            .integration
            .settings
            .get("base_url")
            .and_then(Value::as_str)
            .unwrap_or(&manifest.base_url)
            .to_owned();
        let fingerprint = hash(&format!("{base}\n{manifest:?}"));
        Env {
            cx,
            manifest,
            base,
            secrets: Secrets::from_token(&cx.token.token),
            sessions: &self.inner.sessions,
            fingerprint,
        }
    }

    fn loaded(&self, cx: &CallContext) -> Result<Arc<Manifest>, ConnectorError> {
        self.manifest_for(&cx.integration)
            .map_err(|e| client_failure(e.to_string()))
    }

    /// Makes the manifest's `check` request: `Ok` when the credentials work.
    pub async fn check(&self, cx: CallContext) -> Result<(), ConnectorError> {
        let manifest = self.loaded(&cx)?;
        let env = self.env(&cx, &manifest);
        let request = model::Request {
            method: manifest.check.method.clone(),
            path: manifest.check.path.clone(),
            query: Default::default(),
            headers: Default::default(),
            body: Default::default(),
        };
        exchange(&env, &request, &Extra::default(), model::Format::Json)
            .await
            .map(drop)
    }

    fn stream<'m>(manifest: &'m Manifest, data_type: &str) -> Result<&'m Stream, ConnectorError> {
        manifest
            .streams
            .iter()
            .find(|s| s.data_type == data_type)
            .ok_or_else(|| client_failure(format!("the manifest has no stream `{data_type}`")))
    }
}

impl Connector for ManifestConnector {
    fn provider(&self) -> Provider {
        self.inner.provider
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        self.entry(data_type).map(|e| DataTypeSpec {
            direction: e.direction,
            object_types: vec![e.object_type],
        })
    }

    fn record_class(&self, object_type: &str) -> RecordClass {
        self.inner
            .catalog
            .iter()
            .find(|e| e.object_type == object_type)
            .map_or(RecordClass::Ordinary, |e| e.class)
    }

    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        _token: &AccessToken,
    ) -> Result<RateLimit, JobFailure> {
        let manifest = self
            .manifest_for(integration)
            .map_err(|e| JobFailure::new(ErrorClass::Client, e.to_string()))?;
        let budget = &manifest.rate_budget;
        Ok(RateLimit {
            account: format!("{}:{}", self.inner.provider, integration.id),
            per_window: budget.requests,
            window: Duration::from_secs(budget.per_secs),
            concurrent: budget.concurrent,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::days(30)
    }

    fn changes_window_for(
        &self,
        integration: &IntegrationInfo,
        data_type: &str,
    ) -> chrono::Duration {
        let Ok(manifest) = self.manifest_for(integration) else {
            return self.changes_window();
        };
        let Ok(stream) = Self::stream(&manifest, data_type) else {
            return self.changes_window();
        };
        match &stream.cursor {
            // No cursor: every run is a full reconciliation.
            None => chrono::Duration::zero(),
            Some(c) if c.kind == CursorKind::Incrementing => chrono::Duration::days(36_500),
            Some(c) => chrono::Duration::days(i64::from(c.retention_days.unwrap_or(3650))),
        }
    }

    fn lookback(&self) -> chrono::Duration {
        // Each stream's own, taken in `cursor::param_value`.
        chrono::Duration::zero()
    }

    fn changes_since(
        &self,
        cx: CallContext,
        data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let manifest = this.loaded(&cx)?;
            let stream = Self::stream(&manifest, &data_type)?;
            let env = this.env(&cx, &manifest);
            let records = read::changes(&env, stream, since).await?;
            Ok(Page { records })
        })
    }

    fn scan(
        &self,
        cx: CallContext,
        data_type: String,
        position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let manifest = this.loaded(&cx)?;
            let stream = Self::stream(&manifest, &data_type)?;
            let env = this.env(&cx, &manifest);
            let pos = match position.as_deref() {
                None => None,
                Some(text) => Some(
                    read::PagePos::decode(text)
                        .ok_or_else(|| client_failure(format!("unknown scan position `{text}`")))?,
                ),
            };
            let (records, next) = read::page(&env, stream, None, pos.as_ref()).await?;
            Ok(ScanPage {
                records,
                next: next.map(|p| p.encode()),
            })
        })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let manifest = this.loaded(&cx)?;
            let stream = manifest
                .streams
                .iter()
                .find(|s| s.direction == Way::Out && s.object_type == record.object_type)
                .ok_or_else(|| {
                    client_failure(format!(
                        "the manifest has no outbound `{}`",
                        record.object_type
                    ))
                })?;
            let env = this.env(&cx, &manifest);
            push::push(&env, stream, &record).await
        })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        match self.entry(data_type) {
            Some(e) if e.direction == Direction::Out => e.events,
            _ => &[],
        }
    }

    fn outbound_for_event(
        &self,
        data_type: &str,
        event_type: &str,
        data: &Value,
    ) -> Option<Result<OutboundPlan, String>> {
        let entry = self.entry(data_type)?;
        if entry.direction != Direction::Out || !entry.events.contains(&event_type) {
            return None;
        }
        let path = entry.internal_id.as_deref().unwrap_or("id");
        Some(match select::text(data, path) {
            Some(id) if !id.is_empty() => Ok(OutboundPlan {
                object_type: entry.object_type,
                internal_id: id,
                body: data.clone(),
            }),
            _ => Err(format!(
                "data.{path}: missing (the platform's id of the record)"
            )),
        })
    }

    fn fetch(
        &self,
        _cx: CallContext,
        object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async move {
            Err(client_failure(format!(
                "a manifest connector reads no single record ({object_type} {external_id}): it uses no concurrency tokens"
            )))
        })
    }
}
