//! The simulator's objects: payments and invoices with `Id`, `SyncToken` and
//! `MetaData.LastUpdatedTime`, the query parser, and the invoice endpoint (create, sparse
//! update with a `SyncToken` check, idempotent `requestid`).

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};

use super::{Books, QboSim, fault, gate};

/// A time as QuickBooks writes it: seconds, with the company's offset (Pacific, −08:00).
pub fn qbo_time(t: DateTime<Utc>) -> String {
    let pacific = FixedOffset::west_opt(8 * 3600).expect("offset");
    t.with_timezone(&pacific)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `MetaData.LastUpdatedTime` of an object.
pub fn updated_at(object: &Value) -> DateTime<Utc> {
    object
        .pointer("/MetaData/LastUpdatedTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// A payment's own fields.
pub fn payment(amount: f64) -> Value {
    json!({
        "TotalAmt": amount,
        "CustomerRef": {"value": "58"},
        "CurrencyRef": {"value": "USD"},
        "TxnDate": "2026-11-20",
        "UnappliedAmt": 0,
        "domain": "QBO",
        "sparse": false,
    })
}

/// An invoice's own fields.
pub fn invoice(amount: f64) -> Value {
    json!({
        "CustomerRef": {"value": "58"},
        "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
        "TotalAmt": amount,
        "Balance": amount,
        "DueDate": "2026-12-31",
        "domain": "QBO",
        "sparse": false,
    })
}

/// Stores a new object of `entity` (its `Id`, `SyncToken` "0" and times set); its id.
pub(crate) fn insert(
    books: &mut Books,
    entity: &str,
    mut object: Value,
    at: DateTime<Utc>,
) -> String {
    let id = books.next_id;
    books.next_id += 1;
    let map = object.as_object_mut().expect("object");
    map.insert("Id".into(), json!(id.to_string()));
    map.insert("SyncToken".into(), json!("0"));
    map.insert(
        "MetaData".into(),
        json!({"CreateTime": qbo_time(at), "LastUpdatedTime": qbo_time(at)}),
    );
    books
        .objects
        .entry(entity.to_owned())
        .or_default()
        .insert(id, object);
    id.to_string()
}

/// Edits an object: `f`, then `SyncToken` + 1 and `LastUpdatedTime` = `at`.
pub(crate) fn edit(
    books: &mut Books,
    entity: &str,
    id: &str,
    at: DateTime<Utc>,
    f: impl FnOnce(&mut Value),
) {
    let id: u64 = id.parse().expect("numeric id");
    let object = books
        .objects
        .get_mut(entity)
        .and_then(|m| m.get_mut(&id))
        .expect("object exists");
    f(object);
    let token: u64 = object["SyncToken"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    object["SyncToken"] = json!((token + 1).to_string());
    object["MetaData"]["LastUpdatedTime"] = json!(qbo_time(at));
}

/// `select * from ENTITY [STARTPOSITION n] [MAXRESULTS m]` → (entity, n, m).
pub fn parse_query(text: &str) -> Option<(String, usize, usize)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    if lower.len() < 4 || lower[0] != "select" || lower[1] != "*" || lower[2] != "from" {
        return None;
    }
    let entity = words[3].to_owned();
    let mut start = 1;
    let mut max = 100;
    let mut i = 4;
    while i + 1 < words.len() {
        match lower[i].as_str() {
            "startposition" => start = words[i + 1].parse().ok()?,
            "maxresults" => max = words[i + 1].parse().ok()?,
            _ => return None,
        }
        i += 2;
    }
    Some((entity, start, max.min(1000)))
}

pub(super) async fn post_invoice(
    State(sim): State<QboSim>,
    UrlPath(realm): UrlPath<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(answer) = gate(&sim, "invoice", &realm, &headers).await {
        return answer;
    }
    let mut books = sim.books.lock().unwrap();
    let request_id = params.get("requestid").cloned();
    if let Some((status, answer)) = request_id.as_ref().and_then(|r| books.requests.get(r)) {
        return (*status, axum::Json(answer.clone())).into_response();
    }
    let now = Utc::now();
    let (status, answer) = match body.get("Id").and_then(Value::as_str) {
        None => {
            let id = insert(&mut books, "Invoice", body.clone(), now);
            let invoice = books.objects["Invoice"][&id.parse::<u64>().unwrap()].clone();
            (
                StatusCode::OK,
                json!({"Invoice": invoice, "time": qbo_time(now)}),
            )
        }
        Some(id) => {
            let held = id.parse::<u64>().ok().and_then(|n| {
                books
                    .objects
                    .get("Invoice")
                    .and_then(|m| m.get(&n))
                    .cloned()
            });
            match held {
                None => (
                    StatusCode::BAD_REQUEST,
                    fault("ValidationFault", "610", "Object Not Found", id),
                ),
                Some(held) if held["SyncToken"] != body["SyncToken"] => (
                    StatusCode::BAD_REQUEST,
                    fault(
                        "ValidationFault",
                        "5010",
                        "Stale Object Error",
                        "You and another user were working on the same thing.",
                    ),
                ),
                Some(_) => {
                    let id = id.to_owned();
                    edit(&mut books, "Invoice", &id, now, |invoice| {
                        for (k, v) in body.as_object().into_iter().flatten() {
                            if !matches!(k.as_str(), "Id" | "SyncToken" | "sparse" | "MetaData") {
                                invoice[k] = v.clone();
                            }
                        }
                    });
                    let invoice = books.objects["Invoice"][&id.parse::<u64>().unwrap()].clone();
                    (
                        StatusCode::OK,
                        json!({"Invoice": invoice, "time": qbo_time(now)}),
                    )
                }
            }
        }
    };
    if let Some(r) = request_id {
        books.requests.insert(r, (status, answer.clone()));
    }
    if books.switches.lose_next_answers > 0 {
        books.switches.lose_next_answers -= 1;
        return (StatusCode::GATEWAY_TIMEOUT, "upstream timed out").into_response();
    }
    (status, axum::Json(answer)).into_response()
}

pub(super) async fn get_invoice(
    State(sim): State<QboSim>,
    UrlPath((realm, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = gate(&sim, "invoice", &realm, &headers).await {
        return answer;
    }
    let books = sim.books.lock().unwrap();
    let found = id.parse::<u64>().ok().and_then(|n| {
        books
            .objects
            .get("Invoice")
            .and_then(|m| m.get(&n))
            .cloned()
    });
    match found {
        Some(invoice) => {
            axum::Json(json!({"Invoice": invoice, "time": qbo_time(Utc::now())})).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(fault("ValidationFault", "610", "Object Not Found", &id)),
        )
            .into_response(),
    }
}
