//! ForeFlight Dispatch (flight planning, both ways) with the operator's API key.
//!
//! **Third-party knowledge.** ForeFlight links its Dispatch API specification from its
//! release notes to customers only; every path, parameter and field name here is what
//! integrators report (PROVIDERS.md marks them 3P), unverified against ForeFlight, and
//! tested against Hangar's own simulator of those shapes only. An operator enabling it
//! should compare them with the specification ForeFlight gives them.
//!
//! - `flights` in: `GET /Flights/modified?sinceDate=<ISO 8601>` → `{"flights": [{"flightId",
//!   "lastModified", …}]}` (a bare array is read too), oldest first; a record's time is its
//!   `lastModified`. How far back the feed reaches is not public: a cursor older than
//!   [`CHANGES_WINDOW_DAYS`] starts a full reconciliation, the same feed read from
//!   [`FULL_SCAN_SINCE`] page by page (each page from the last one's newest time).
//! - `trips` out: trip events become flights ([`flight`]): `POST /Flights` creates one (its
//!   `flightId` is kept), `PUT /Flights/{flightId}` updates it.
//!
//! Credentials: `{"api_key": "<the Dispatch API key>"}` (`x-api-key`). Settings: `base_url`
//! (default [`DEFAULT_BASE_URL`]). Limits are not public: Hangar keeps to
//! [`REQUESTS_PER_MINUTE`] a key, 2 at once. Failure shapes: [`http`]. ForeFlight's own
//! webhook (HMAC-SHA256, 3P) is not implemented: its pushes reach Hangar on the generic
//! signed scheme of `POST /hooks/foreflight/{ws}`.

pub mod flight;
pub mod http;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use reqwest::Method;
use serde_json::Value;

use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};

/// ForeFlight's public API address (3P; `settings.base_url` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://public-api.foreflight.com/public/api";

/// How far back the modified feed is trusted (not published; a conservative guess).
pub const CHANGES_WINDOW_DAYS: i64 = 30;

/// Where a full reconciliation starts reading the modified feed.
pub const FULL_SCAN_SINCE: &str = "2000-01-01T00:00:00Z";

/// Hangar's own budget for one key (ForeFlight publishes none).
pub const REQUESTS_PER_MINUTE: i64 = 60;

/// The ForeFlight Dispatch connector.
#[derive(Clone, Debug, Default)]
pub struct ForeFlight;

fn base_url(integration: &IntegrationInfo) -> Result<String, JobFailure> {
    match integration.settings.get("base_url") {
        None | Some(Value::Null) => Ok(DEFAULT_BASE_URL.to_owned()),
        Some(Value::String(s)) if s.starts_with("https://") || s.starts_with("http://") => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        Some(_) => Err(JobFailure::new(
            ErrorClass::Client,
            format!(
                "integration {}: settings.base_url must be an http(s) URL",
                integration.id
            ),
        )),
    }
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Server,
        format!("ForeFlight answered without {what}"),
    ))
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A flight as an inbound record.
fn flight_record(flight: &Value) -> Result<InboundRecord, ConnectorError> {
    let id = flight
        .get("flightId")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a flight's flightId"))?;
    let modified_at = flight
        .get("lastModified")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| malformed("a flight's lastModified"))?;
    Ok(InboundRecord {
        object_type: flight::OBJECT_TYPE.to_owned(),
        external_id: id.to_owned(),
        modified_at,
        payload: flight.clone(),
        concurrency_token: None,
        deleted: false,
    })
}

/// The flights modified since `since`, oldest first.
async fn modified_since(
    cx: &CallContext,
    since: &str,
) -> Result<Vec<InboundRecord>, ConnectorError> {
    let base = base_url(&cx.integration).map_err(ConnectorError::Failed)?;
    let url = format!("{base}/Flights/modified");
    let body = http::call(
        cx,
        Method::GET,
        &url,
        &[("sinceDate", since.to_owned())],
        None,
    )
    .await?;
    let items = body
        .get("flights")
        .unwrap_or(&body)
        .as_array()
        .ok_or_else(|| malformed("the modified flights"))?;
    let mut records = items
        .iter()
        .map(flight_record)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by(|a, b| (a.modified_at, &a.external_id).cmp(&(b.modified_at, &b.external_id)));
    Ok(records)
}

/// A flight id as one path segment.
fn flight_id(id: &str) -> Result<&str, ConnectorError> {
    if !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(ConnectorError::Failed(JobFailure::new(
            ErrorClass::Client,
            format!("`{id}` is not a ForeFlight flight id"),
        )))
    }
}

impl Connector for ForeFlight {
    fn provider(&self) -> Provider {
        Provider::Foreflight
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        match data_type {
            "flights" => Some(DataTypeSpec {
                direction: Direction::In,
                object_types: vec![flight::OBJECT_TYPE],
            }),
            "trips" => Some(DataTypeSpec {
                direction: Direction::Out,
                object_types: vec![flight::OBJECT_TYPE],
            }),
            _ => None,
        }
    }

    fn record_class(&self, _object_type: &str) -> RecordClass {
        RecordClass::Ordinary
    }

    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        _token: &AccessToken,
    ) -> Result<RateLimit, JobFailure> {
        base_url(integration)?;
        Ok(RateLimit {
            account: format!("foreflight:{}", integration.id),
            per_window: REQUESTS_PER_MINUTE,
            window: Duration::from_secs(60),
            concurrent: 2,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::days(CHANGES_WINDOW_DAYS)
    }

    fn lookback(&self) -> chrono::Duration {
        chrono::Duration::minutes(1)
    }

    fn changes_since(
        &self,
        cx: CallContext,
        _data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        Box::pin(async move {
            Ok(Page {
                records: modified_since(&cx, &iso(since)).await?,
            })
        })
    }

    fn scan(
        &self,
        cx: CallContext,
        _data_type: String,
        position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        Box::pin(async move {
            let since = position.unwrap_or_else(|| FULL_SCAN_SINCE.to_owned());
            let from = DateTime::parse_from_rfc3339(&since)
                .map_err(|_| {
                    ConnectorError::Failed(JobFailure::new(
                        ErrorClass::Internal,
                        format!("bad ForeFlight scan position `{since}`"),
                    ))
                })?
                .with_timezone(&Utc);
            let records = modified_since(&cx, &since).await?;
            // The next page starts at this one's newest time (as it is sent); a page bringing
            // nothing newer than where it started is the last.
            let next = records
                .iter()
                .map(|r| r.modified_at)
                .max()
                .filter(|newest| *newest > from)
                .map(iso)
                .filter(|next| *next != since);
            Ok(ScanPage { records, next })
        })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        Box::pin(async move {
            let base = base_url(&cx.integration).map_err(ConnectorError::Failed)?;
            let (method, url) = match &record.external_id {
                Some(id) => (Method::PUT, format!("{base}/Flights/{}", flight_id(id)?)),
                None => (Method::POST, format!("{base}/Flights")),
            };
            let saved = http::call(&cx, method, &url, &[], Some(&record.data)).await?;
            let read = flight_record(&saved)?;
            Ok(Pushed {
                external_id: read.external_id,
                payload: read.payload,
                modified_at: read.modified_at,
                concurrency_token: None,
            })
        })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        match data_type {
            "trips" => &flight::EVENT_TYPES,
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
            .then(|| flight::plan(event_type, data))
    }

    fn fetch(
        &self,
        cx: CallContext,
        _object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async move {
            let base = base_url(&cx.integration).map_err(ConnectorError::Failed)?;
            let url = format!("{base}/Flights/{}", flight_id(&external_id)?);
            let body = http::call(&cx, Method::GET, &url, &[], None).await?;
            flight_record(&body)
        })
    }
}
