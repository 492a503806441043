//! `POST /hooks/{provider}/{ws}`: a provider's push (MISSION.md §7, CONTRACT.md). Outside
//! `/api/v1` and without a bearer token: the provider's own scheme authenticates it (see
//! `hangar_workers::inbound`). Answers: unknown provider 404; body over 256 KiB 413 (no more
//! is read); no material configured, or a bad signature, stale timestamp or wrong credentials
//! 401 with nothing stored; a verified body that cannot be taken 422; stored 200
//! `{"received": true, "duplicate": false, "id"}`, a duplicate 200 with `"duplicate": true`
//! and nothing stored. Metric: `hangar_inbound_webhooks_total{provider,outcome}`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hangar_integrations::provider::Provider;
use hangar_workers::inbound::{self, InboundError, Received};
use serde_json::json;

use super::{ApiError, ApiPath, ApiState};

/// The hook route (merged into the API's router, which sets the body limit).
pub fn routes() -> Router<ApiState> {
    Router::new().route("/hooks/{provider}/{ws}", post(receive_hook))
}

fn count(provider: &'static str, outcome: &'static str) {
    metrics::counter!("hangar_inbound_webhooks_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

async fn receive_hook(
    State(state): State<ApiState>,
    ApiPath((provider, ws)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let provider: Provider =
        provider
            .parse()
            .map_err(|e: hangar_integrations::provider::UnknownProvider| {
                ApiError::UnknownProvider(e)
            })?;
    let id = provider.id();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            count(id, "too_large");
            ApiError::TooLarge
        } else {
            ApiError::BadBody(rejection.body_text())
        }
    })?;
    let context = state.inbound.as_ref().ok_or(ApiError::NoMasterKey)?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    match inbound::receive(context, id, &ws, &headers, &body, chrono::Utc::now()).await {
        Ok(Received::Stored { id: row, .. }) => {
            count(id, "accepted");
            Ok((
                StatusCode::OK,
                Json(json!({"received": true, "duplicate": false, "id": row})),
            ))
        }
        Ok(Received::Duplicate) => {
            count(id, "duplicate");
            Ok((
                StatusCode::OK,
                Json(json!({"received": true, "duplicate": true})),
            ))
        }
        Err(error @ (InboundError::NotConfigured { .. } | InboundError::Refused(_))) => {
            count(id, "unauthorized");
            tracing::info!(provider = id, workspace = %ws, reason = %error, "inbound webhook refused");
            Err(ApiError::Unauthorized(
                "the push did not verify with this workspace's inbound hook",
            ))
        }
        Err(InboundError::Body(error)) => {
            count(id, "invalid");
            Err(ApiError::Unprocessable(error.0))
        }
        Err(error) => {
            count(id, "error");
            Err(ApiError::Inbound(error))
        }
    }
}
