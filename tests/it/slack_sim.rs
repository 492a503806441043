//! A Slack simulator on loopback, for the Slack connector's tests. Our own implementation of
//! the shapes Slack documents (nothing copied):
//!
//! - `POST /api/chat.postMessage` (Web API, `Authorization: Bearer` [`BOT_TOKEN`], JSON
//!   `{"channel", "text", …}`): `{"ok": true, "channel", "ts", "message"}`, or HTTP 200
//!   `{"ok": false, "error"}` with `not_authed` / `invalid_auth` (a wrong token),
//!   `token_revoked`, `channel_not_found`, `is_archived`;
//! - `POST /services/T0HANGAR/B0HANGAR/<secret>` (an incoming webhook; JSON `{"text"}`):
//!   `200 ok`, or `403 invalid_token` (revoked), `404 no_service` (unknown URL), `410
//!   channel_is_archived`, `400 no_text`;
//! - both: ~1 message a second per channel: a message less than [`MIN_GAP_MS`] after the
//!   channel's previous one gets `429` with `Retry-After: 1` (Web API body `{"ok": false,
//!   "error": "ratelimited"}`), and so do the next n messages when [`SlackSim::throttle`]
//!   says so (with its `Retry-After`).
//!
//! [`SlackSim::messages`] lists what was posted, per channel, with the time it arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The bot token the Web API accepts.
pub const BOT_TOKEN: &str = "xoxb-1-hangar-test-bot";
/// The channel the bot may post to.
pub const CHANNEL: &str = "C0HANGAROPS";
/// The secret last part of the incoming webhook's path.
pub const HOOK_SECRET: &str = "hangarHookSecret0001";
/// The channel the incoming webhook posts to.
pub const HOOK_CHANNEL: &str = "C0HOOKED";
/// Messages closer than this on one channel are throttled (Slack allows ~1 a second, with
/// short bursts; the margin covers a loaded machine's delay between grant and arrival).
pub const MIN_GAP_MS: u128 = 750;

/// One posted message.
#[derive(Clone, Debug)]
pub struct Posted {
    pub channel: String,
    pub text: String,
    pub at: Instant,
}

#[derive(Default)]
struct Books {
    messages: Vec<Posted>,
    last: HashMap<String, Instant>,
    archived: Vec<String>,
    revoked: bool,
    throttle_next: u32,
    throttle_wait: String,
    calls: HashMap<String, u32>,
    next_ts: u64,
}

/// A running simulator.
#[derive(Clone)]
pub struct SlackSim {
    /// `http://127.0.0.1:PORT`: the bot integration's `settings.base_url`.
    pub base: String,
    books: Arc<Mutex<Books>>,
}

impl SlackSim {
    pub async fn start() -> SlackSim {
        let books = Arc::new(Mutex::new(Books::default()));
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/services/{team}/{bot}/{secret}", post(webhook))
            .with_state(books.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlackSim { base, books }
    }

    /// The incoming webhook's URL (the integration's credential).
    pub fn hook_url(&self) -> String {
        format!("{}/services/T0HANGAR/B0HANGAR/{HOOK_SECRET}", self.base)
    }

    /// Archives `channel`.
    pub fn archive(&self, channel: &str) {
        self.books.lock().unwrap().archived.push(channel.to_owned());
    }

    /// Revokes the token and the webhook URL.
    pub fn revoke(&self) {
        self.books.lock().unwrap().revoked = true;
    }

    /// The next `n` messages get 429 with `Retry-After: retry_after`.
    pub fn throttle(&self, n: u32, retry_after: &str) {
        let mut b = self.books.lock().unwrap();
        b.throttle_next = n;
        b.throttle_wait = retry_after.to_owned();
    }

    /// Messages posted, oldest first.
    pub fn messages(&self) -> Vec<Posted> {
        self.books.lock().unwrap().messages.clone()
    }

    /// Answers given by kind (`posted`, `429`, `invalid_auth`, `is_archived`, …).
    pub fn calls(&self, kind: &str) -> u32 {
        self.books
            .lock()
            .unwrap()
            .calls
            .get(kind)
            .copied()
            .unwrap_or(0)
    }
}

/// What the channel's budget says of a message now: `Some(retry_after)` when it is throttled.
fn throttled(b: &mut Books, channel: &str) -> Option<String> {
    let now = Instant::now();
    if b.throttle_next > 0 {
        b.throttle_next -= 1;
        return Some(b.throttle_wait.clone());
    }
    if let Some(last) = b.last.get(channel)
        && now.duration_since(*last).as_millis() < MIN_GAP_MS
    {
        return Some("1".to_owned());
    }
    b.last.insert(channel.to_owned(), now);
    None
}

fn count(b: &mut Books, kind: &str) {
    *b.calls.entry(kind.to_owned()).or_default() += 1;
}

fn api_error(b: &mut Books, code: &str) -> Response {
    count(b, code);
    Json200(json!({"ok": false, "error": code})).into_response()
}

struct Json200(Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            self.0.to_string(),
        )
            .into_response()
    }
}

async fn post_message(
    State(books): State<Arc<Mutex<Books>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut b = books.lock().unwrap();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.is_empty() {
        return api_error(&mut b, "not_authed");
    }
    if auth != format!("Bearer {BOT_TOKEN}") {
        return api_error(&mut b, "invalid_auth");
    }
    if b.revoked {
        return api_error(&mut b, "token_revoked");
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return api_error(&mut b, "invalid_json");
    };
    let channel = message["channel"].as_str().unwrap_or("").to_owned();
    let Some(text) = message["text"].as_str().map(str::to_owned) else {
        return api_error(&mut b, "no_text");
    };
    if channel != CHANNEL {
        return api_error(&mut b, "channel_not_found");
    }
    if b.archived.contains(&channel) {
        return api_error(&mut b, "is_archived");
    }
    if let Some(wait) = throttled(&mut b, &channel) {
        count(&mut b, "429");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait)],
            json!({"ok": false, "error": "ratelimited"}).to_string(),
        )
            .into_response();
    }
    b.next_ts += 1;
    let ts = format!("1767225600.{:06}", b.next_ts);
    count(&mut b, "posted");
    b.messages.push(Posted {
        channel: channel.clone(),
        text: text.clone(),
        at: Instant::now(),
    });
    Json200(json!({"ok": true, "channel": channel, "ts": ts,
        "message": {"type": "message", "text": text, "ts": ts}}))
    .into_response()
}

async fn webhook(
    State(books): State<Arc<Mutex<Books>>>,
    UrlPath((_team, _bot, secret)): UrlPath<(String, String, String)>,
    body: String,
) -> Response {
    let mut b = books.lock().unwrap();
    let plain = |b: &mut Books, status: StatusCode, code: &str| {
        count(b, code);
        (status, code.to_owned()).into_response()
    };
    if secret != HOOK_SECRET {
        return plain(&mut b, StatusCode::NOT_FOUND, "no_service");
    }
    if b.revoked {
        return plain(&mut b, StatusCode::FORBIDDEN, "invalid_token");
    }
    let text = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_owned));
    let Some(text) = text else {
        return plain(&mut b, StatusCode::BAD_REQUEST, "no_text");
    };
    if b.archived.iter().any(|c| c == HOOK_CHANNEL) {
        return plain(&mut b, StatusCode::GONE, "channel_is_archived");
    }
    if let Some(wait) = throttled(&mut b, HOOK_CHANNEL) {
        count(&mut b, "429");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait)],
            "rate_limited",
        )
            .into_response();
    }
    count(&mut b, "posted");
    b.messages.push(Posted {
        channel: HOOK_CHANNEL.to_owned(),
        text,
        at: Instant::now(),
    });
    (StatusCode::OK, "ok").into_response()
}
