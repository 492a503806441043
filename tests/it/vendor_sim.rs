//! A generic loopback vendor for the shipped manifest templates (`manifest_systems.rs`): one
//! server speaking, under `/{provider}/…`, what the test fills the ten templates with.
//! Nothing here is a vendor's API (the systems publish none).
//!
//! - auth, per provider as [`VendorSim::expect_auth`] says (any other credential is 401
//!   `{"error": {"code": "SESSION_EXPIRED"}}`): `X-Vendor-Key` header or `vendor_key` query
//!   = [`API_KEY`]; Basic [`USER`]:[`PASSWORD`]; bearer [`TOKEN`]; `POST /{p}/oauth/token`
//!   (form, Basic [`CLIENT_ID`]:[`CLIENT_SECRET`]) → `{"access_token", "expires_in"}`;
//!   `POST /{p}/login` (JSON `{"user", "pass"}`) → `{"session": {"token", "expires_in"}}`;
//! - `GET /{p}/me` (the check);
//! - `GET /{p}/{data_type}`: the seeded records, filtered by `modified_since` (RFC 3339) or
//!   `after_seq`, oldest change first, paged by `page`/`per_page`, `offset`/`limit` or
//!   `page_token`/`page_size` (the next token in `data.next`); JSON
//!   `{"data": {"records": [{"uid", "seq", "updated", "attributes": {…}}], "next"}}` or CSV
//!   (`uid,seq,updated,<attributes>`); a 200 `{"errors": [{"message"}]}` once
//!   [`VendorSim::soft_error_next`] asks;
//! - `POST`/`PUT /{p}/{data_type}`: a push, recorded, answered `{"result": {"id"}}` (an
//!   `Idempotency-Key` seen before gets the first answer and is not recorded again).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::manifest_sim::base64_encode;

pub const API_KEY: &str = "vk-SECRET-9f8e";
pub const USER: &str = "hangar-ops";
pub const PASSWORD: &str = "vpw-SECRET-7d6c";
pub const TOKEN: &str = "vtok-SECRET-5b4a";
pub const CLIENT_ID: &str = "hangar-vendor-client";
pub const CLIENT_SECRET: &str = "vcs-SECRET-3928";

/// The message of the soft error [`VendorSim::soft_error_next`] answers with.
pub const SOFT_ERROR: &str = "record set locked by another session";

/// How a provider's calls authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    ApiKeyHeader,
    ApiKeyQuery,
    Basic,
    Bearer,
    Oauth,
    Session,
}

/// How a list answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A record the vendor holds.
#[derive(Clone, Debug)]
pub struct Record {
    pub uid: String,
    pub seq: u64,
    pub updated: DateTime<Utc>,
    /// Vendor field → value.
    pub attributes: BTreeMap<String, String>,
}

/// A write the vendor received.
#[derive(Clone, Debug)]
pub struct Push {
    pub method: String,
    pub id: String,
    pub body: Value,
}

#[derive(Default)]
struct Books {
    auth: HashMap<String, AuthKind>,
    issued: HashSet<String>,
    records: HashMap<(String, String), (Format, Vec<Record>)>,
    seq: u64,
    pushes: HashMap<(String, String), Vec<Push>>,
    keys: HashMap<String, Value>,
    soft_error: HashSet<String>,
    queries: HashMap<String, Vec<HashMap<String, String>>>,
    calls: HashMap<String, u32>,
}

/// A running vendor.
#[derive(Clone)]
pub struct VendorSim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    books: Arc<Mutex<Books>>,
}

impl VendorSim {
    pub async fn start() -> VendorSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let sim = VendorSim {
            base,
            books: Arc::new(Mutex::new(Books::default())),
        };
        let app = Router::new()
            .route("/{provider}/oauth/token", post(oauth))
            .route("/{provider}/login", post(login))
            .route("/{provider}/me", get(me))
            .route(
                "/{provider}/{data_type}",
                get(list).post(receive).put(receive),
            )
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// `provider`'s calls must authenticate as `kind`.
    pub fn expect_auth(&self, provider: &str, kind: AuthKind) {
        self.books
            .lock()
            .unwrap()
            .auth
            .insert(provider.to_owned(), kind);
    }

    /// Adds `n` records of `provider`'s `data_type` (listed as `format`), modified a second
    /// apart, the last `ago` before now; each field of `fields` is `<field>-<seq>`.
    pub fn seed(
        &self,
        provider: &str,
        data_type: &str,
        format: Format,
        fields: &[String],
        n: usize,
        ago: chrono::Duration,
    ) {
        let mut b = self.books.lock().unwrap();
        let end = Utc::now() - ago;
        for i in 0..n {
            b.seq += 1;
            let seq = b.seq;
            let record = Record {
                uid: format!("{provider}-{data_type}-{seq:04}"),
                seq,
                updated: end - chrono::Duration::seconds((n - 1 - i) as i64),
                attributes: fields
                    .iter()
                    .map(|f| (f.clone(), format!("{f}-{seq}")))
                    .collect(),
            };
            let entry = b
                .records
                .entry((provider.to_owned(), data_type.to_owned()))
                .or_insert((format, Vec::new()));
            entry.0 = format;
            entry.1.push(record);
        }
    }

    /// Changes every field of the `n` first records (a new sequence number, modified now).
    pub fn touch(&self, provider: &str, data_type: &str, n: usize) {
        let mut b = self.books.lock().unwrap();
        let mut seq = b.seq;
        let (_, records) = b
            .records
            .get_mut(&(provider.to_owned(), data_type.to_owned()))
            .expect("seeded");
        for record in records.iter_mut().take(n) {
            seq += 1;
            record.seq = seq;
            record.updated = Utc::now();
            for value in record.attributes.values_mut() {
                value.push_str(" (revised)");
            }
        }
        b.seq = seq;
    }

    /// The records of `provider`'s `data_type`.
    pub fn records(&self, provider: &str, data_type: &str) -> Vec<Record> {
        let b = self.books.lock().unwrap();
        b.records
            .get(&(provider.to_owned(), data_type.to_owned()))
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }

    /// The next list call of `provider` answers a soft error.
    pub fn soft_error_next(&self, provider: &str) {
        self.books
            .lock()
            .unwrap()
            .soft_error
            .insert(provider.to_owned());
    }

    /// The pushes `provider`'s `data_type` received, in order.
    pub fn pushes(&self, provider: &str, data_type: &str) -> Vec<Push> {
        let b = self.books.lock().unwrap();
        b.pushes
            .get(&(provider.to_owned(), data_type.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The query of every list call of `provider`, in order.
    pub fn queries(&self, provider: &str) -> Vec<HashMap<String, String>> {
        let b = self.books.lock().unwrap();
        b.queries.get(provider).cloned().unwrap_or_default()
    }

    /// Answers counted under `provider:name` (`auth` for an authenticated call, `401`,
    /// `login`, `token`, `me`).
    pub fn calls(&self, provider: &str, name: &str) -> u32 {
        let b = self.books.lock().unwrap();
        b.calls
            .get(&format!("{provider}:{name}"))
            .copied()
            .unwrap_or(0)
    }
}

fn count(b: &mut Books, provider: &str, name: &str) {
    *b.calls.entry(format!("{provider}:{name}")).or_default() += 1;
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// Authentication as `provider` expects it; `Err` is the answer to give.
fn gate(
    b: &mut Books,
    provider: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = match b.auth.get(provider) {
        Some(AuthKind::ApiKeyHeader) => {
            headers.get("x-vendor-key").and_then(|v| v.to_str().ok()) == Some(API_KEY)
        }
        Some(AuthKind::ApiKeyQuery) => query.get("vendor_key").map(String::as_str) == Some(API_KEY),
        Some(AuthKind::Basic) => auth == basic(USER, PASSWORD),
        Some(AuthKind::Bearer) => auth == format!("Bearer {TOKEN}"),
        Some(AuthKind::Oauth | AuthKind::Session) => auth
            .strip_prefix("Bearer ")
            .is_some_and(|t| t.starts_with(&format!("{provider}-")) && b.issued.contains(t)),
        None => false,
    };
    if ok {
        count(b, provider, "auth");
        return Ok(());
    }
    count(b, provider, "401");
    Err(Box::new(
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "SESSION_EXPIRED", "message": "log in"}})),
        )
            .into_response(),
    ))
}

fn issue(b: &mut Books, provider: &str, what: &str) -> String {
    let token = format!("{provider}-{what}-{}", b.issued.len() + 1);
    b.issued.insert(token.clone());
    count(b, provider, what);
    token
}

async fn oauth(
    State(sim): State<VendorSim>,
    UrlPath(provider): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if b.auth.get(&provider) != Some(&AuthKind::Oauth)
        || auth != Some(basic(CLIENT_ID, CLIENT_SECRET).as_str())
        || !body.contains("grant_type=client_credentials")
    {
        count(&mut b, &provider, "401");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = issue(&mut b, &provider, "token");
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn login(
    State(sim): State<VendorSim>,
    UrlPath(provider): UrlPath<String>,
    body: Bytes,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if b.auth.get(&provider) != Some(&AuthKind::Session)
        || v["user"] != USER
        || v["pass"] != PASSWORD
    {
        count(&mut b, &provider, "401");
        return (StatusCode::UNAUTHORIZED, "bad login").into_response();
    }
    let token = issue(&mut b, &provider, "login");
    axum::Json(json!({"session": {"token": token, "expires_in": 3600}})).into_response()
}

async fn me(
    State(sim): State<VendorSim>,
    UrlPath(provider): UrlPath<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    if let Err(r) = gate(&mut b, &provider, &headers, &q) {
        return *r;
    }
    count(&mut b, &provider, "me");
    axum::Json(json!({"ok": true})).into_response()
}

fn num(q: &HashMap<String, String>, k: &str) -> Option<usize> {
    q.get(k).and_then(|v| v.parse().ok())
}

async fn list(
    State(sim): State<VendorSim>,
    UrlPath((provider, data_type)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    b.queries
        .entry(provider.clone())
        .or_default()
        .push(q.clone());
    if let Err(r) = gate(&mut b, &provider, &headers, &q) {
        return *r;
    }
    if b.soft_error.remove(&provider) {
        return axum::Json(json!({"data": null, "errors": [{"message": SOFT_ERROR}]}))
            .into_response();
    }
    let Some((format, all)) = b.records.get(&(provider.clone(), data_type.clone())) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "NO_SUCH_LIST"}})),
        )
            .into_response();
    };
    let format = *format;
    let mut records = all.clone();
    if let Some(since) = q.get("modified_since") {
        let since = DateTime::parse_from_rfc3339(since).expect("modified_since");
        records.retain(|r| r.updated >= since);
    }
    if let Some(after) = num(&q, "after_seq") {
        records.retain(|r| r.seq as usize > after);
    }
    records.sort_by_key(|r| r.seq);
    let (start, size) = if let Some(page) = num(&q, "page") {
        (
            (page.max(1) - 1) * num(&q, "per_page").unwrap_or(10),
            num(&q, "per_page").unwrap_or(10),
        )
    } else if let Some(offset) = num(&q, "offset") {
        (offset, num(&q, "limit").unwrap_or(10))
    } else if let Some(size) = num(&q, "page_size") {
        let start = q
            .get("page_token")
            .and_then(|t| t.strip_prefix("after-"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        (start, size)
    } else {
        (0, usize::MAX)
    };
    let end = start.saturating_add(size).min(records.len());
    let page = records.get(start.min(end)..end).unwrap_or(&[]);
    let next = (end < records.len() && q.contains_key("page_size")).then(|| format!("after-{end}"));
    match format {
        Format::Csv => {
            let names: Vec<String> = all
                .first()
                .map(|r| r.attributes.keys().cloned().collect())
                .unwrap_or_default();
            let mut text = format!("uid,seq,updated,{}\n", names.join(","));
            for r in page {
                let values: Vec<String> = names
                    .iter()
                    .map(|n| format!("\"{}\"", r.attributes[n]))
                    .collect();
                text.push_str(&format!(
                    "{},{},{},{}\n",
                    r.uid,
                    r.seq,
                    r.updated.to_rfc3339(),
                    values.join(",")
                ));
            }
            ([(header::CONTENT_TYPE, "text/csv")], text).into_response()
        }
        Format::Json => {
            let rows: Vec<Value> = page
                .iter()
                .map(|r| {
                    let attributes: Map<String, Value> = r
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    json!({"uid": r.uid, "seq": r.seq, "updated": r.updated.to_rfc3339(),
                        "attributes": attributes})
                })
                .collect();
            axum::Json(json!({"data": {"records": rows, "next": next}})).into_response()
        }
    }
}

async fn receive(
    State(sim): State<VendorSim>,
    method: Method,
    UrlPath((provider, data_type)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut b = sim.books.lock().unwrap();
    if let Err(r) = gate(&mut b, &provider, &headers, &q) {
        return *r;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(answer) = key.as_ref().and_then(|k| b.keys.get(k)) {
        return axum::Json(answer.clone()).into_response();
    }
    let pushes = b
        .pushes
        .entry((provider.clone(), data_type.clone()))
        .or_default();
    let id = format!("{provider}-{data_type}-rcv-{}", pushes.len() + 1);
    pushes.push(Push {
        method: method.to_string(),
        id: id.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let answer = json!({"result": {"id": id}});
    if let Some(k) = key {
        b.keys.insert(k, answer.clone());
    }
    axum::Json(answer).into_response()
}
