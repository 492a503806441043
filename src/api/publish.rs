//! `POST /api/v1/events` and `POST /api/v1/jobs`: the Redis ingress over HTTP, with the same
//! validation and deduplication (CONTRACT.md, "Redis ingress").

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hangar_workers::wire::{self, EventEnvelope, JobRequest};
use serde_json::json;

use super::auth::{Caller, Role};
use super::bodies::{EventAccepted, JobAccepted};
use super::{ApiError, ApiState};

/// The body, or the error for one over the limit or cut short.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadBody(rejection.body_text())
        }
    })
}

fn count(outcome: &'static str) {
    metrics::counter!("hangar_ingress_entries_total", "source" => "http", "outcome" => outcome)
        .increment(1);
}

/// Hands over one event (the envelope of the webhook document); stored once per
/// `(workspace_id, id)`.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingress",
    request_body(content = EventEnvelope, description = "the event envelope: id, type, workspace_id, timestamp, data (no other fields); id and workspace_id at most 255 bytes", content_type = "application/json"),
    responses(
        (status = 202, description = "stored, or already stored", body = EventAccepted),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 413, description = "over 256 KiB"),
        (status = 422, description = "invalid event: missing, unknown or oversized field, personal data (the reason names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "database unavailable")),
    security(("bearer" = ["operator"])))]
pub async fn post_event(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Operator)?;
    let event = wire::parse_event_body(&body(raw)?).map_err(ApiError::InvalidEvent)?;
    caller.require_workspace(&event.workspace_id)?;
    let created = state
        .store
        .publish_event(&event, &state.client.webhook_route())
        .await?;
    count(if created {
        "event_new"
    } else {
        "event_duplicate"
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": event.id, "duplicate": !created})),
    ))
}

/// Hands over one job request; stored once per workspace, kind and idempotency key.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "ingress",
    request_body(content = JobRequest, description = "the job request: kind, workspace_id, args, idempotency_key, run_at?, queue?, priority? (an integer from -32768 to 32767, smaller runs first, default 0); no other fields. kind, workspace_id, idempotency_key and queue are at most 255 bytes; keys starting with schedule:, alert: or hangar: are Hangar's own; internal kinds (alert deliveries) are refused. A duplicate key answers with the caller's own job (same workspace and kind).", content_type = "application/json"),
    responses(
        (status = 202, description = "stored, or already stored", body = JobAccepted),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 413, description = "over 256 KiB"),
        (status = 422, description = "invalid job request: unknown kind or field, internal kind, reserved or oversized key (the reason names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "database unavailable")),
    security(("bearer" = ["operator"])))]
pub async fn post_job(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Operator)?;
    let request = wire::parse_job_body(&body(raw)?).map_err(ApiError::InvalidJob)?;
    caller.require_workspace(&request.workspace_id)?;
    let job = state
        .client
        .resolve(request)
        .map_err(ApiError::InvalidJob)?;
    let enqueued = state.store.enqueue(&job).await?;
    count(if enqueued.created {
        "job_new"
    } else {
        "job_duplicate"
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": enqueued.id, "duplicate": !enqueued.created})),
    ))
}
