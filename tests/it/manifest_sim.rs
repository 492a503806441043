//! A loopback simulator for the manifest connector: a maintenance system (due items in,
//! flight times out) speaking every shape a test manifest can declare. Nothing here is a
//! vendor's API (the systems publish none); it is what the test manifests of
//! `manifest_support.rs` describe.
//!
//! - auth: `X-Api-Key` header or `api_key` query = [`API_KEY`]; Basic [`USER`]:[`PASSWORD`];
//!   bearer [`TOKEN`]; `POST /login` (JSON `{"user", "pass"}`) → `{"session": {"token",
//!   "expires_in"}}`; `POST /oauth/token` (form, Basic [`CLIENT_ID`]:[`CLIENT_SECRET`]) →
//!   `{"access_token", "expires_in"}`; an unknown issued token is 401 `SESSION_EXPIRED`;
//! - `GET /me` (the check), `GET /due-items?format=json|xml|csv` filtered by
//!   `modified_since` (RFC 3339) or `after_seq`, sorted, paged by `page`/`per_page`,
//!   `offset`/`limit`, `page_token`/`page_size` (next token in the body) or `lpage`/`lsize`
//!   (next page in a `Link` header);
//! - `POST /flight-times` → `{"result": {"id"}}` (an `Idempotency-Key` seen before answers
//!   the first answer), `PUT /flight-times/{id}`;
//! - [`ManifestSim::replay`]: the next calls get recorded answers from
//!   `tests/it/fixtures/manifest/` instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const API_KEY: &str = "key-SECRET-a1b2";
pub const USER: &str = "ops";
pub const PASSWORD: &str = "pw-SECRET-c3d4";
pub const TOKEN: &str = "tok-SECRET-e5f6";
pub const CLIENT_ID: &str = "hangar-client";
pub const CLIENT_SECRET: &str = "cs-SECRET-g7h8";

/// A due item the simulator holds.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub seq: u64,
    pub updated_at: DateTime<Utc>,
    pub description: String,
}

#[derive(Default)]
struct Books {
    items: Vec<Item>,
    seq: u64,
    issued: Vec<String>,
    replay: VecDeque<String>,
    calls: HashMap<String, u32>,
    queries: Vec<HashMap<String, String>>,
    flight_times: BTreeMap<String, Value>,
    keys: HashMap<String, Value>,
}

/// A running simulator.
#[derive(Clone)]
pub struct ManifestSim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    books: Arc<Mutex<Books>>,
}

impl ManifestSim {
    pub async fn start() -> ManifestSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let sim = ManifestSim {
            base,
            books: Arc::new(Mutex::new(Books::default())),
        };
        let app = Router::new()
            .route("/login", post(login))
            .route("/oauth/token", post(oauth))
            .route("/me", get(me))
            .route("/due-items", get(due_items))
            .route("/flight-times", post(create_flight_time))
            .route("/flight-times/{id}", put(update_flight_time))
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// Adds `n` due items modified one second apart, the last `ago` before now.
    pub fn add(&self, n: usize, ago: chrono::Duration) {
        let mut b = self.books.lock().unwrap();
        let end = Utc::now() - ago;
        for i in 0..n {
            b.seq += 1;
            let item = Item {
                id: format!("due-{:04}", b.seq),
                seq: b.seq,
                updated_at: end - chrono::Duration::seconds((n - 1 - i) as i64),
                description: format!("task {}", b.seq),
            };
            b.items.push(item);
        }
    }

    /// Changes the description of the `n` first items (a new sequence number, modified now).
    pub fn touch(&self, n: usize) {
        let mut b = self.books.lock().unwrap();
        for i in 0..n {
            b.seq += 1;
            let seq = b.seq;
            let item = &mut b.items[i];
            item.description = format!("{} (revised)", item.description);
            item.seq = seq;
            item.updated_at = Utc::now();
        }
    }

    /// The next calls are answered with these fixtures, in order.
    pub fn replay(&self, fixtures: &[&str]) {
        let mut b = self.books.lock().unwrap();
        b.replay.extend(fixtures.iter().map(|f| f.to_string()));
    }

    /// Answers not replayed yet are dropped.
    pub fn clear_replay(&self) {
        self.books.lock().unwrap().replay.clear();
    }

    /// Issued sessions and tokens are forgotten (they expire at the vendor).
    pub fn expire_sessions(&self) {
        self.books.lock().unwrap().issued.clear();
    }

    /// Answers counted under `name` (`login`, `token`, `due`, `me`, `create`, `update`,
    /// `auth:header`, `auth:query`, `auth:basic`, `auth:bearer`, `auth:issued`, `401`,
    /// `replayed`).
    pub fn calls(&self, name: &str) -> u32 {
        self.books
            .lock()
            .unwrap()
            .calls
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// The query of every `/due-items` call, in order.
    pub fn queries(&self) -> Vec<HashMap<String, String>> {
        self.books.lock().unwrap().queries.clone()
    }

    /// The flight times received, by id.
    pub fn flight_times(&self) -> BTreeMap<String, Value> {
        self.books.lock().unwrap().flight_times.clone()
    }
}

fn count(b: &mut Books, name: &str) {
    *b.calls.entry(name.to_owned()).or_default() += 1;
}

/// A fixture file as a response.
pub fn fixture(name: &str) -> Response {
    let path = format!(
        "{}/tests/it/fixtures/manifest/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").expect("a blank line");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut response = Response::new(axum::body::Body::from(body.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    for line in lines {
        let (k, v) = line.split_once(':').expect("header");
        response.headers_mut().insert(
            HeaderName::from_bytes(k.trim().as_bytes()).expect("name"),
            HeaderValue::from_str(v.trim()).expect("value"),
        );
    }
    response
}

/// Replay, then authentication; `Err` is the answer to give.
fn gate(
    b: &mut Books,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    if let Some(name) = b.replay.pop_front() {
        count(b, "replayed");
        return Err(Box::new(fixture(&name)));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let kind = if headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY) {
        "auth:header"
    } else if query.get("api_key").map(String::as_str) == Some(API_KEY) {
        "auth:query"
    } else if auth == basic {
        "auth:basic"
    } else if auth == format!("Bearer {TOKEN}") {
        "auth:bearer"
    } else if let Some(t) = auth.strip_prefix("Bearer ")
        && b.issued.iter().any(|i| i == t)
    {
        "auth:issued"
    } else {
        count(b, "401");
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": "SESSION_EXPIRED", "message": "log in"}})),
            )
                .into_response(),
        ));
    };
    count(b, kind);
    Ok(())
}

/// Standard base64 (the tests' own, for Basic credentials).
pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn login(State(sim): State<ManifestSim>, body: Bytes) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "login");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if v["user"] != USER || v["pass"] != PASSWORD {
        return (StatusCode::UNAUTHORIZED, "bad login").into_response();
    }
    let token = format!("sess-{}", b.issued.len() + b.calls["login"] as usize);
    b.issued.push(token.clone());
    axum::Json(json!({"session": {"token": token, "expires_in": 3600}})).into_response()
}

async fn oauth(State(sim): State<ManifestSim>, headers: HeaderMap, body: String) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "token");
    let want = format!(
        "Basic {}",
        base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(want.as_str()) || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = format!("oat-{}", b.calls["token"]);
    b.issued.push(token.clone());
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn me(
    State(sim): State<ManifestSim>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "me");
    if let Err(r) = gate(&mut b, &headers, &q) {
        return *r;
    }
    axum::Json(json!({"ok": true})).into_response()
}

fn num(q: &HashMap<String, String>, k: &str) -> Option<usize> {
    q.get(k).and_then(|v| v.parse().ok())
}

async fn due_items(
    State(sim): State<ManifestSim>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "due");
    b.queries.push(q.clone());
    if let Err(r) = gate(&mut b, &headers, &q) {
        return *r;
    }
    let mut items: Vec<Item> = b.items.clone();
    if let Some(since) = q.get("modified_since") {
        let since = DateTime::parse_from_rfc3339(since).expect("modified_since");
        items.retain(|i| i.updated_at >= since);
    }
    if let Some(after) = num(&q, "after_seq") {
        items.retain(|i| i.seq as usize > after);
    }
    items.sort_by_key(|i| i.seq);
    let (start, size) = if let Some(page) = num(&q, "page") {
        let size = num(&q, "per_page").unwrap_or(10);
        ((page - 1) * size, size)
    } else if let Some(offset) = num(&q, "offset") {
        (offset, num(&q, "limit").unwrap_or(10))
    } else if let Some(size) = num(&q, "page_size") {
        let start = q
            .get("page_token")
            .and_then(|t| t.strip_prefix('c'))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        (start, size)
    } else if let Some(size) = num(&q, "lsize") {
        ((num(&q, "lpage").unwrap_or(1) - 1) * size, size)
    } else {
        (0, usize::MAX)
    };
    let end = start.saturating_add(size).min(items.len());
    let more = end < items.len();
    let page: Vec<Item> = items.get(start.min(end)..end).unwrap_or(&[]).to_vec();
    let next_token = (more && q.contains_key("page_size")).then(|| format!("c{end}"));
    let mut response = match q.get("format").map(String::as_str).unwrap_or("json") {
        "xml" => {
            let mut x = String::from("<?xml version=\"1.0\"?><DueItems>");
            if let Some(t) = &next_token {
                x.push_str(&format!("<Next>{t}</Next>"));
            }
            for i in &page {
                x.push_str(&format!(
                    "<Item id=\"{}\"><Seq>{}</Seq><UpdatedAt>{}</UpdatedAt><Description>{}</Description></Item>",
                    i.id,
                    i.seq,
                    i.updated_at.to_rfc3339(),
                    i.description.replace('&', "&amp;")
                ));
            }
            x.push_str("</DueItems>");
            ([(header::CONTENT_TYPE, "application/xml")], x).into_response()
        }
        "csv" => {
            let mut c = String::from("id,seq,updated_at,description\n");
            for i in &page {
                c.push_str(&format!(
                    "{},{},{},\"{}\"\n",
                    i.id,
                    i.seq,
                    i.updated_at.to_rfc3339(),
                    i.description
                ));
            }
            ([(header::CONTENT_TYPE, "text/csv")], c).into_response()
        }
        _ => {
            let rows: Vec<Value> = page
                .iter()
                .map(|i| json!({"id": i.id, "seq": i.seq, "updated_at": i.updated_at.to_rfc3339(), "description": i.description}))
                .collect();
            axum::Json(json!({"data": {"items": rows, "next": next_token}})).into_response()
        }
    };
    if more && q.contains_key("lsize") {
        let mut next = q.clone();
        next.insert(
            "lpage".into(),
            (num(&q, "lpage").unwrap_or(1) + 1).to_string(),
        );
        next.remove("api_key");
        let query = serde_urlencoded::to_string(&next).expect("query");
        let link = format!("<{}/due-items?{query}>; rel=\"next\"", sim.base);
        response
            .headers_mut()
            .insert(header::LINK, HeaderValue::from_str(&link).expect("link"));
    }
    response
}

async fn create_flight_time(
    State(sim): State<ManifestSim>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "create");
    if let Err(r) = gate(&mut b, &headers, &q) {
        return *r;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(answer) = key.as_ref().and_then(|k| b.keys.get(k)) {
        return axum::Json(answer.clone()).into_response();
    }
    let record: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = format!("ft-{}", b.flight_times.len() + 1);
    b.flight_times.insert(id.clone(), record.clone());
    let answer = json!({"result": {"id": id, "received": record}});
    if let Some(k) = key {
        b.keys.insert(k, answer.clone());
    }
    axum::Json(answer).into_response()
}

async fn update_flight_time(
    State(sim): State<ManifestSim>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    count(&mut b, "update");
    if let Err(r) = gate(&mut b, &headers, &q) {
        return *r;
    }
    if !b.flight_times.contains_key(&id) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "NOT_FOUND"}})),
        )
            .into_response();
    }
    let record: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    b.flight_times.insert(id.clone(), record.clone());
    axum::Json(json!({"result": {"id": id, "received": record}})).into_response()
}
