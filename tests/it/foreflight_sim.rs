//! A ForeFlight Dispatch simulator on loopback, for the ForeFlight connector's tests. The
//! shapes are third-party knowledge (PROVIDERS.md marks them 3P), reproduced here as the
//! connector assumes them, under `/public/api`:
//!
//! - every call needs `x-api-key` [`API_KEY`], else 403 `{"message": "Forbidden"}` (the API
//!   gateway's answer);
//! - `GET /Flights/modified?sinceDate=` — `{"flights": […]}`, the flights whose
//!   `lastModified` is at or after `sinceDate`, oldest first, at most [`Switches::page`];
//! - `POST /Flights` — creates a flight (400 `{"message": "Validation failed"}` without
//!   `departure`, `destination` or `scheduledTimeOfDeparture`), 201 with it;
//! - `PUT /Flights/{flightId}`, `GET /Flights/{flightId}` — 404 for an unknown flight.
//!
//! Switches: the next n calls answer 429 with `Retry-After`; the page size.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The operator's Dispatch API key.
pub const API_KEY: &str = "ff-dispatch-key-1";

/// What the simulator does on its next answers.
#[derive(Clone, Debug)]
pub struct Switches {
    pub throttle_next: u32,
    pub retry_after: Option<String>,
    pub page: usize,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            throttle_next: 0,
            retry_after: None,
            page: 500,
        }
    }
}

#[derive(Default)]
struct Account {
    switches: Switches,
    flights: BTreeMap<String, Value>,
    calls: HashMap<String, u32>,
    next: u64,
}

/// A running simulator.
#[derive(Clone)]
pub struct ForeFlightSim {
    /// `http://127.0.0.1:PORT/public/api`: the base URL.
    pub base: String,
    account: Arc<Mutex<Account>>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"message": text}))).into_response()
}

fn count(account: &mut Account, route: &str, response: Response) -> Response {
    *account.calls.entry(route.to_owned()).or_default() += 1;
    response
}

fn gate(account: &mut Account, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        let refused = message(StatusCode::FORBIDDEN, "Forbidden");
        return Err(Box::new(count(account, "403", refused)));
    }
    if account.switches.throttle_next > 0 {
        account.switches.throttle_next -= 1;
        let mut refused = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        if let Some(value) = account
            .switches
            .retry_after
            .as_deref()
            .and_then(|w| w.parse().ok())
        {
            refused.headers_mut().insert("retry-after", value);
        }
        return Err(Box::new(count(account, "429", refused)));
    }
    Ok(())
}

impl ForeFlightSim {
    /// Starts a simulator with no flights.
    pub async fn start() -> ForeFlightSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let base = format!("http://{}/public/api", listener.local_addr().expect("addr"));
        let sim = ForeFlightSim {
            base,
            account: Arc::new(Mutex::new(Account::default())),
        };
        let app = Router::new()
            .route("/public/api/Flights/modified", get(modified))
            .route("/public/api/Flights", axum::routing::post(create))
            .route("/public/api/Flights/{id}", get(read).put(update))
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

    /// How many answers `route` gave (`modified`, `create`, `update`, `read`, `403`, `404`,
    /// `429`, `400`).
    pub fn calls(&self, route: &str) -> u32 {
        let account = self.account.lock().unwrap();
        account.calls.get(route).copied().unwrap_or(0)
    }

    /// `n` flights planned in ForeFlight, modified a second apart, ending `ago` before now.
    pub fn add_flights(&self, n: usize, ago: Duration) -> Vec<String> {
        let mut account = self.account.lock().unwrap();
        let end = Utc::now() - ago;
        (0..n)
            .map(|i| {
                account.next += 1;
                let id = format!("ff-{:06}", account.next);
                let at = iso(end - Duration::seconds((n - i) as i64));
                account.flights.insert(
                    id.clone(),
                    json!({"flightId": id, "departure": "KTEB", "destination": "KPBI",
                        "scheduledTimeOfDeparture": "2026-12-10T14:00:00Z",
                        "aircraftRegistration": "N123AB", "plannedFuel": 5200,
                        "lastModified": at}),
                );
                id
            })
            .collect()
    }

    /// A dispatcher edits a flight in ForeFlight now.
    pub fn edit(&self, id: &str, field: &str, value: Value) {
        let mut account = self.account.lock().unwrap();
        let flight = account.flights.get_mut(id).expect("flight");
        flight[field] = value;
        flight["lastModified"] = json!(iso(Utc::now()));
    }

    /// Every flight, by id.
    pub fn flights(&self) -> BTreeMap<String, Value> {
        self.account.lock().unwrap().flights.clone()
    }
}

async fn modified(
    State(sim): State<ForeFlightSim>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    let Some(since) = params
        .get("sinceDate")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    else {
        return count(
            &mut account,
            "400",
            message(
                StatusCode::BAD_REQUEST,
                "sinceDate must be an ISO 8601 date-time",
            ),
        );
    };
    let time = |f: &Value| {
        f["lastModified"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    let mut flights: Vec<Value> = account
        .flights
        .values()
        .filter(|f| time(f).is_some_and(|t| t >= since))
        .cloned()
        .collect();
    flights.sort_by_key(|f| (time(f), f["flightId"].as_str().map(str::to_owned)));
    flights.truncate(account.switches.page);
    count(
        &mut account,
        "modified",
        axum::Json(json!({"flights": flights})).into_response(),
    )
}

fn valid(body: &Value) -> bool {
    ["departure", "destination", "scheduledTimeOfDeparture"]
        .iter()
        .all(|f| body.get(*f).and_then(Value::as_str).is_some())
}

async fn create(
    State(sim): State<ForeFlightSim>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    if !valid(&body) {
        return count(
            &mut account,
            "400",
            message(StatusCode::BAD_REQUEST, "Validation failed"),
        );
    }
    account.next += 1;
    let id = format!("ff-{:06}", account.next);
    let mut flight = body;
    flight["flightId"] = json!(id);
    flight["lastModified"] = json!(iso(Utc::now()));
    account.flights.insert(id, flight.clone());
    count(
        &mut account,
        "create",
        (StatusCode::CREATED, axum::Json(flight)).into_response(),
    )
}

async fn update(
    State(sim): State<ForeFlightSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    if !account.flights.contains_key(&id) {
        return count(
            &mut account,
            "404",
            message(StatusCode::NOT_FOUND, "Flight not found"),
        );
    }
    if !valid(&body) {
        return count(
            &mut account,
            "400",
            message(StatusCode::BAD_REQUEST, "Validation failed"),
        );
    }
    let mut flight = body;
    flight["flightId"] = json!(id);
    flight["lastModified"] = json!(iso(Utc::now()));
    account.flights.insert(id, flight.clone());
    count(&mut account, "update", axum::Json(flight).into_response())
}

async fn read(
    State(sim): State<ForeFlightSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut account = sim.account.lock().unwrap();
    if let Err(refused) = gate(&mut account, &headers) {
        return *refused;
    }
    match account.flights.get(&id).cloned() {
        Some(flight) => count(&mut account, "read", axum::Json(flight).into_response()),
        None => count(
            &mut account,
            "404",
            message(StatusCode::NOT_FOUND, "Flight not found"),
        ),
    }
}
