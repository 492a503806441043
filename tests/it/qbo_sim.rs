//! A QuickBooks Online simulator on loopback, shared by the sync-engine tests and the token
//! refresh tests. Our own implementation of Intuit's published shapes (nothing copied):
//!
//! - `GET /v3/company/{realm}/cdc?entities=Payment,Invoice&changedSince=` — the changes since
//!   a time (inclusive), oldest first by (`MetaData.LastUpdatedTime`, `Id`), at most
//!   [`Switches::page_size`] objects (1 000 like QuickBooks), as
//!   `{"CDCResponse": [{"QueryResponse": [{"Payment": […]}, {"Invoice": […]}]}], "time"}`;
//!   a deleted object is `{"Id", "status": "Deleted", "MetaData": {…}}`;
//! - `GET /v3/company/{realm}/query?query=select * from Payment STARTPOSITION n MAXRESULTS m`
//!   — a full listing by id, `{"QueryResponse": {"Payment": […], "startPosition", "maxResults"}}`;
//! - `POST /v3/company/{realm}/invoice?requestid=` — create, or sparse update with `Id` and
//!   `SyncToken` (a stale token: 400 Fault code 5010); a repeated `requestid` answers the
//!   first answer again without a second write; `GET …/invoice/{id}`;
//! - `POST /oauth2/v1/tokens/bearer` — the OAuth token endpoint ([`oauth`]): Basic client
//!   auth, `grant_type=refresh_token`, rotating refresh tokens, `invalid_grant`.
//!
//! Switches ([`Switches`], changed any time through [`QboSim::switch`]): expire every access
//! token (401 Fault code 3200 with `WWW-Authenticate: Bearer error="invalid_token"`), answer
//! 401 even with a token the endpoint just issued (an app whose access was revoked), rotate
//! refresh tokens, answer `invalid_grant`, throttle the next n calls (429 `ThrottleExceeded`
//! + `Retry-After`), fail the next n calls with a 5xx, delay every answer, hang the n-th data
//!   call, the page size, lose the answer of the next n invoice writes (made, answered 504),
//!   QuickBooks' 500 requests a minute (a sliding window, [`Switches::per_minute`]). [`QboSim::calls`] counts the answers by route.

mod data;
pub mod oauth;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use data::qbo_time;

/// The realm id the simulator serves.
pub const REALM: &str = "9130357766";

/// What the simulator does on its next answers.
#[derive(Clone, Debug)]
pub struct Switches {
    /// Every access token is expired: data calls get 401 code 3200.
    pub expire_tokens: bool,
    /// Data calls get 401 code 3200 even with a token the endpoint just issued (which goes on
    /// issuing them): the connection's access is gone, a refresh does not bring it back.
    pub unauthorized_even_after_refresh: bool,
    /// The token endpoint issues a new refresh token with each refresh.
    pub rotate_refresh_tokens: bool,
    /// The token endpoint answers 400 `invalid_grant`.
    pub invalid_grant: bool,
    /// The next this many data calls get 429 `ThrottleExceeded`.
    pub throttle_next: u32,
    /// The `Retry-After` of a 429, in seconds.
    pub retry_after_secs: u32,
    /// The next this many data calls get this 5xx.
    pub fail_next: u32,
    /// The status of those failures.
    pub fail_status: u16,
    /// Every answer waits this long first.
    pub delay: Duration,
    /// The data call with this number (1 = the first) never answers.
    pub hang_call: Option<u32>,
    /// Objects in one CDC or query answer.
    pub page_size: usize,
    /// The next this many invoice writes are made but their answer is lost (a 504 instead).
    pub lose_next_answers: u32,
    /// QuickBooks' throttle: at most this many data calls in any 60 s (a sliding window),
    /// more get 429 `ThrottleExceeded`; `None`: no limit.
    pub per_minute: Option<usize>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            expire_tokens: false,
            unauthorized_even_after_refresh: false,
            rotate_refresh_tokens: true,
            invalid_grant: false,
            throttle_next: 0,
            retry_after_secs: 3,
            fail_next: 0,
            fail_status: 503,
            delay: Duration::ZERO,
            hang_call: None,
            page_size: 1000,
            lose_next_answers: 0,
            per_minute: None,
        }
    }
}

/// The simulator's books and its switches.
#[derive(Default)]
pub(crate) struct Books {
    pub switches: Switches,
    /// Objects by entity (`Payment`, `Invoice`), then by numeric id.
    pub objects: HashMap<String, BTreeMap<u64, Value>>,
    pub next_id: u64,
    /// Answers by route: `cdc`, `query`, `invoice`, `token`, `401`, `429`, `5xx`.
    pub calls: HashMap<String, u32>,
    /// Data calls seen (for `hang_call`).
    pub data_calls: u32,
    /// When the data calls of the last 60 s were answered (for `per_minute`).
    pub recent: std::collections::VecDeque<std::time::Instant>,
    /// Access tokens that are valid.
    pub access_tokens: HashSet<String>,
    /// Refresh tokens that are valid.
    pub refresh_tokens: HashSet<String>,
    /// The answers of `requestid`s seen (idempotent retries).
    pub requests: HashMap<String, (StatusCode, Value)>,
    pub issued: u64,
}

/// A running simulator.
#[derive(Clone)]
pub struct QboSim {
    /// `http://127.0.0.1:PORT`: the integration's `settings.base_url`.
    pub base: String,
    pub(crate) books: Arc<Mutex<Books>>,
}

impl QboSim {
    /// Starts a simulator on a free loopback port, with one valid access token
    /// (`access-0`) and refresh token (`refresh-0`), and no data.
    pub async fn start() -> QboSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut books = Books {
            next_id: 1,
            ..Books::default()
        };
        books.access_tokens.insert("access-0".into());
        books.refresh_tokens.insert("refresh-0".into());
        let sim = QboSim {
            base,
            books: Arc::new(Mutex::new(books)),
        };
        let app = Router::new()
            .route("/v3/company/{realm}/cdc", get(cdc))
            .route("/v3/company/{realm}/query", get(query))
            .route("/v3/company/{realm}/invoice", post(data::post_invoice))
            .route("/v3/company/{realm}/invoice/{id}", get(data::get_invoice))
            .route(oauth::TOKEN_PATH, post(oauth::token))
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base, oauth::TOKEN_PATH)
    }

    /// Changes the switches.
    pub fn switch(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.books.lock().unwrap().switches);
    }

    /// How many answers `route` gave (`cdc`, `query`, `invoice`, `token`, `401`, `429`, `5xx`).
    pub fn calls(&self, route: &str) -> u32 {
        self.books
            .lock()
            .unwrap()
            .calls
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Adds `n` payments last updated one second apart, ending `ago` before now; returns
    /// their ids.
    pub fn add_payments(&self, n: usize, ago: chrono::Duration) -> Vec<String> {
        let mut books = self.books.lock().unwrap();
        let end = Utc::now() - ago;
        (0..n)
            .map(|i| {
                let at = end - chrono::Duration::seconds((n - i) as i64);
                data::insert(&mut books, "Payment", data::payment(i as f64 + 1.0), at)
            })
            .collect()
    }

    /// Adds `n` invoices last updated one second apart, ending `ago` before now; returns
    /// their ids.
    pub fn add_invoices(&self, n: usize, ago: chrono::Duration) -> Vec<String> {
        let mut books = self.books.lock().unwrap();
        let end = Utc::now() - ago;
        (0..n)
            .map(|i| {
                let at = end - chrono::Duration::seconds((n - i) as i64);
                data::insert(
                    &mut books,
                    "Invoice",
                    data::invoice(100.0 * (i as f64 + 1.0)),
                    at,
                )
            })
            .collect()
    }

    /// Changes an object the way a QuickBooks user would: `f` edits it, its `SyncToken` goes
    /// up by one and `LastUpdatedTime` becomes now.
    pub fn edit(&self, entity: &str, id: &str, f: impl FnOnce(&mut Value)) {
        let mut books = self.books.lock().unwrap();
        data::edit(&mut books, entity, id, Utc::now(), f);
    }

    /// Deletes an object the way QuickBooks does: it leaves the query API, and the CDC feed
    /// reports `{"Id", "status": "Deleted", "MetaData"}`.
    pub fn delete(&self, entity: &str, id: &str) {
        let mut books = self.books.lock().unwrap();
        data::edit(&mut books, entity, id, Utc::now(), |object| {
            let id = object["Id"].clone();
            let meta = object["MetaData"].clone();
            *object = serde_json::json!({"Id": id, "status": "Deleted", "domain": "QBO", "MetaData": meta, "SyncToken": object["SyncToken"].clone()});
        });
    }

    /// How many objects of `entity` the books hold.
    pub fn count(&self, entity: &str) -> usize {
        let books = self.books.lock().unwrap();
        books.objects.get(entity).map_or(0, BTreeMap::len)
    }

    /// `n` more valid refresh tokens (`bench-refresh-<i>`); returns them.
    pub fn add_refresh_tokens(&self, n: usize) -> Vec<String> {
        let mut books = self.books.lock().unwrap();
        (0..n)
            .map(|i| {
                let token = format!("bench-refresh-{i}");
                books.refresh_tokens.insert(token.clone());
                token
            })
            .collect()
    }

    /// Every object of `entity`, by id.
    pub fn objects(&self, entity: &str) -> Vec<Value> {
        let books = self.books.lock().unwrap();
        books
            .objects
            .get(entity)
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The `requestid`s of the writes seen, sorted.
    pub fn request_ids(&self) -> Vec<String> {
        let books = self.books.lock().unwrap();
        let mut ids: Vec<String> = books.requests.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The object as the simulator holds it.
    pub fn object(&self, entity: &str, id: &str) -> Option<Value> {
        let books = self.books.lock().unwrap();
        books
            .objects
            .get(entity)?
            .get(&id.parse::<u64>().ok()?)
            .cloned()
    }
}

/// What every data call goes through: count, delay, hang, auth, throttling, faults. `Err` is
/// the answer to give instead.
pub(crate) async fn gate(
    sim: &QboSim,
    route: &str,
    realm: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let (delay, hang) = {
        let mut books = sim.books.lock().unwrap();
        books.data_calls += 1;
        (
            books.switches.delay,
            books.switches.hang_call == Some(books.data_calls),
        )
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut books = sim.books.lock().unwrap();
    let count =
        |books: &mut Books, what: &str| *books.calls.entry(what.to_owned()).or_default() += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if books.switches.expire_tokens
        || books.switches.unauthorized_even_after_refresh
        || !books.access_tokens.contains(token)
    {
        count(&mut books, "401");
        return Err((
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"Intuit\", error=\"invalid_token\"",
            )],
            axum::Json(fault(
                "AuthenticationFault",
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Token expired",
            )),
        )
            .into_response());
    }
    if realm != REALM {
        count(&mut books, "4xx");
        return Err((
            StatusCode::BAD_REQUEST,
            axum::Json(fault("ValidationFault", "4000", "unknown company", realm)),
        )
            .into_response());
    }
    let over_limit = books.switches.per_minute.is_some_and(|limit| {
        let now = std::time::Instant::now();
        while books
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            books.recent.pop_front();
        }
        books.recent.len() >= limit
    });
    if !over_limit && books.switches.per_minute.is_some() {
        books.recent.push_back(std::time::Instant::now());
    }
    if books.switches.throttle_next > 0 || over_limit {
        books.switches.throttle_next = books.switches.throttle_next.saturating_sub(1);
        count(&mut books, "429");
        let retry = books.switches.retry_after_secs.to_string();
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry)],
            axum::Json(fault(
                "ThrottleExceeded",
                "3001",
                "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "The request limit was reached.",
            )),
        )
            .into_response());
    }
    if books.switches.fail_next > 0 {
        books.switches.fail_next -= 1;
        count(&mut books, "5xx");
        let status = StatusCode::from_u16(books.switches.fail_status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err((status, "service unavailable").into_response());
    }
    count(&mut books, route);
    Ok(())
}

/// A QuickBooks Fault body.
pub(crate) fn fault(kind: &str, code: &str, message: &str, detail: &str) -> Value {
    json!({
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind},
        "time": qbo_time(Utc::now()),
    })
}

async fn cdc(
    State(sim): State<QboSim>,
    UrlPath(realm): UrlPath<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = gate(&sim, "cdc", &realm, &headers).await {
        return answer;
    }
    let since = params
        .get("changedSince")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let Some(since) = since else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(fault(
                "ValidationFault",
                "2020",
                "Required param missing",
                "changedSince",
            )),
        )
            .into_response();
    };
    let entities: Vec<String> = params
        .get("entities")
        .map(|e| e.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let books = sim.books.lock().unwrap();
    let mut changed: Vec<(DateTime<Utc>, u64, String, Value)> = Vec::new();
    for entity in &entities {
        for (id, object) in books.objects.get(entity).into_iter().flatten() {
            let at = data::updated_at(object);
            if at >= since {
                changed.push((at, *id, entity.clone(), object.clone()));
            }
        }
    }
    changed.sort_by_key(|c| (c.0, c.1));
    changed.truncate(books.switches.page_size);
    let responses: Vec<Value> = entities
        .iter()
        .map(|entity| {
            let items: Vec<&Value> = changed
                .iter()
                .filter(|c| &c.2 == entity)
                .map(|c| &c.3)
                .collect();
            json!({entity.as_str(): items, "startPosition": 1, "maxResults": items.len()})
        })
        .collect();
    axum::Json(json!({
        "CDCResponse": [{"QueryResponse": responses}],
        "time": qbo_time(Utc::now()),
    }))
    .into_response()
}

async fn query(
    State(sim): State<QboSim>,
    UrlPath(realm): UrlPath<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = gate(&sim, "query", &realm, &headers).await {
        return answer;
    }
    let text = params.get("query").cloned().unwrap_or_default();
    let Some((entity, start, max)) = data::parse_query(&text) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(fault(
                "ValidationFault",
                "4000",
                "Error parsing query",
                &text,
            )),
        )
            .into_response();
    };
    let books = sim.books.lock().unwrap();
    let max = max.min(books.switches.page_size);
    let items: Vec<&Value> = books
        .objects
        .get(&entity)
        .into_iter()
        .flatten()
        .filter(|(_, o)| o.get("status").and_then(Value::as_str) != Some("Deleted"))
        .skip(start.saturating_sub(1))
        .take(max)
        .map(|(_, o)| o)
        .collect();
    axum::Json(json!({
        "QueryResponse": {entity.as_str(): items, "startPosition": start, "maxResults": items.len()},
        "time": qbo_time(Utc::now()),
    }))
    .into_response()
}
