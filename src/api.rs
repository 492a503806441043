//! The JSON API under `/api/v1` (CONTRACT.md, "HTTP API"). So far the ingress routes:
//! `POST /api/v1/events` and `POST /api/v1/jobs`, with the validation and deduplication of
//! the Redis ingress. Every error is `{"error": {"code", "message"}}`; no SQL or internals
//! leak. Authentication arrives with the operator surfaces as a layer on [`routes`], so every
//! handler here stays free of it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hangar_workers::client::Client;
use hangar_workers::ingress::{self, MAX_MESSAGE_BYTES, Rejection};
use hangar_workers::store::Store;
use serde_json::json;

/// What the API handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The job store.
    pub store: Store,
    /// Turns job requests into jobs (kinds, pools).
    pub client: Arc<Client>,
}

/// The `/api/v1` routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/events", post(post_event))
        .route("/api/v1/jobs", post(post_job))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(state)
}

/// An API error: status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The database is unreachable or failed: logged here, not shown to the caller.
    fn unavailable(error: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(%error, "API: database error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; nothing was stored, retry later",
        )
    }

    /// A refused ingress body.
    fn rejected(rejection: Rejection, code: &'static str) -> ApiError {
        let status = match rejection {
            Rejection::NotJson(_) => StatusCode::BAD_REQUEST,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let code = match rejection {
            Rejection::NotJson(_) => "invalid_json",
            Rejection::TooLarge { .. } => "too_large",
            _ => code,
        };
        ApiError::new(status, code, rejection.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The body, or the error for one over the limit or cut short.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is over the limit of {MAX_MESSAGE_BYTES} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_body", rejection.body_text())
        }
    })
}

fn count(outcome: &'static str) {
    metrics::counter!("hangar_ingress_entries_total", "source" => "http", "outcome" => outcome)
        .increment(1);
}

/// `POST /api/v1/events`: the event envelope; 202 `{"id": <event id>, "duplicate": bool}`.
async fn post_event(
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let event = ingress::parse_event_body(&body(raw)?).map_err(|r| {
        count("refused");
        ApiError::rejected(r, "invalid_event")
    })?;
    let created = state
        .store
        .publish_event(&event)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
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

/// `POST /api/v1/jobs`: the job request; 202 `{"id": <job id>, "duplicate": bool}`.
async fn post_job(
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let job = ingress::parse_job_body(&body(raw)?)
        .and_then(|request| state.client.resolve(&request))
        .map_err(|r| {
            count("refused");
            ApiError::rejected(r, "invalid_job")
        })?;
    let enqueued = state
        .store
        .enqueue(&job)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
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
