//! An Avinode simulator on loopback, for the Avinode connector's tests. Our own
//! implementation of the shapes of Avinode's public API documentation (nothing copied), under
//! `/api` like the sandbox:
//!
//! - every answer is `{"meta": {"errors": […], "warnings": […]}, "data": …}`;
//! - every call needs `Authorization: Bearer` [`AUTH_TOKEN`] and `X-Avinode-ApiToken`
//!   [`API_TOKEN`] (else 401), `X-Avinode-SentTimestamp` (ISO 8601, within 5 minutes of now)
//!   and `X-Avinode-Product` (else 400 naming the header);
//! - `GET /api/rfqs/{id}` — an RFQ (404 for an unknown one);
//! - `PUT /api/schedules` — an aircraft's activities, kept by external id; an unknown tail
//!   (not in [`TAILS`]) is refused the Avinode way: HTTP 200 with `meta.errors[]`.
//!
//! Switches ([`Switches`]): the next n calls answer 429 with `Retry-After`, or 200 with a soft
//! error of a given code and title, or 401. [`AvinodeSim::calls`] counts answers by route.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The application's API token (`X-Avinode-ApiToken`).
pub const API_TOKEN: &str = "avi-app-token-1";
/// The API connection's authentication token (the bearer).
pub const AUTH_TOKEN: &str = "eyJhbGciOiJIUzUxMiJ9.sim-connection.sig";
/// The credential Hangar stores: `"<api token>:<authentication token>"`.
pub fn credential() -> String {
    format!("{API_TOKEN}:{AUTH_TOKEN}")
}

/// The operator's fleet.
pub const TAILS: [&str; 2] = ["N123AB", "N456CD"];

/// What the simulator does on its next answers.
#[derive(Clone, Debug, Default)]
pub struct Switches {
    /// Answer 429 with this `Retry-After` to the next n calls.
    pub throttle_next: u32,
    pub retry_after: Option<String>,
    /// Answer 200 with this soft error (code, title) to the next n calls.
    pub soft_error_next: u32,
    pub soft_error: (String, String),
    /// Answer 401 to every call.
    pub refuse_tokens: bool,
}

#[derive(Default)]
struct Account {
    switches: Switches,
    rfqs: HashMap<String, Value>,
    /// Uploaded activities by tail, then external id.
    schedules: BTreeMap<String, BTreeMap<String, Value>>,
    calls: HashMap<String, u32>,
    next: u64,
}

/// A running simulator.
#[derive(Clone)]
pub struct AvinodeSim {
    /// `http://127.0.0.1:PORT/api`: the base URL.
    pub base: String,
    account: Arc<Mutex<Account>>,
}

fn answer(status: StatusCode, errors: Value, data: Value) -> Response {
    let body = json!({"meta": {"errors": errors, "warnings": [], "infos": []}, "data": data});
    (status, axum::Json(body)).into_response()
}

fn count(account: &mut Account, route: &str, response: Response) -> Response {
    *account.calls.entry(route.to_owned()).or_default() += 1;
    response
}

/// Headers, tokens and switches; `Err` is the answer to give (already counted).
fn gate(account: &mut Account, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for required in ["x-avinode-senttimestamp", "x-avinode-product"] {
        if header(required).is_none() {
            let refused = answer(
                StatusCode::BAD_REQUEST,
                json!([{"title": format!("Missing header {required}"), "code": "ERR_INPUT_HEADER_MISSING"}]),
                Value::Null,
            );
            return Err(Box::new(count(account, "400", refused)));
        }
    }
    let sent = header("x-avinode-senttimestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if sent.is_none_or(|t| (Utc::now() - t).abs() >= Duration::minutes(5)) {
        let refused = answer(
            StatusCode::BAD_REQUEST,
            json!([{"title": "X-Avinode-SentTimestamp is not a current ISO 8601 time", "code": "ERR_INPUT_HEADER_INVALID"}]),
            Value::Null,
        );
        return Err(Box::new(count(account, "400", refused)));
    }
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    if account.switches.refuse_tokens
        || bearer != Some(AUTH_TOKEN)
        || header("x-avinode-apitoken") != Some(API_TOKEN)
    {
        let refused = answer(
            StatusCode::UNAUTHORIZED,
            json!([{"title": "Unauthorized", "code": "ERR_UNAUTHORIZED"}]),
            Value::Null,
        );
        return Err(Box::new(count(account, "401", refused)));
    }
    if account.switches.throttle_next > 0 {
        account.switches.throttle_next -= 1;
        let mut refused = answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!([{"title": "Too many requests"}]),
            Value::Null,
        );
        if let Some(wait) = account.switches.retry_after.clone()
            && let Ok(value) = wait.parse()
        {
            refused.headers_mut().insert("retry-after", value);
        }
        return Err(Box::new(count(account, "429", refused)));
    }
    if account.switches.soft_error_next > 0 {
        account.switches.soft_error_next -= 1;
        let (code, title) = account.switches.soft_error.clone();
        let soft = answer(
            StatusCode::OK,
            json!([{"title": title, "code": code}]),
            Value::Null,
        );
        return Err(Box::new(count(account, "soft", soft)));
    }
    Ok(())
}

impl AvinodeSim {
    /// Starts a simulator with no RFQs.
    pub async fn start() -> AvinodeSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let base = format!("http://{}/api", listener.local_addr().expect("addr"));
        let sim = AvinodeSim {
            base,
            account: Arc::new(Mutex::new(Account::default())),
        };
        let app = Router::new()
            .route("/api/rfqs/{id}", get(rfq))
            .route("/api/schedules", put(schedules))
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// Changes the switches.
    pub fn switch(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.account.lock().unwrap().switches);
    }

    /// How many answers `route` gave (`rfq`, `schedules`, `soft`, `400`, `401`, `404`, `429`).
    pub fn calls(&self, route: &str) -> u32 {
        let account = self.account.lock().unwrap();
        account.calls.get(route).copied().unwrap_or(0)
    }

    /// A broker sends the operator an RFQ now; its id.
    pub fn add_rfq(&self, from: &str, to: &str) -> String {
        let mut account = self.account.lock().unwrap();
        account.next += 1;
        let id = format!("arfq-{:08}", 40_000_000 + account.next);
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let trip = format!("atrip-{}", account.next);
        account.rfqs.insert(
            id.clone(),
            json!({"id": id, "tripId": trip, "status": "Open",
                "createdOn": now, "updatedOn": now,
                "segments": [{"startAirport": {"icao": from}, "endAirport": {"icao": to},
                    "dateTime": {"date": "2026-12-10", "time": "14:00"}, "paxCount": "4"}],
                "sellerCompany": {"id": "acmp-1"}}),
        );
        id
    }

    /// The push Avinode sends for RFQ `id`.
    pub fn push_of(&self, id: &str) -> String {
        json!({"id": id, "href": format!("{}/rfqs/{id}", self.base), "type": "TripRequest",
            "tripId": "atrip-1"})
        .to_string()
    }

    /// The activities uploaded for `tail`, by external id.
    pub fn schedule(&self, tail: &str) -> BTreeMap<String, Value> {
        let account = self.account.lock().unwrap();
        account.schedules.get(tail).cloned().unwrap_or_default()
    }
}

async fn rfq(
    State(sim): State<AvinodeSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    match account.rfqs.get(&id).cloned() {
        Some(rfq) => count(&mut account, "rfq", answer(StatusCode::OK, json!([]), rfq)),
        None => {
            let missing = answer(
                StatusCode::NOT_FOUND,
                json!([{"title": "Not found", "code": "ERR_RFQ_NOT_FOUND"}]),
                Value::Null,
            );
            count(&mut account, "404", missing)
        }
    }
}

async fn schedules(
    State(sim): State<AvinodeSim>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    let tail = body
        .pointer("/aircraft/tailNumber")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let activities = body.get("activities").and_then(Value::as_array).cloned();
    let (true, Some(activities)) = (TAILS.contains(&tail.as_str()), activities) else {
        // Avinode refuses input it parsed with a 200 and meta.errors.
        let soft = answer(
            StatusCode::OK,
            json!([{"title": "Invalid input", "code": "ERR_INPUT_GENERIC_INVALID",
                "detail": format!("aircraft.tailNumber: unknown tail {tail}")}]),
            Value::Null,
        );
        return count(&mut account, "soft", soft);
    };
    let mut kept = Vec::new();
    for activity in activities {
        let external = activity["externalId"].as_str().unwrap_or("").to_owned();
        account.next += 1;
        let fresh = format!("asch-{}", account.next);
        let fleet = account.schedules.entry(tail.clone()).or_default();
        let id = fleet
            .get(&external)
            .map_or(json!(fresh), |a| a["id"].clone());
        let mut stored = activity.clone();
        stored["id"] = id;
        fleet.insert(external, stored.clone());
        kept.push(stored);
    }
    let data = json!({"aircraft": {"tailNumber": tail}, "activities": kept});
    count(
        &mut account,
        "schedules",
        answer(StatusCode::OK, json!([]), data),
    )
}
