//! Avinode (charter marketplace, both ways, real time), over a per-company API connection.
//!
//! - `rfqs` in, **by push only**: Avinode publishes no list of RFQs. An operator's
//!   `TripRequest` webhook (`{"id", "href", "type", "tripId"}`: a new, updated or cancelled
//!   RFQ; Basic credentials Hangar generated, see `hangar_workers::inbound`) becomes a `sync`
//!   run of `rfqs` that reads the RFQ at the push's `href` (`GET /rfqs/{id}`; an `href` off the
//!   configured base URL is not followed: `{base_url}/rfqs/{id}` is read instead). Scheduled
//!   and manual runs of `rfqs` read nothing, and nothing is ever reconciled or removed: an RFQ
//!   whose push never came (Avinode retries a push 48 hours) is not seen.
//! - `schedules` out: trip events become the aircraft's schedule activity, `PUT /schedules`
//!   ([`schedule`]); the same trip again replaces its activity (Avinode asks for uploads
//!   about every 5 minutes: a sync frequency of `realtime` or a few minutes fits).
//!
//! Credentials: `{"api_key": "<X-Avinode-ApiToken>:<authentication token>"}` — the
//! application's API token and the API connection's bearer token, both issued by Avinode
//! support with the connection (an OAuth access token from Avinode's client-credentials
//! endpoint is the bearer alone). Settings: `base_url` (default [`settings::DEFAULT_BASE_URL`],
//! the sandbox), `api_version` (`v1.0`), `product` (`X-Avinode-Product`, default
//! `Hangar/<version>`), `act_as_account` (`X-Avinode-ActAsAccount`, for a marketing agent).
//! Every call carries `X-Avinode-SentTimestamp` ([`http`]).
//!
//! Limits are not public: Hangar keeps to [`REQUESTS_PER_MINUTE`] a connection, 2 at once.
//! Failure shapes, including soft errors (HTTP 200 with `meta.errors[]`): [`errors`].

pub mod errors;
mod http;
pub mod schedule;
pub mod settings;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use reqwest::Method;
use serde_json::{Value, json};

use super::now_millis;
use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};
use settings::Settings;

/// Hangar's own budget for one API connection (Avinode publishes none).
pub const REQUESTS_PER_MINUTE: i64 = 60;

/// The object type of an RFQ.
pub const RFQ: &str = "Rfq";

/// The Avinode connector.
#[derive(Clone, Debug, Default)]
pub struct Avinode;

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Server,
        format!("Avinode answered without {what}"),
    ))
}

/// An Avinode id as one path segment (`arfq-12345678`).
fn avinode_id(id: &str) -> Result<&str, ConnectorError> {
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
            format!("`{id}` is not an Avinode id"),
        )))
    }
}

/// The URL of the RFQ a push names: its `href` when it lies under the base URL, else
/// `{base_url}/rfqs/{id}`; `None` for a push that names no RFQ.
fn rfq_url(settings: &Settings, push: &Value) -> Result<Option<String>, ConnectorError> {
    if push.get("type").and_then(Value::as_str) != Some("TripRequest") {
        return Ok(None);
    }
    let prefix = format!("{}/rfqs/", settings.base_url);
    if let Some(href) = push.get("href").and_then(Value::as_str)
        && let Some(rest) = href.strip_prefix(&prefix)
        && avinode_id(rest).is_ok()
    {
        return Ok(Some(href.to_owned()));
    }
    let id = push.get("id").and_then(Value::as_str).ok_or_else(|| {
        ConnectorError::Failed(JobFailure::new(
            ErrorClass::Client,
            "an Avinode TripRequest push without its RFQ's id".to_owned(),
        ))
    })?;
    Ok(Some(format!("{prefix}{}", avinode_id(id)?)))
}

/// An RFQ (an answer's `data`) as an inbound record, modified at its `updatedOn` (else
/// `createdOn`, else now).
fn rfq_record(data: &Value) -> Result<InboundRecord, ConnectorError> {
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("an RFQ's id"))?;
    let modified_at = ["updatedOn", "createdOn"]
        .iter()
        .find_map(|f| {
            data.get(*f)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        })
        .map_or_else(now_millis, |t| t.with_timezone(&Utc));
    Ok(InboundRecord {
        object_type: RFQ.to_owned(),
        external_id: id.to_owned(),
        modified_at,
        payload: data.clone(),
        concurrency_token: None,
        deleted: false,
    })
}

impl Connector for Avinode {
    fn provider(&self) -> Provider {
        Provider::Avinode
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        match data_type {
            "rfqs" => Some(DataTypeSpec {
                direction: Direction::In,
                object_types: vec![RFQ],
            }),
            "schedules" => Some(DataTypeSpec {
                direction: Direction::Out,
                object_types: vec![schedule::OBJECT_TYPE],
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
        Settings::of(integration)?;
        Ok(RateLimit {
            account: format!("avinode:{}", integration.id),
            per_window: REQUESTS_PER_MINUTE,
            window: Duration::from_secs(60),
            concurrent: 2,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        // Avinode retries a push for 48 hours; RFQs are never read any other way.
        chrono::Duration::hours(48)
    }

    fn lookback(&self) -> chrono::Duration {
        chrono::Duration::zero()
    }

    fn changes_since(
        &self,
        _cx: CallContext,
        _data_type: String,
        _since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        // No list of RFQs is published: they arrive by push (`records_of_push`).
        Box::pin(async { Ok(Page::default()) })
    }

    fn scan(
        &self,
        _cx: CallContext,
        _data_type: String,
        _position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>> {
        Box::pin(async { Ok(ScanPage::default()) })
    }

    fn reads_pushes(&self, data_type: &str) -> bool {
        data_type == "rfqs"
    }

    fn records_of_push(
        &self,
        cx: CallContext,
        _data_type: String,
        push: Value,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let Some(url) = rfq_url(&settings, &push)? else {
                return Ok(Page::default());
            };
            let data = http::call(&cx, &settings, Method::GET, &url, None).await?;
            Ok(Page {
                records: vec![rfq_record(&data)?],
            })
        })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let url = format!("{}/schedules", settings.base_url);
            let data = http::call(&cx, &settings, Method::PUT, &url, Some(&record.data)).await?;
            // The activity is Avinode's under the trip's external id; an id Avinode gives it
            // is kept when the answer has one.
            let external_id = data
                .pointer("/activities/0/id")
                .and_then(Value::as_str)
                .map_or_else(|| record.internal_id.clone(), str::to_owned);
            Ok(Pushed {
                external_id,
                payload: record.data.clone(),
                modified_at: now_millis(),
                concurrency_token: None,
            })
        })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        match data_type {
            "schedules" => &schedule::EVENT_TYPES,
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
            .then(|| schedule::plan(event_type, data))
    }

    fn fetch(
        &self,
        cx: CallContext,
        object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            if object_type != RFQ {
                return Err(ConnectorError::Failed(JobFailure::new(
                    ErrorClass::Client,
                    format!("Avinode's {object_type} records are not read back"),
                )));
            }
            let push = json!({"type": "TripRequest", "id": external_id});
            let url = rfq_url(&settings, &push)?.unwrap_or_default();
            let data = http::call(&cx, &settings, Method::GET, &url, None).await?;
            rfq_record(&data)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_names_its_rfq_under_the_base_url_only() {
        let info = IntegrationInfo {
            id: "int_a".into(),
            workspace_id: "ws".into(),
            provider: Provider::Avinode,
            enabled: true,
            data_types: vec!["rfqs".into()],
            settings: json!({"base_url": "http://127.0.0.1:9/api/"}),
        };
        let s = Settings::of(&info).unwrap();
        let push = |href: &str| json!({"id": "arfq-7", "href": href, "type": "TripRequest", "tripId": "atrip-1"});
        assert_eq!(
            rfq_url(&s, &push("http://127.0.0.1:9/api/rfqs/arfq-7")).unwrap(),
            Some("http://127.0.0.1:9/api/rfqs/arfq-7".into())
        );
        assert_eq!(
            rfq_url(&s, &push("http://169.254.169.254/latest/meta-data")).unwrap(),
            Some("http://127.0.0.1:9/api/rfqs/arfq-7".into()),
            "an href elsewhere is not followed"
        );
        let mut chat = push("x");
        chat["type"] = json!("TripChatSeller");
        assert_eq!(rfq_url(&s, &chat).unwrap(), None);
        let mut bad = push("x");
        bad["id"] = json!("../../admin");
        assert!(rfq_url(&s, &bad).is_err());
        let r = rfq_record(&json!({"id": "arfq-7", "updatedOn": "2026-11-20T10:00:00Z"})).unwrap();
        assert_eq!(r.modified_at.to_rfc3339(), "2026-11-20T10:00:00+00:00");
        assert!(rfq_record(&json!({"tripId": "x"})).is_err());
    }
}
