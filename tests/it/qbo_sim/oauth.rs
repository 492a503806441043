//! The simulator's OAuth 2.0 token endpoint (`POST /oauth2/v1/tokens/bearer`), as Intuit
//! documents it: client authentication with HTTP Basic (`client_id:client_secret`), form body
//! `grant_type=refresh_token&refresh_token=…`; answers `{"access_token", "token_type":
//! "bearer", "expires_in": 3600, "refresh_token", "x_refresh_token_expires_in"}`. A refresh
//! token rotates when [`Switches::rotate_refresh_tokens`](super::Switches) is on (the old one
//! stops working); an unknown refresh token, or the `invalid_grant` switch, gets 400
//! `{"error": "invalid_grant"}`; wrong client credentials get 401 `invalid_client`.

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::QboSim;

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/v1/tokens/bearer";

/// The client id the simulator accepts.
pub const CLIENT_ID: &str = "hangar-test-client";
/// The client secret the simulator accepts.
pub const CLIENT_SECRET: &str = "hangar-test-secret";

pub(super) async fn token(
    State(sim): State<QboSim>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut books = sim.books.lock().unwrap();
    *books.calls.entry("token".to_owned()).or_default() += 1;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let refresh = form.get("refresh_token").cloned().unwrap_or_default();
    if books.switches.invalid_grant || !books.refresh_tokens.contains(&refresh) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    books.issued += 1;
    let access = format!("access-{}", books.issued);
    if books.switches.expire_tokens {
        // The old access tokens stay expired; the new one works.
        books.access_tokens.clear();
        books.switches.expire_tokens = false;
    }
    books.access_tokens.insert(access.clone());
    let refresh = if books.switches.rotate_refresh_tokens {
        books.refresh_tokens.remove(&refresh);
        let next = format!("refresh-{}", books.issued);
        books.refresh_tokens.insert(next.clone());
        next
    } else {
        refresh
    };
    axum::Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": 3600,
        "refresh_token": refresh,
        "x_refresh_token_expires_in": 8_640_000,
    }))
    .into_response()
}
