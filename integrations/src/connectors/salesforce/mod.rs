//! Salesforce (CRM, both ways), over the REST API with the org's OAuth access token.
//!
//! - `customers` in: the customer object (`settings.customer_object`, default `Account`):
//!   `GET /services/data/{v}/sobjects/{Obj}/updated/?start=&end=` (ids changed in a window,
//!   whole minutes, 30 days back) then the records,
//!   `GET …/composite/sobjects/{Obj}?ids=…&fields=…` ([`ID_CHUNK`] ids a call). More than
//!   [`MAX_IDS`] ids narrow the window by halves (never to a part holding none). A cursor older than
//!   [`CHANGES_WINDOW_DAYS`] (Salesforce's 30, a day's margin) starts a full
//!   reconciliation, `GET …/query?q=SELECT … FROM {Obj} ORDER BY Id`, paged with
//!   `nextRecordsUrl`. A record's time is its `SystemModstamp` (else `LastModifiedDate`).
//!   Deletions: the `deleted` feed read after `updated`, from the same start
//!   (`GET …/sobjects/{Obj}/deleted/?start=&end=`, the recycle bin's 15 days, [`deleted`]),
//!   each deleted account removed at once rather than at the next full reconciliation.
//! - `trips` out: trip events upserted by external id,
//!   `PATCH …/sobjects/{trip_object}/{external_id_field}/{trip id}` ([`trip`]): the same
//!   request again is the same record, so a retry never makes a second one. More than one
//!   waiting: sObject Collections, `PATCH …/composite/sobjects/{trip_object}/{external_id_field}`
//!   with up to 200 records a call ([`collections`]).
//!
//! Where the org is: `settings.instance_url` (or `settings.base_url`), required. The token
//! answer's `instance_url` is not kept by the refresh path, so the operator gives it once;
//! a refreshed token is valid on the same instance. Other settings: `api_version` (default
//! [`DEFAULT_API_VERSION`]), `customer_object`, `customer_fields` (a list; `Id`,
//! `LastModifiedDate` and `SystemModstamp` are always read), `trip_object`
//! (`Hangar_Trip__c`), `external_id_field` (`Hangar_Id__c`).
//!
//! The budget is the org's daily API requests ([`limits`]: `Sforce-Limit-Info` corrects the
//! assumed 15 000 a day), 10 calls at once. Failure shapes: [`errors`].

mod collections;
mod deleted;
pub mod errors;
mod http;
pub mod limits;
mod settings;
pub mod trip;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};
use settings::Settings;

/// The REST API version used unless `settings.api_version` names another.
pub const DEFAULT_API_VERSION: &str = "v62.0";

/// Ids one records call asks for.
pub const ID_CHUNK: usize = 200;

/// The most ids one page of the engine reads (more narrow the window).
pub const MAX_IDS: usize = 2000;

/// How far back `updated` is trusted (Salesforce answers 30 days; one day's margin).
pub const CHANGES_WINDOW_DAYS: i64 = 29;

/// The Salesforce connector; it keeps the daily usage each org last reported.
#[derive(Clone, Debug, Default)]
pub struct Salesforce {
    usages: limits::Usages,
}

/// Salesforce's date-time in a query (`2026-12-01T10:00:00+00:00`; seconds are ignored).
fn sf_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Salesforce's date-time in a record (`2026-12-01T10:00:00.000+0000`).
fn parse_sf_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Salesforce {
    async fn get(
        &self,
        cx: &CallContext,
        settings: &Settings,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        http::call(
            cx,
            &self.usages,
            &settings.instance_url,
            Method::GET,
            url,
            query,
            None,
        )
        .await
        .map(|(_, body)| body)
    }
}

impl Connector for Salesforce {
    fn provider(&self) -> Provider {
        Provider::Salesforce
    }

    fn data_types(&self) -> &'static [&'static str] {
        &["customers", "trips"]
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        match data_type {
            "customers" => Some(DataTypeSpec {
                direction: Direction::In,
                object_types: vec!["Account"],
            }),
            "trips" => Some(DataTypeSpec {
                direction: Direction::Out,
                object_types: vec!["Trip"],
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
        let settings = Settings::of(integration)?;
        let per_day = self
            .usages
            .of(&settings.instance_url)
            .map_or(limits::DEFAULT_DAILY_REQUESTS, |u| u.max);
        Ok(RateLimit {
            account: format!("salesforce:{}", settings.instance_url),
            per_window: per_day,
            window: Duration::from_secs(24 * 3600),
            concurrent: 10,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::days(CHANGES_WINDOW_DAYS)
    }

    fn lookback(&self) -> chrono::Duration {
        // `updated` counts whole minutes.
        chrono::Duration::minutes(1)
    }

    fn changes_since(
        &self,
        cx: CallContext,
        _data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let object = settings.customer_object.clone();
            let url = format!("{}/sobjects/{object}/updated/", settings.api());
            let now = Utc::now();
            let start = since.min(now - chrono::Duration::minutes(1));
            // The window [start, start + span]: narrowed by halves while it holds more than
            // MAX_IDS ids, between a span known to hold none (`quiet`) and one known to hold
            // too many (`busy`), so a narrowed page is never empty while changes exist.
            let minute = chrono::Duration::minutes(1);
            let (mut quiet, mut busy) = (chrono::Duration::zero(), None);
            let mut span = now - start;
            let ids = loop {
                let end = start + span;
                let body = this
                    .get(
                        &cx,
                        &settings,
                        &url,
                        &[("start", sf_time(start)), ("end", sf_time(end))],
                    )
                    .await?;
                let ids: Vec<String> = body
                    .get("ids")
                    .and_then(Value::as_array)
                    .ok_or_else(|| malformed("updated's ids"))?
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect();
                if ids.len() > MAX_IDS {
                    busy = Some(span);
                } else if ids.is_empty() && busy.is_some() {
                    quiet = span;
                } else {
                    break ids;
                }
                match busy {
                    // Within a minute or two the ids cannot be told apart: all of them.
                    Some(b) if b - quiet <= minute * 2 && ids.len() > MAX_IDS => break ids,
                    Some(b) if b - quiet <= minute * 2 => span = b,
                    Some(b) => span = quiet + (b - quiet) / 2,
                    None => break ids,
                }
            };
            let mut records = Vec::new();
            let fetch_url = format!("{}/composite/sobjects/{object}", settings.api());
            for chunk in ids.chunks(ID_CHUNK) {
                let body = this
                    .get(
                        &cx,
                        &settings,
                        &fetch_url,
                        &[
                            ("ids", chunk.join(",")),
                            ("fields", settings.fields.join(",")),
                        ],
                    )
                    .await?;
                let items = body
                    .as_array()
                    .ok_or_else(|| malformed("the records asked for"))?;
                // A record deleted since is `null`: the full reconciliation finds it gone.
                for item in items.iter().filter(|i| !i.is_null()) {
                    records.push(record_of(&object, item)?);
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
        let this = self.clone();
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let object = settings.customer_object.clone();
            let body = match position {
                None => {
                    let q = format!(
                        "SELECT {} FROM {object} ORDER BY Id",
                        settings.fields.join(", ")
                    );
                    let url = format!("{}/query", settings.api());
                    this.get(&cx, &settings, &url, &[("q", q)]).await?
                }
                Some(next) => {
                    if !next.starts_with("/services/data/") || next.contains("..") {
                        return Err(ConnectorError::Failed(JobFailure::new(
                            ErrorClass::Internal,
                            format!("bad Salesforce scan position `{next}`"),
                        )));
                    }
                    let url = format!("{}{next}", settings.instance_url);
                    this.get(&cx, &settings, &url, &[]).await?
                }
            };
            let records = body
                .get("records")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("a query's records"))?
                .iter()
                .map(|item| record_of(&object, item))
                .collect::<Result<Vec<_>, _>>()?;
            let done = body.get("done").and_then(Value::as_bool).unwrap_or(true);
            let next = if done {
                None
            } else {
                Some(
                    body.get("nextRecordsUrl")
                        .and_then(Value::as_str)
                        .ok_or_else(|| malformed("a query's nextRecordsUrl"))?
                        .to_owned(),
                )
            };
            Ok(ScanPage { records, next })
        })
    }

    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let object = settings.sobject(&record.object_type);
            let url = format!(
                "{}/sobjects/{object}/{}/{}",
                settings.api(),
                settings.external_id_field,
                record.internal_id
            );
            let (_, answer) = http::call(
                &cx,
                &this.usages,
                &settings.instance_url,
                Method::PATCH,
                &url,
                &[],
                Some(&record.data),
            )
            .await?;
            if answer.get("success").and_then(Value::as_bool) == Some(false) {
                return Err(errors::classify(
                    400,
                    None,
                    answer.get("errors").unwrap_or(&Value::Null),
                ));
            }
            let now = crate::connectors::now_millis();
            Ok(pushed(&settings, &record, &answer, now))
        })
    }

    fn push_batch(&self, _object_type: &str) -> usize {
        collections::COLLECTION_SIZE
    }

    fn push_many(
        &self,
        cx: CallContext,
        records: Vec<OutboundRecord>,
    ) -> BoxFuture<'static, Result<Vec<Result<Pushed, ConnectorError>>, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move { this.upsert_collection(&cx, &records).await })
    }

    fn removals_feed(&self, data_type: &str) -> bool {
        data_type == "customers"
    }

    fn removed_since(
        &self,
        cx: CallContext,
        _data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Option<Vec<InboundRecord>>, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move { this.deleted_since(&cx, since).await })
    }

    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        match data_type {
            "trips" => &trip::EVENT_TYPES,
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
            .then(|| trip::plan(event_type, data))
    }

    fn fetch(
        &self,
        cx: CallContext,
        object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            if !external_id.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }) {
                return Err(ConnectorError::Failed(JobFailure::new(
                    ErrorClass::Client,
                    format!("`{external_id}` is not a Salesforce id"),
                )));
            }
            let object = settings.sobject(&object_type);
            let url = format!("{}/sobjects/{object}/{external_id}", settings.api());
            let body = this.get(&cx, &settings, &url, &[]).await?;
            let mut read = record_of(&object, &body)?;
            read.object_type = object_type;
            Ok(read)
        })
    }
}

/// What an upsert of `record` left at Salesforce (`answer`: the call's, or a collection
/// result). Older API versions answer an update with 204 and no body: the record is then
/// reached by its external id.
fn pushed(
    settings: &Settings,
    record: &OutboundRecord,
    answer: &Value,
    now: DateTime<Utc>,
) -> Pushed {
    let external_id = answer
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}/{}", settings.external_id_field, record.internal_id));
    let mut payload = record.data.clone();
    if let Some(map) = payload.as_object_mut() {
        map.insert(
            settings.external_id_field.clone(),
            json!(record.internal_id),
        );
    }
    Pushed {
        external_id,
        payload,
        modified_at: now,
        concurrency_token: None,
    }
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Server,
        format!("Salesforce answered without {what}"),
    ))
}

/// One record as an inbound record: `Id`, its time (`SystemModstamp`, else
/// `LastModifiedDate`), without the `attributes` Salesforce adds.
fn record_of(object: &str, item: &Value) -> Result<InboundRecord, ConnectorError> {
    let id = item
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(&format!("{object}.Id")))?;
    let modified_at = ["SystemModstamp", "LastModifiedDate"]
        .iter()
        .find_map(|f| item.get(*f).and_then(Value::as_str).and_then(parse_sf_time))
        .ok_or_else(|| malformed(&format!("{object}.SystemModstamp")))?;
    let mut payload = item.clone();
    if let Some(map) = payload.as_object_mut() {
        map.remove("attributes");
    }
    Ok(InboundRecord {
        object_type: object.to_owned(),
        external_id: id.to_owned(),
        modified_at,
        payload,
        concurrency_token: None,
        deleted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_settings_are_read_from_salesforce_shapes() {
        let r = record_of(
            "Account",
            &json!({"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001"},
                "Id": "001", "Name": "Acme", "LastModifiedDate": "2026-11-30T10:00:00.000+0000",
                "SystemModstamp": "2026-11-30T10:05:00.000+0000"}),
        )
        .unwrap();
        assert_eq!(r.modified_at.to_rfc3339(), "2026-11-30T10:05:00+00:00");
        assert!(r.payload.get("attributes").is_none());
        let info = |settings: Value| IntegrationInfo {
            id: "int_1".into(),
            workspace_id: "ws".into(),
            provider: Provider::Salesforce,
            enabled: true,
            data_types: vec![],
            settings,
        };
        let s = Settings::of(&info(
            json!({"instance_url": "https://acme.my.salesforce.com/"}),
        ))
        .unwrap();
        assert_eq!(
            s.api(),
            "https://acme.my.salesforce.com/services/data/v62.0"
        );
        for (settings, field) in [
            (json!({}), "settings.instance_url"),
            (json!({"instance_url": "ftp://x"}), "settings.instance_url"),
            (
                json!({"base_url": "https://x", "api_version": "62"}),
                "settings.api_version",
            ),
            (
                json!({"base_url": "https://x", "trip_object": "Trip; DROP"}),
                "settings.trip_object",
            ),
            (
                json!({"base_url": "https://x", "customer_fields": ["Name", "a b"]}),
                "settings.customer_fields",
            ),
        ] {
            let Err(error) = Settings::of(&info(settings)) else {
                panic!("{field} accepted")
            };
            assert!(
                error.message.contains(field),
                "{} names {field}",
                error.message
            );
        }
    }

    #[test]
    fn the_daily_budget_follows_what_salesforce_reported() {
        let connector = Salesforce::default();
        let info = IntegrationInfo {
            id: "int_1".into(),
            workspace_id: "ws".into(),
            provider: Provider::Salesforce,
            enabled: true,
            data_types: vec![],
            settings: json!({"instance_url": "https://acme.my.salesforce.com"}),
        };
        let token = AccessToken {
            token: "t".into(),
            version: 1,
        };
        let before = connector.rate_limit(&info, &token).unwrap();
        assert_eq!(before.per_window, limits::DEFAULT_DAILY_REQUESTS);
        assert_eq!(before.window, Duration::from_secs(86_400));
        connector
            .usages
            .record("https://acme.my.salesforce.com", "api-usage=12/250000");
        let after = connector.rate_limit(&info, &token).unwrap();
        assert_eq!(after.per_window, 250_000);
        assert_eq!(after.account, "salesforce:https://acme.my.salesforce.com");
    }
}
