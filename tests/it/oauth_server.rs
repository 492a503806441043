//! A loopback OAuth 2.0 token endpoint for the token-refresh tests, playing a provider with
//! rotating refresh tokens (QuickBooks' shape): it checks the client's HTTP Basic
//! credentials and the refresh token it last issued, counts every call, and answers by its
//! mode: tokens (rotating the refresh token, optionally after a delay), `invalid_grant`, or
//! a 5xx.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::json;

/// How the endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// New tokens after this delay; the refresh token rotates.
    Tokens(Duration),
    /// A new access token only: the answer has no refresh token (the old one stays valid).
    NoRotation,
    /// 400 `invalid_grant` (a dead refresh token).
    InvalidGrant,
    /// This 5xx status.
    Down(u16),
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    calls: u32,
    /// The refresh token the endpoint accepts (the last it issued).
    current_refresh: String,
    /// The refresh tokens it was sent, in order.
    received: Vec<String>,
    issued: u32,
}

/// The token endpoint.
#[derive(Clone)]
pub struct OAuthServer {
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Mutex<Inner>>,
}

impl OAuthServer {
    /// Starts it, accepting `refresh_token` first, in `mode`.
    pub async fn start(refresh_token: &str, mode: Mode) -> OAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = OAuthServer {
            base,
            client_id: "client-abc".to_owned(),
            client_secret: format!("client-secret-{:08x}", fastrand::u32(..)),
            inner: Arc::new(Mutex::new(Inner {
                mode,
                calls: 0,
                current_refresh: refresh_token.to_owned(),
                received: Vec::new(),
                issued: 0,
            })),
        };
        let app = Router::new()
            .route("/oauth2/v1/tokens/bearer", post(token))
            .with_state(server.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        server
    }

    /// The token URL.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/tokens/bearer", self.base)
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// How many calls it got.
    pub fn calls(&self) -> u32 {
        self.inner.lock().unwrap().calls
    }

    /// The refresh tokens it was sent.
    pub fn received(&self) -> Vec<String> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The refresh token it issued last (what Hangar must have saved).
    pub fn current_refresh(&self) -> String {
        self.inner.lock().unwrap().current_refresh.clone()
    }

    /// The access token of the `n`-th issue (1-based).
    pub fn access_token(n: u32) -> String {
        format!("access-token-issued-{n}")
    }
}

fn form_value(body: &str, key: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

async fn token(State(server): State<OAuthServer>, headers: HeaderMap, body: String) -> Response {
    let (mode, refresh) = {
        let mut inner = server.inner.lock().unwrap();
        inner.calls += 1;
        let refresh = form_value(&body, "refresh_token").unwrap_or_default();
        inner.received.push(refresh.clone());
        (inner.mode, refresh)
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", server.client_id, server.client_secret))
    );
    let basic_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    match mode {
        Mode::Down(code) => {
            return (StatusCode::from_u16(code).unwrap(), "unavailable").into_response();
        }
        Mode::InvalidGrant => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": "Incorrect Token type or clientID"})),
            )
                .into_response();
        }
        Mode::Tokens(delay) => tokio::time::sleep(delay).await,
        Mode::NoRotation => {}
    }
    if !basic_ok || form_value(&body, "grant_type").as_deref() != Some("refresh_token") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut inner = server.inner.lock().unwrap();
    if refresh != inner.current_refresh {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "token already rotated"}),
            ),
        )
            .into_response();
    }
    inner.issued += 1;
    let n = inner.issued;
    if mode == Mode::NoRotation {
        return axum::Json(json!({
            "access_token": OAuthServer::access_token(n),
            "token_type": "bearer",
            "expires_in": 3600,
        }))
        .into_response();
    }
    inner.current_refresh = format!("refresh-token-rotated-{n}");
    axum::Json(json!({
        "access_token": OAuthServer::access_token(n),
        "refresh_token": inner.current_refresh,
        "token_type": "bearer",
        "expires_in": 3600,
        "x_refresh_token_expires_in": 8_726_400,
    }))
    .into_response()
}
