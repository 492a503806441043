//! A workspace's webhook endpoints (CONTRACT.md, "HTTP API"): create (the secret shown this
//! once), list, get, change, delete, rotate the secret, pause and resume. Every route needs
//! `admin` or `safety_manager` (or `owner`); safety event types need `safety_manager`, the
//! others `admin` (see `webhook_bodies::may_manage` and README, "Outbound webhooks").

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use hangar_workers::webhooks::endpoint::{self, DEFAULT_GRACE_SECONDS};
use hangar_workers::webhooks::{
    Endpoint, EndpointChange, Limits, NewEndpoint, Rotation, WebhookContext, health,
};

use super::auth::Caller;
use super::webhook_bodies::{
    CreateEndpoint, EndpointChanged, EndpointWithSecret, PatchEndpoint, RotateSecret, may_manage,
    parse, parse_required, require_webhooks, rights,
};
use super::{ApiError, ApiPath, ApiState};

/// The webhook context (keyring, targets), present when the master key is configured.
pub(super) fn context(state: &ApiState) -> Result<&WebhookContext, ApiError> {
    state.webhooks.as_ref().ok_or(ApiError::NoMasterKey)
}

fn raw(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::BadBody(e.body_text()))
}

/// Creates an endpoint. Body `{"url", "event_types"?, "description"?}`; the answer holds the
/// `whsec_…` secret, shown this once.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id")),
    request_body(content = CreateEndpoint, description = "the endpoint", content_type = "application/json"),
    responses((status = 201, description = "the endpoint with its secret", body = EndpointWithSecret),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed (safety types need safety_manager)"),
        (status = 422, description = "invalid endpoint: URL refused, unknown event type (the message names it)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn create_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let body: CreateEndpoint = parse_required(&raw(body)?)?;
    let (safety_allowed, others_allowed) = rights(&caller);
    let new = NewEndpoint {
        workspace_id: ws,
        url: body.url,
        event_types: body.event_types,
        description: body.description,
        safety_allowed,
        others_allowed,
        limits: Limits {
            max_in_flight: body.max_in_flight,
            rate_limit_per_s: body.rate_limit_per_s.map(Some),
            ordering_key: body.ordering_key.map(Some),
        },
    };
    let (endpoint, secret) = endpoint::create(context(&state)?, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret {
            endpoint,
            secret,
            previous_secret_expires_at: None,
        }),
    ))
}

/// The workspace's endpoints, without secrets.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, description = "the endpoints", body = [Endpoint]),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn list_endpoints(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Vec<Endpoint>>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    Ok(Json(state.store.webhook_endpoints(Some(&ws)).await?))
}

/// The workspace's endpoint `id`, or 404.
pub(super) async fn workspace_endpoint(
    state: &ApiState,
    ws: &str,
    id: &str,
) -> Result<Endpoint, ApiError> {
    match state.store.webhook_endpoint(id).await? {
        Some(endpoint) if endpoint.workspace_id == ws => Ok(endpoint),
        _ => Err(hangar_workers::webhooks::WebhookError::EndpointNotFound(id.to_owned()).into()),
    }
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "the endpoint", body = Endpoint),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn get_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Endpoint>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    Ok(Json(workspace_endpoint(&state, &ws, &id).await?))
}

/// Changes an endpoint: `url`, `event_types`, `description`, `enabled`. Enabling a disabled
/// endpoint sends its held deliveries (`released` counts them).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    request_body(content = PatchEndpoint, description = "the fields to change", content_type = "application/json"),
    responses((status = 200, description = "the endpoint", body = EndpointChanged),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"),
        (status = 422, description = "invalid change (the message names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn patch_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EndpointChanged>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let current = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &current)?;
    let body: PatchEndpoint = parse(&raw(body)?, false)?;
    let change = EndpointChange {
        url: body.url,
        event_types: body.event_types,
        description: body.description,
        enabled: body.enabled,
        limits: Limits {
            max_in_flight: body.max_in_flight,
            rate_limit_per_s: body.rate_limit_per_s,
            ordering_key: body.ordering_key,
        },
    };
    let (safety, others) = rights(&caller);
    let (endpoint, released) =
        endpoint::change(context(&state)?, &ws, &id, &change, safety, others).await?;
    Ok(Json(EndpointChanged { endpoint, released }))
}

/// Deletes an endpoint with its deliveries and attempts.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    responses((status = 204, description = "deleted"),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn delete_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let current = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &current)?;
    state.store.delete_webhook_endpoint(&id).await?;
    if let Ok(context) = context(&state) {
        context.forget(&id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the secret: the answer holds the new one (shown this once); the old one keeps
/// signing beside it for `grace_seconds` (default 86400, at most 604800) unless `revoke_now`.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    request_body(content = RotateSecret, description = "the grace (optional body)", content_type = "application/json"),
    responses((status = 200, description = "the endpoint with its new secret", body = EndpointWithSecret),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"),
        (status = 422, description = "grace_seconds out of range"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn rotate_secret(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let current = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &current)?;
    let body: RotateSecret = parse(&raw(body)?, true)?;
    let rotation = Rotation {
        grace_seconds: body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
        revoke_now: body.revoke_now,
    };
    let (endpoint, secret, until) = endpoint::rotate(context(&state)?, &ws, &id, rotation).await?;
    Ok(Json(EndpointWithSecret {
        endpoint,
        secret,
        previous_secret_expires_at: until,
    }))
}

/// Pauses an endpoint: new deliveries are held until it resumes.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/pause", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "the endpoint, paused", body = EndpointChanged),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn pause_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<EndpointChanged>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let current = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &current)?;
    health::pause(context(&state)?, &current).await?;
    let endpoint = workspace_endpoint(&state, &ws, &id).await?;
    Ok(Json(EndpointChanged {
        endpoint,
        released: 0,
    }))
}

/// Resumes a paused endpoint and sends its held deliveries (`released` counts them).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/resume", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "the endpoint, resumed", body = EndpointChanged),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn resume_endpoint(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<EndpointChanged>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let current = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &current)?;
    let released = health::resume(context(&state)?, &current).await?;
    let endpoint = workspace_endpoint(&state, &ws, &id).await?;
    Ok(Json(EndpointChanged { endpoint, released }))
}
