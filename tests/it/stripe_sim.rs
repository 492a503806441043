//! A Stripe simulator on loopback, for the Stripe Connect connector's tests. Our own
//! implementation of the shapes of Stripe's published API reference (nothing copied):
//!
//! - `GET /v1/events?type=payment_intent.*&created[gte]=&created[lte]=&limit=&starting_after=`
//!   — events newest first, `{"object": "list", "data": […], "has_more", "url"}`; an event is
//!   `{"id": "evt_…", "object": "event", "type", "created", "data": {"object": {…}}}`;
//! - `GET /v1/payment_intents?limit=&starting_after=` (newest first), `GET
//!   /v1/payment_intents/{id}`, `POST /v1/payment_intents` and `POST
//!   /v1/payment_intents/{id}` (form-encoded; a create records a `payment_intent.created`
//!   event);
//! - every call needs `Authorization: Bearer` [`API_KEY`] (else 401 `authentication_error`)
//!   and `Stripe-Account:` [`ACCOUNT`] (else 403 `permission_error`); a write's
//!   `Idempotency-Key` seen before with the same parameters answers the first answer again
//!   (`Idempotent-Replayed: true`), with other parameters 400 `idempotency_error`.
//!
//! Switches ([`Switches`]): revoke the key, throttle the next n calls (429
//! `rate_limit_error`), a requests-per-second limit (429 above it), fail the next n calls
//! (500 `api_error`), lose the answer of the next n writes (made, answered 500). [`StripeSim::calls`]
//! counts the answers by route.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Map, Value, json};

/// The platform key the simulator accepts (a test-mode key: 25 requests a second).
pub const API_KEY: &str = "sk_test_hangar_platform";
/// The connected account it serves.
pub const ACCOUNT: &str = "acct_1HangarTest";

/// What the simulator does on its next answers.
#[derive(Clone, Debug, Default)]
pub struct Switches {
    /// Every key is refused (401 `authentication_error`).
    pub revoke_key: bool,
    /// The next this many calls get 429 `rate_limit_error`.
    pub throttle_next: u32,
    /// More calls than this in one second get 429 `rate_limit_error`.
    pub per_second: Option<u32>,
    /// The next this many calls get 500 `api_error`.
    pub fail_next: u32,
    /// The next this many writes are made but answered 500.
    pub lose_next_answers: u32,
}

/// A write remembered under its idempotency key: its parameters, status and body.
type Remembered = (Vec<(String, String)>, StatusCode, Value);

#[derive(Default)]
struct Books {
    switches: Switches,
    /// PaymentIntents by id (ids grow with creation).
    intents: BTreeMap<String, Value>,
    /// Events, oldest first.
    events: Vec<Value>,
    next: u64,
    calls: HashMap<String, u32>,
    /// Idempotency keys: (the parameters, the answer).
    keys: HashMap<String, Remembered>,
    /// Calls in the current second: (second, count).
    second: (i64, u32),
}

/// A running simulator.
#[derive(Clone)]
pub struct StripeSim {
    /// `http://127.0.0.1:PORT`: the integration's `settings.base_url`.
    pub base: String,
    books: Arc<Mutex<Books>>,
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut e = json!({"type": kind, "message": message});
    if let Some(code) = code {
        e["code"] = json!(code);
    }
    (status, axum::Json(json!({ "error": e }))).into_response()
}

impl StripeSim {
    /// Starts a simulator on a free loopback port with no data.
    pub async fn start() -> StripeSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let sim = StripeSim {
            base,
            books: Arc::new(Mutex::new(Books::default())),
        };
        let app = Router::new()
            .route("/v1/events", get(events))
            .route("/v1/payment_intents", get(list_intents).post(create_intent))
            .route(
                "/v1/payment_intents/{id}",
                get(get_intent).post(update_intent),
            )
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// Changes the switches.
    pub fn switch(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.books.lock().unwrap().switches);
    }

    /// How many answers `route` gave (`events`, `list`, `get`, `create`, `update`, `401`,
    /// `403`, `429`, `5xx`, `idempotency_error`, `replayed`).
    pub fn calls(&self, route: &str) -> u32 {
        let books = self.books.lock().unwrap();
        books.calls.get(route).copied().unwrap_or(0)
    }

    /// Adds `n` PaymentIntents created one second apart, ending `ago` before now, each with
    /// its `payment_intent.created` event; returns their ids.
    pub fn add_intents(&self, n: usize, ago: chrono::Duration) -> Vec<String> {
        let mut books = self.books.lock().unwrap();
        let end = (Utc::now() - ago).timestamp();
        (0..n)
            .map(|i| {
                let at = end - (n - i) as i64;
                let mut fields = Map::new();
                fields.insert("amount".into(), json!(1000 + i as i64));
                fields.insert("currency".into(), json!("usd"));
                create(&mut books, fields, at)
            })
            .collect()
    }

    /// The client pays `id`: its status becomes `succeeded`, with a
    /// `payment_intent.succeeded` event now.
    pub fn succeed(&self, id: &str) {
        let mut books = self.books.lock().unwrap();
        let now = Utc::now().timestamp();
        let intent = books.intents.get_mut(id).expect("intent");
        intent["status"] = json!("succeeded");
        intent["amount_received"] = intent["amount"].clone();
        let object = intent.clone();
        event(&mut books, "payment_intent.succeeded", object, now);
    }

    /// Every PaymentIntent the simulator holds.
    pub fn intents(&self) -> Vec<Value> {
        self.books
            .lock()
            .unwrap()
            .intents
            .values()
            .cloned()
            .collect()
    }
}

fn count(books: &mut Books, route: &str) {
    *books.calls.entry(route.to_owned()).or_default() += 1;
}

fn create(books: &mut Books, fields: Map<String, Value>, at: i64) -> String {
    books.next += 1;
    let id = format!("pi_sim{:08}", books.next);
    let mut intent = json!({"id": id, "object": "payment_intent", "created": at,
        "status": "requires_payment_method", "livemode": false, "amount_received": 0,
        "metadata": {}});
    for (k, v) in fields {
        intent[k] = v;
    }
    books.intents.insert(id.clone(), intent.clone());
    event(books, "payment_intent.created", intent, at);
    id
}

fn event(books: &mut Books, kind: &str, object: Value, at: i64) {
    books.next += 1;
    let id = format!("evt_sim{:08}", books.next);
    books.events.push(
        json!({"id": id, "object": "event", "type": kind, "created": at,
        "livemode": false, "account": ACCOUNT, "api_version": "2024-06-20",
        "data": {"object": object}}),
    );
}

/// Auth, account, throttling and faults, in Stripe's order; `Err` is the answer to give.
fn gate(books: &mut Books, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if books.switches.revoke_key || bearer != Some(API_KEY) {
        count(books, "401");
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            None,
            "Invalid API Key provided: sk_test_****",
        )));
    }
    if headers.get("stripe-account").and_then(|v| v.to_str().ok()) != Some(ACCOUNT) {
        count(books, "403");
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("account_invalid"),
            "The provided key does not have access to account, or that account does not exist.",
        )));
    }
    let now = Utc::now().timestamp();
    if books.second.0 != now {
        books.second = (now, 0);
    }
    books.second.1 += 1;
    let over = books
        .switches
        .per_second
        .is_some_and(|max| books.second.1 > max);
    if books.switches.throttle_next > 0 || over {
        books.switches.throttle_next = books.switches.throttle_next.saturating_sub(1);
        count(books, "429");
        return Err(Box::new(error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit"),
            "Too many requests hit the API too quickly.",
        )));
    }
    if books.switches.fail_next > 0 {
        books.switches.fail_next -= 1;
        count(books, "5xx");
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "An unknown error occurred",
        )));
    }
    Ok(())
}

fn list(items: Vec<Value>, params: &HashMap<String, String>, url: &str) -> Response {
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let start = match params.get("starting_after") {
        Some(after) => match items.iter().position(|i| i["id"] == json!(after)) {
            Some(p) => p + 1,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such object: starting_after",
                );
            }
        },
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = items.len() > start + page.len();
    axum::Json(json!({"object": "list", "data": page, "has_more": has_more, "url": url}))
        .into_response()
}

async fn events(
    State(sim): State<StripeSim>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    if let Err(answer) = gate(&mut books, &headers) {
        return *answer;
    }
    count(&mut books, "events");
    let bound = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
    let (gte, lte) = (bound("created[gte]"), bound("created[lte]"));
    let kind = params.get("type").cloned().unwrap_or_default();
    let matches = |t: &str| match kind.strip_suffix('*') {
        Some(prefix) => t.starts_with(prefix),
        None => kind.is_empty() || t == kind,
    };
    let mut items: Vec<Value> = books
        .events
        .iter()
        .filter(|e| {
            let created = e["created"].as_i64().unwrap_or(0);
            matches(e["type"].as_str().unwrap_or(""))
                && gte.is_none_or(|g| created >= g)
                && lte.is_none_or(|l| created <= l)
        })
        .cloned()
        .collect();
    items.reverse();
    items.sort_by_key(|e| std::cmp::Reverse(e["created"].as_i64()));
    list(items, &params, "/v1/events")
}

async fn list_intents(
    State(sim): State<StripeSim>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    if let Err(answer) = gate(&mut books, &headers) {
        return *answer;
    }
    count(&mut books, "list");
    let items: Vec<Value> = books.intents.values().rev().cloned().collect();
    list(items, &params, "/v1/payment_intents")
}

async fn get_intent(
    State(sim): State<StripeSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    if let Err(answer) = gate(&mut books, &headers) {
        return *answer;
    }
    count(&mut books, "get");
    match books.intents.get(&id) {
        Some(intent) => axum::Json(intent.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such payment_intent: '{id}'"),
        ),
    }
}

/// The form's fields as a PaymentIntent's (`metadata[k]` into `metadata`, numbers as numbers).
fn fields_of(form: &[(String, String)]) -> Result<Map<String, Value>, Box<Response>> {
    let mut fields = Map::new();
    for (k, v) in form {
        if let Some(key) = k
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        {
            let metadata = fields.entry("metadata").or_insert_with(|| json!({}));
            metadata[key] = json!(v);
        } else if k == "amount" {
            let Ok(amount) = v.parse::<i64>() else {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_invalid_integer"),
                    "Invalid integer: amount",
                )));
            };
            fields.insert("amount".into(), json!(amount));
        } else if k.starts_with("automatic_payment_methods[") {
            fields.insert(
                "automatic_payment_methods".into(),
                json!({"enabled": v == "true"}),
            );
        } else if ["currency", "description", "customer"].contains(&k.as_str()) {
            fields.insert(k.clone(), json!(v));
        } else {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_unknown"),
                &format!("Received unknown parameter: {k}"),
            )));
        }
    }
    Ok(fields)
}

/// A write under its `Idempotency-Key`: a replay, a refused reuse, or `write` made.
fn idempotent(
    books: &mut Books,
    headers: &HeaderMap,
    form: Vec<(String, String)>,
    write: impl FnOnce(&mut Books, Map<String, Value>) -> (StatusCode, Value),
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key
        && let Some((params, status, body)) = books.keys.get(key).cloned()
    {
        if params != form {
            count(books, "idempotency_error");
            return error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        count(books, "replayed");
        return (status, [("idempotent-replayed", "true")], axum::Json(body)).into_response();
    }
    let fields = match fields_of(&form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    let (status, body) = write(books, fields);
    if let Some(key) = key {
        books.keys.insert(key, (form, status, body.clone()));
    }
    if books.switches.lose_next_answers > 0 {
        books.switches.lose_next_answers -= 1;
        count(books, "5xx");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "An unknown error occurred",
        );
    }
    (status, axum::Json(body)).into_response()
}

async fn create_intent(
    State(sim): State<StripeSim>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    if let Err(answer) = gate(&mut books, &headers) {
        return *answer;
    }
    idempotent(&mut books, &headers, form, |books, fields| {
        if !fields.contains_key("amount") || !fields.contains_key("currency") {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": {"type": "invalid_request_error", "code": "parameter_missing",
                    "message": "Missing required param: amount or currency."}}),
            );
        }
        count(books, "create");
        let id = create(books, fields, Utc::now().timestamp());
        (StatusCode::OK, books.intents[&id].clone())
    })
}

async fn update_intent(
    State(sim): State<StripeSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    if let Err(answer) = gate(&mut books, &headers) {
        return *answer;
    }
    idempotent(&mut books, &headers, form, |books, fields| {
        let Some(intent) = books.intents.get_mut(&id) else {
            return (
                StatusCode::NOT_FOUND,
                json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                    "message": format!("No such payment_intent: '{id}'")}}),
            );
        };
        for (k, v) in fields {
            intent[k] = v;
        }
        let answer = intent.clone();
        count(books, "update");
        (StatusCode::OK, answer)
    })
}
