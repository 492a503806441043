//! A scripted HTTP receiver on loopback that plays provider or webhook endpoint: it answers
//! by its path (status codes, delays, scripted sequences, endless bodies) and records every
//! request it got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
    pub body: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
}

/// A scripted HTTP server on loopback. Routes:
/// - `/status/{code}`: answers `code`;
/// - `/retry-after/{value}`: 429 with `Retry-After: value`;
/// - `/hang`: never answers (well, after 10 minutes);
/// - `/flaky/{key}/{fails}/{code}`: answers `code` the first `fails` times, then 200;
/// - `/ratelimited/{key}/{times}/{retry_after}`: 429 with that `Retry-After` the first
///   `times` times, then 200;
/// - `/script/{key}/{steps}`: the n-th request for `key` gets the n-th of the
///   comma-separated `steps` (a status code, or `hang`), and 200 once they are used up;
/// - `/slow/{ms}`: 200 after `ms` milliseconds;
/// - `/switch/{key}`: 503 while `key` is switched off ([`Receiver::set_down`]), else 200;
/// - anything else: 200.
///
/// It counts the requests in flight on each path, and the most at once ([`Receiver::peak`]).
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    counters: Arc<Mutex<HashMap<String, u32>>>,
    /// Path → (in flight now, most at once).
    in_flight: Arc<Mutex<HashMap<String, (u32, u32)>>>,
    down: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Counts a request out of flight when its answer is done (or its connection dropped).
struct InFlight(Receiver, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = self.0.in_flight.lock().unwrap();
        if let Some((now, _)) = map.get_mut(&self.1) {
            *now -= 1;
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Receiver {
            base,
            hits: Arc::default(),
            counters: Arc::default(),
            in_flight: Arc::default(),
            down: Arc::default(),
        };
        let app = Router::new()
            .route("/{*path}", any(respond))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Counts one more request for `key` and returns the count so far.
    fn count_hit(&self, key: &str) -> u32 {
        let mut counters = self.counters.lock().unwrap();
        let n = counters.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// The most requests in flight at once on `path`.
    pub fn peak(&self, path: &str) -> u32 {
        self.in_flight
            .lock()
            .unwrap()
            .get(path)
            .map_or(0, |(_, peak)| *peak)
    }

    /// Switches `/switch/{key}` off (503) or on (200).
    pub fn set_down(&self, key: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(key.to_owned());
        } else {
            set.remove(key);
        }
    }

    /// Requests whose path starts with `prefix`.
    pub fn hits_on(&self, prefix: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path.starts_with(prefix))
            .collect()
    }
}

async fn respond(
    State(receiver): State<Receiver>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    receiver.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        at: Instant::now(),
        body: String::from_utf8_lossy(&body).into_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
    });
    let _in_flight = {
        let mut map = receiver.in_flight.lock().unwrap();
        let (now, peak) = map.entry(path.clone()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        InFlight(receiver.clone(), path.clone())
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["switch", key] => {
            if receiver.down.lock().unwrap().contains(*key) {
                (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
        ["status", code] => {
            let code = code.parse().unwrap_or(500);
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "scripted",
            )
                .into_response()
        }
        ["retry-after", value] => {
            let value = percent_decode(value);
            let mut headers = HeaderMap::new();
            headers.insert(
                "retry-after",
                HeaderValue::from_str(&value).expect("header"),
            );
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
        }
        ["hang"] => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK.into_response()
        }
        ["flaky", key, fails, code] => {
            let fails: u32 = fails.parse().unwrap_or(1);
            let seen = receiver.count_hit(key);
            if seen <= fails {
                let code = code.parse().unwrap_or(500);
                (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "flaky",
                )
                    .into_response()
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
        ["ratelimited", key, times, value] => {
            let times: u32 = times.parse().unwrap_or(1);
            let seen = receiver.count_hit(key);
            if seen <= times {
                let mut headers = HeaderMap::new();
                headers.insert(
                    "retry-after",
                    HeaderValue::from_str(&percent_decode(value)).expect("header"),
                );
                (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
        ["script", key, steps] => {
            let seen = receiver.count_hit(key) as usize;
            match steps.split(',').nth(seen - 1) {
                Some("hang") => {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    StatusCode::OK.into_response()
                }
                Some(code) => (
                    StatusCode::from_u16(code.parse().unwrap_or(500))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "scripted",
                )
                    .into_response(),
                None => (StatusCode::OK, "ok").into_response(),
            }
        }
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(100))).await;
            (StatusCode::OK, "ok").into_response()
        }
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
