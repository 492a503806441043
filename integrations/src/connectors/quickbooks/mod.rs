//! QuickBooks Online: payments in (the changes feed `GET …/cdc?entities=Payment,Invoice&
//! changedSince=`, ≤ 1 000 objects an answer, 30 days back; full reconciliation with
//! `GET …/query?query=select * from Payment STARTPOSITION n MAXRESULTS 1000`), invoices out
//! (`POST …/invoice?requestid=` with `SyncToken` as the concurrency token). Settings:
//! `realm_id` (required) and `base_url` (default `https://quickbooks.api.intuit.com`, for
//! sandboxes and the simulator); paths are `/v3/company/{realm_id}/…` below it. The budget is
//! per realm: 500 requests a minute, 10 at once. Failure shapes: [`faults`].

pub mod faults;
mod http;
pub mod invoice;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use serde_json::Value;

use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};

/// QuickBooks' production API address (`settings.base_url` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://quickbooks.api.intuit.com";

/// The most objects one answer holds (CDC and query).
pub const MAX_RESULTS: usize = 1000;

/// The entities the `payments` data type reads (an invoice's balance moves with a payment).
const INBOUND_ENTITIES: [&str; 2] = ["Payment", "Invoice"];

/// The QuickBooks Online connector.
#[derive(Clone, Debug, Default)]
pub struct QuickBooks;

/// The settings a call needs.
pub(crate) struct Settings {
    pub base_url: String,
    pub realm_id: String,
}

impl Settings {
    /// Reads `settings.realm_id` and `settings.base_url`; a missing or malformed one is a
    /// client failure naming the field.
    pub(crate) fn of(integration: &IntegrationInfo) -> Result<Settings, JobFailure> {
        let bad = |field: &str, why: &str| {
            JobFailure::new(
                ErrorClass::Client,
                format!("integration {}: settings.{field} {why}", integration.id),
            )
        };
        let realm_id = match integration.settings.get("realm_id") {
            Some(Value::String(s))
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                s.clone()
            }
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(bad(
                    "realm_id",
                    "must be the company's id (letters and digits)",
                ));
            }
            None => return Err(bad("realm_id", "is required for QuickBooks")),
        };
        let base_url = match integration.settings.get("base_url") {
            None | Some(Value::Null) => DEFAULT_BASE_URL.to_owned(),
            Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
                s.trim_end_matches('/').to_owned()
            }
            Some(_) => return Err(bad("base_url", "must be an http(s) URL")),
        };
        Ok(Settings { base_url, realm_id })
    }

    pub(crate) fn company(&self) -> String {
        format!("{}/v3/company/{}", self.base_url, self.realm_id)
    }
}

impl Connector for QuickBooks {
    fn provider(&self) -> Provider {
        Provider::Quickbooks
    }

    fn data_types(&self) -> &'static [&'static str] {
        &["invoices", "payments"]
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        match data_type {
            "payments" => Some(DataTypeSpec {
                direction: Direction::In,
                object_types: INBOUND_ENTITIES.to_vec(),
            }),
            "invoices" => Some(DataTypeSpec {
                direction: Direction::Out,
                object_types: vec!["Invoice"],
            }),
            _ => None,
        }
    }

    fn record_class(&self, _object_type: &str) -> RecordClass {
        // Everything QuickBooks moves for Hangar is money.
        RecordClass::Financial
    }

    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        _token: &AccessToken,
    ) -> Result<RateLimit, JobFailure> {
        let settings = Settings::of(integration)?;
        Ok(RateLimit {
            account: format!("quickbooks:{}", settings.realm_id),
            per_window: 500,
            window: Duration::from_secs(60),
            concurrent: 10,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::days(30)
    }

    fn lookback(&self) -> chrono::Duration {
        chrono::Duration::minutes(5)
    }

    fn changes_since(
        &self,
        cx: CallContext,
        _data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let url = format!("{}/cdc", settings.company());
            let body = http::get(
                &cx,
                &url,
                &[
                    ("entities", INBOUND_ENTITIES.join(",")),
                    ("changedSince", since),
                ],
            )
            .await?;
            let mut body = body;
            let mut records = Vec::new();
            let responses = body
                .pointer_mut("/CDCResponse/0/QueryResponse")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| malformed("CDCResponse[0].QueryResponse"))?;
            for response in responses {
                for entity in INBOUND_ENTITIES {
                    // Taken out of the page, not copied (up to 1 000 records a page).
                    if let Some(Value::Array(items)) = response.get_mut(entity).map(Value::take) {
                        for item in items {
                            records.push(record_from(entity, item)?);
                        }
                    }
                }
            }
            records.sort_by(|a, b| {
                (a.modified_at, &a.external_id).cmp(&(b.modified_at, &b.external_id))
            });
            Ok(Page { records })
        })
    }

    fn scan(
        &self,
        cx: CallContext,
        _data_type: String,
        position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let (entity, start) = match position.as_deref() {
                None => (INBOUND_ENTITIES[0], 1),
                Some(p) => parse_position(p)?,
            };
            let query =
                format!("select * from {entity} STARTPOSITION {start} MAXRESULTS {MAX_RESULTS}");
            let url = format!("{}/query", settings.company());
            let body = http::get(&cx, &url, &[("query", query)]).await?;
            let items = body
                .pointer(&format!("/QueryResponse/{entity}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let records = items
                .iter()
                .map(|item| record_of(entity, item))
                .collect::<Result<Vec<_>, _>>()?;
            let next = if items.len() >= MAX_RESULTS {
                Some(format!("{entity}:{}", start + items.len() as i64))
            } else {
                let index = INBOUND_ENTITIES.iter().position(|e| *e == entity);
                index
                    .and_then(|i| INBOUND_ENTITIES.get(i + 1))
                    .map(|e| format!("{e}:1"))
            };
            Ok(ScanPage { records, next })
        })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let mut invoice = record.data.clone();
            if let (Some(id), Some(map)) = (&record.external_id, invoice.as_object_mut()) {
                map.insert("Id".into(), Value::String(id.clone()));
                map.insert(
                    "SyncToken".into(),
                    Value::String(record.concurrency_token.clone().unwrap_or_default()),
                );
                map.insert("sparse".into(), Value::Bool(true));
            }
            let url = format!("{}/invoice", settings.company());
            let body = http::post(
                &cx,
                &url,
                &[("requestid", record.idempotency_key.clone())],
                &invoice,
            )
            .await?;
            let saved = body.get("Invoice").ok_or_else(|| malformed("Invoice"))?;
            let read = record_of("Invoice", saved)?;
            Ok(Pushed {
                external_id: read.external_id,
                payload: read.payload,
                modified_at: read.modified_at,
                concurrency_token: read.concurrency_token,
            })
        })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        match data_type {
            "invoices" => &invoice::EVENT_TYPES,
            _ => &[],
        }
    }

    fn outbound_for_event(
        &self,
        data_type: &str,
        event_type: &str,
        data: &Value,
    ) -> Option<Result<OutboundPlan, String>> {
        self.event_types(data_type)
            .contains(&event_type)
            .then(|| invoice::plan(data))
    }

    fn fetch(
        &self,
        cx: CallContext,
        object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let url = format!(
                "{}/{}/{}",
                settings.company(),
                object_type.to_ascii_lowercase(),
                external_id
            );
            let body = http::get(&cx, &url, &[]).await?;
            let item = body
                .get(&object_type)
                .ok_or_else(|| malformed(&object_type))?;
            record_of(&object_type, item)
        })
    }
}

fn parse_position(position: &str) -> Result<(&'static str, i64), ConnectorError> {
    let bad = || {
        ConnectorError::Failed(JobFailure::new(
            ErrorClass::Internal,
            format!("bad QuickBooks scan position `{position}`"),
        ))
    };
    let (entity, start) = position.split_once(':').ok_or_else(bad)?;
    let entity = INBOUND_ENTITIES
        .into_iter()
        .find(|e| *e == entity)
        .ok_or_else(bad)?;
    let start = start
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(bad)?;
    Ok((entity, start))
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Server,
        format!("QuickBooks answered without {what}"),
    ))
}

/// One QuickBooks object as an inbound record: `Id`, `SyncToken`,
/// `MetaData.LastUpdatedTime`, and `status: "Deleted"` for a deleted one.
pub(crate) fn record_of(entity: &str, item: &Value) -> Result<InboundRecord, ConnectorError> {
    record_from(entity, item.clone())
}

/// [`record_of`], taking the item.
pub(crate) fn record_from(entity: &str, item: Value) -> Result<InboundRecord, ConnectorError> {
    let id = match item.get("Id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(malformed(&format!("{entity}.Id"))),
    };
    let modified = item
        .pointer("/MetaData/LastUpdatedTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| malformed(&format!("{entity}.MetaData.LastUpdatedTime")))?;
    let concurrency_token = item
        .get("SyncToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let deleted = item.get("status").and_then(Value::as_str) == Some("Deleted");
    Ok(InboundRecord {
        object_type: entity.to_owned(),
        external_id: id,
        modified_at: modified,
        payload: item,
        concurrency_token,
        deleted,
    })
}
