//! Stripe Connect (billing): the platform's secret key (`credentials.api_key`) acting for a
//! connected account (`Stripe-Account: settings.account_id`).
//!
//! - `payments` in: PaymentIntents from the events feed, `GET /v1/events?type=payment_intent.*
//!   &created[gte]=…&created[lte]=…&limit=100`, paged with `starting_after` (Stripe lists
//!   newest first, so a page of the engine is every event of a window from the cursor, read
//!   to the end: an hour at first, narrowed by halves while it holds more than
//!   [`MAX_LIST_PAGES`] lists, widened while it holds nothing past the cursor and ends before
//!   now; the cursor never passes an event not read). Stripe keeps events 30 days: an older
//!   cursor (a day's margin: [`CHANGES_WINDOW_DAYS`]) starts a full reconciliation,
//!   `GET /v1/payment_intents?limit=100&starting_after=`.
//! - `payment_intents` out: `invoice.sent` events become `POST /v1/payment_intents`
//!   (form-encoded, `Idempotency-Key` = the engine's key of the write: a retry after a lost
//!   answer is the same request), an update `POST /v1/payment_intents/{id}`.
//!
//! A PaymentIntent has no modification time: records from the feed carry their event's
//! `created`, from a scan or a read their own `created`, a push the time of its answer.
//! Settings: `account_id` (`acct_…`, required), `base_url` (default
//! `https://api.stripe.com`; paths `/v1/…` below it). The budget is per connected account:
//! 100 requests a second with a live key, 25 with a test key (`sk_test_`/`rk_test_`).
//! Failure shapes: [`errors`].

pub mod errors;
mod http;
pub mod payment_intent;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use serde_json::Value;

use super::now_millis;
use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;
use crate::sync::connector::{
    CallContext, Connector, ConnectorError, DataTypeSpec, OutboundPlan, OutboundRecord, Page,
    Pushed, RateLimit, ScanPage,
};
use crate::sync::{Direction, InboundRecord, RecordClass};

/// Stripe's API address (`settings.base_url` replaces it).
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// Objects in one list answer (Stripe's maximum).
pub const LIST_LIMIT: usize = 100;

/// Lists read for one page of the engine before the window is narrowed.
pub const MAX_LIST_PAGES: usize = 10;

/// The first window the events feed is read in, from the cursor (seconds): narrowed while it
/// holds more than [`MAX_LIST_PAGES`] lists, widened while it holds nothing new.
pub const FIRST_SPAN_SECS: i64 = 3600;

/// How far back the events feed is trusted (Stripe keeps 30 days; one day's margin).
pub const CHANGES_WINDOW_DAYS: i64 = 29;

/// The Stripe Connect connector.
#[derive(Clone, Debug, Default)]
pub struct Stripe;

struct Settings {
    base_url: String,
    account_id: String,
}

impl Settings {
    fn of(integration: &IntegrationInfo) -> Result<Settings, JobFailure> {
        let bad = |field: &str, why: &str| {
            JobFailure::new(
                ErrorClass::Client,
                format!("integration {}: settings.{field} {why}", integration.id),
            )
        };
        let account_id = match integration.settings.get("account_id") {
            Some(Value::String(s))
                if s.starts_with("acct_")
                    && s.len() > 5
                    && s.len() <= 255
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                s.clone()
            }
            Some(_) => {
                return Err(bad(
                    "account_id",
                    "must be the connected account's id (acct_…)",
                ));
            }
            None => return Err(bad("account_id", "is required for Stripe Connect")),
        };
        let base_url = match integration.settings.get("base_url") {
            None | Some(Value::Null) => DEFAULT_BASE_URL.to_owned(),
            Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
                s.trim_end_matches('/').to_owned()
            }
            Some(_) => return Err(bad("base_url", "must be an http(s) URL")),
        };
        Ok(Settings {
            base_url,
            account_id,
        })
    }
}

/// Whether `key` is a test-mode key (its budget is 25 requests a second).
pub fn test_mode(key: &str) -> bool {
    key.starts_with("sk_test_") || key.starts_with("rk_test_")
}

impl Connector for Stripe {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    fn data_types(&self) -> &'static [&'static str] {
        &["payments", "payment_intents"]
    }

    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec> {
        match data_type {
            "payments" => Some(DataTypeSpec {
                direction: Direction::In,
                object_types: vec!["PaymentIntent"],
            }),
            "payment_intents" => Some(DataTypeSpec {
                direction: Direction::Out,
                object_types: vec!["PaymentIntent"],
            }),
            _ => None,
        }
    }

    fn record_class(&self, _object_type: &str) -> RecordClass {
        RecordClass::Financial
    }

    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        token: &AccessToken,
    ) -> Result<RateLimit, JobFailure> {
        let settings = Settings::of(integration)?;
        let per_second = if test_mode(&token.token) { 25 } else { 100 };
        Ok(RateLimit {
            account: format!("stripe:{}", settings.account_id),
            per_window: per_second,
            window: Duration::from_secs(1),
            concurrent: per_second / 4,
        })
    }

    fn changes_window(&self) -> chrono::Duration {
        chrono::Duration::days(CHANGES_WINDOW_DAYS)
    }

    fn lookback(&self) -> chrono::Duration {
        // Event times are whole seconds; a few more cover an event committed late.
        chrono::Duration::seconds(5)
    }

    fn changes_since(
        &self,
        cx: CallContext,
        _data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let url = format!("{}/v1/events", settings.base_url);
            let gte = since.timestamp();
            let now = Utc::now().timestamp();
            // A window [gte, gte + span]: `quiet`, a span known to hold nothing past the
            // cursor; `busy`, one known to hold more than the lists read (and its events).
            let mut quiet = 0_i64;
            let mut busy: Option<(i64, Vec<Value>)> = None;
            let mut span = FIRST_SPAN_SECS;
            loop {
                let (events, complete) = list_events(&cx, &settings, &url, gte, gte + span).await?;
                let past_since = events
                    .iter()
                    .any(|e| e.get("created").and_then(Value::as_i64) > Some(gte));
                if !complete {
                    busy = Some((span, events));
                } else if !past_since && gte + span < now {
                    quiet = span;
                } else {
                    // Every event of the window (or nothing newer than the cursor exists).
                    return Ok(Page {
                        records: records_of_events(&events)?,
                    });
                }
                span = match &busy {
                    Some((b, _)) if b - quiet > 1 => quiet + (b - quiet) / 2,
                    // One second holds more than the lists read: the newest of it (the
                    // engine re-reads the tie next run).
                    Some((_, events)) => {
                        return Ok(Page {
                            records: records_of_events(events)?,
                        });
                    }
                    None => span.saturating_mul(4),
                };
            }
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
            let url = format!("{}/v1/payment_intents", settings.base_url);
            let mut query = vec![("limit", LIST_LIMIT.to_string())];
            if let Some(after) = position {
                query.push(("starting_after", after));
            }
            let body = http::get(&cx, &settings.account_id, &url, &query).await?;
            let (items, has_more) = list_of(&body)?;
            let records = items
                .iter()
                .map(|pi| record_of(pi, None))
                .collect::<Result<Vec<_>, _>>()?;
            let next = if has_more {
                records.last().map(|r| r.external_id.clone())
            } else {
                None
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
            let mut body = record.data.clone();
            let url = match &record.external_id {
                Some(id) => format!(
                    "{}/v1/payment_intents/{}",
                    settings.base_url,
                    path_segment(id)?
                ),
                None => {
                    if let Some(map) = body.as_object_mut() {
                        map.insert(
                            "automatic_payment_methods".into(),
                            serde_json::json!({"enabled": true}),
                        );
                    }
                    format!("{}/v1/payment_intents", settings.base_url)
                }
            };
            let form = payment_intent::form_of(&body);
            let saved = http::post_form(
                &cx,
                &settings.account_id,
                &url,
                &form,
                &record.idempotency_key,
            )
            .await?;
            let read = record_of(&saved, Some(now_millis()))?;
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
            "payment_intents" => &payment_intent::EVENT_TYPES,
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
            .then(|| payment_intent::plan(data))
    }

    fn fetch(
        &self,
        cx: CallContext,
        _object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>> {
        Box::pin(async move {
            let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
            let url = format!(
                "{}/v1/payment_intents/{}",
                settings.base_url,
                path_segment(&external_id)?
            );
            let body = http::get(&cx, &settings.account_id, &url, &[]).await?;
            record_of(&body, None)
        })
    }
}

/// The events of `[gte, lte]`, newest first, in at most [`MAX_LIST_PAGES`] lists; whether
/// that was all of them.
async fn list_events(
    cx: &CallContext,
    settings: &Settings,
    url: &str,
    gte: i64,
    lte: i64,
) -> Result<(Vec<Value>, bool), ConnectorError> {
    let mut events: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let mut query = vec![
            ("type", "payment_intent.*".to_owned()),
            ("created[gte]", gte.to_string()),
            ("created[lte]", lte.to_string()),
            ("limit", LIST_LIMIT.to_string()),
        ];
        if let Some(after) = &after {
            query.push(("starting_after", after.clone()));
        }
        let body = http::get(cx, &settings.account_id, url, &query).await?;
        let (items, has_more) = list_of(&body)?;
        after = items
            .last()
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        events.extend(items);
        if !has_more || after.is_none() {
            return Ok((events, true));
        }
    }
    Ok((events, false))
}

/// An id as one path segment (Stripe ids are letters, digits and `_`).
fn path_segment(id: &str) -> Result<&str, ConnectorError> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(id)
    } else {
        Err(ConnectorError::Failed(JobFailure::new(
            ErrorClass::Client,
            format!("`{id}` is not a Stripe id"),
        )))
    }
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Server,
        format!("Stripe answered without {what}"),
    ))
}

/// A list answer's `data` and `has_more`.
fn list_of(body: &Value) -> Result<(Vec<Value>, bool), ConnectorError> {
    let items = body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| malformed("a list's data"))?;
    let has_more = body
        .get("has_more")
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed("a list's has_more"))?;
    Ok((items, has_more))
}

/// The PaymentIntents of `events` (newest first, as Stripe lists them): each one once, as its
/// newest event shows it, oldest first.
fn records_of_events(events: &[Value]) -> Result<Vec<InboundRecord>, ConnectorError> {
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    for event in events {
        let created = event
            .get("created")
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| malformed("an event's created"))?;
        let object = event
            .pointer("/data/object")
            .ok_or_else(|| malformed("an event's data.object"))?;
        if object.get("object").and_then(Value::as_str) != Some("payment_intent") {
            continue;
        }
        let record = record_of(object, Some(created))?;
        if seen.insert(record.external_id.clone()) {
            records.push(record);
        }
    }
    records.sort_by(|a, b| (a.modified_at, &a.external_id).cmp(&(b.modified_at, &b.external_id)));
    Ok(records)
}

/// One PaymentIntent as an inbound record, modified at `at` (default: its `created`).
fn record_of(pi: &Value, at: Option<DateTime<Utc>>) -> Result<InboundRecord, ConnectorError> {
    let id = pi
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a PaymentIntent's id"))?;
    let modified_at = match at {
        Some(at) => at,
        None => pi
            .get("created")
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| malformed("a PaymentIntent's created"))?,
    };
    Ok(InboundRecord {
        object_type: "PaymentIntent".into(),
        external_id: id.to_owned(),
        modified_at,
        payload: pi.clone(),
        concurrency_token: None,
        deleted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_become_each_payment_intent_once_as_its_newest_event_shows_it() {
        let events = vec![
            json!({"id": "evt_3", "object": "event", "type": "payment_intent.succeeded", "created": 300,
                "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "created": 100}}}),
            json!({"id": "evt_2", "object": "event", "type": "payment_intent.created", "created": 200,
                "data": {"object": {"id": "pi_2", "object": "payment_intent", "status": "requires_payment_method", "created": 200}}}),
            json!({"id": "evt_1", "object": "event", "type": "payment_intent.created", "created": 100,
                "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "requires_payment_method", "created": 100}}}),
        ];
        let records = records_of_events(&events).unwrap();
        let ids: Vec<_> = records.iter().map(|r| r.external_id.as_str()).collect();
        assert_eq!(ids, ["pi_2", "pi_1"]);
        assert_eq!(records[1].payload["status"], "succeeded");
        assert_eq!(records[1].modified_at.timestamp(), 300);
        assert!(test_mode("sk_test_abc") && !test_mode("sk_live_abc"));
    }
}
