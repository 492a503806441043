//! `POST /hooks/{provider}/{ws}`: a provider's push (MISSION.md §7, CONTRACT.md). Outside
//! `/api/v1` and without a bearer token: the provider's own scheme authenticates it (see
//! `hangar_workers::inbound`). Answers: unknown provider 404; body over 256 KiB 413 (no more
//! is read); no material configured, or a bad signature, stale timestamp or wrong credentials
//! 401 with nothing stored; a verified body that cannot be taken 422; stored 200
//! `{"received": true, "duplicate": false, "id"}`, a duplicate 200 with `"duplicate": true`
//! and nothing stored. Metric: `hangar_inbound_webhooks_total{provider,outcome}`. In the
//! generated document with `security: [{}]` (no bearer token: the signature authenticates).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use hangar_integrations::provider::Provider;
use hangar_workers::inbound::{self, InboundError, Received};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiPath, ApiState};

/// The answer to a verified push.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookReceived {
    /// Always true: the push verified and is (or was already) stored.
    pub received: bool,
    /// True when the same push (provider, event id) was stored before: nothing new stored.
    pub duplicate: bool,
    /// The stored row (absent for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

fn count(provider: &'static str, outcome: &'static str) {
    metrics::counter!("hangar_inbound_webhooks_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// A provider's push to a workspace: the raw body (the provider's JSON, at most 256 KiB) is
/// verified the provider's documented way before anything else (QuickBooks
/// `intuit-signature`, Stripe `Stripe-Signature` with a 300 s tolerance, Avinode Basic
/// credentials, the generic `X-PlaneConnection-Signature`), then stored with the job that
/// processes it. No bearer token: the signature is the authentication.
#[utoipa::path(post, path = "/hooks/{provider}/{ws}", tag = "inbound",
    params(("provider" = String, Path, description = "provider id, e.g. quickbooks, stripe, avinode, asap"),
        ("ws" = String, Path, description = "workspace id")),
    responses((status = 200, description = "verified and stored, or a duplicate (nothing new stored)", body = HookReceived),
        (status = 401, description = "no inbound hook configured, or the signature, timestamp or credentials did not verify: nothing stored"),
        (status = 404, description = "unknown provider"), (status = 413, description = "body over 256 KiB"),
        (status = 422, description = "verified, but not a push this provider sends"),
        (status = 503, description = "no master key in this process")),
    security(()))]
pub async fn receive_hook(
    State(state): State<ApiState>,
    ApiPath((provider, ws)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HookReceived>), ApiError> {
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
                Json(HookReceived {
                    received: true,
                    duplicate: false,
                    id: Some(row),
                }),
            ))
        }
        Ok(Received::Duplicate) => {
            count(id, "duplicate");
            Ok((
                StatusCode::OK,
                Json(HookReceived {
                    received: true,
                    duplicate: true,
                    id: None,
                }),
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
