//! An endpoint's deliveries with their attempts, resend one delivery, replay a time range,
//! expunge a delivery's content. Resend and replay create new jobs, which the retry rules
//! treat like any delivery (a failed resend is retried, not dropped).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use chrono::Utc;
use hangar_workers::store::{Delivery, DeliverySeries};
use hangar_workers::webhooks::replay::ReplayAsk;
use hangar_workers::webhooks::{self, WebhookError};

use super::auth::Caller;
use super::webhook_bodies::{
    Count, DeliveriesQuery, Replay, ReplayStarted, may_manage, parse_required, require_webhooks,
};
use super::webhooks::{context, workspace_endpoint};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// Most deliveries one listing returns.
const MAX_LIMIT: i64 = 500;

/// An endpoint's deliveries, newest first, each with its attempts (resolved address,
/// headers with signatures redacted, status, the first 16 KiB of the answer, timings).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id"),
        DeliveriesQuery),
    responses((status = 200, description = "the deliveries", body = [Delivery]),
        (status = 400, description = "bad query"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn list_deliveries(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    workspace_endpoint(&state, &ws, &id).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_LIMIT})"
        )));
    }
    Ok(Json(state.store.webhook_deliveries(&id, limit).await?))
}

/// The window of `GET …/webhook-endpoints/{id}/series`; any other parameter is a 400 that
/// names it.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliverySeriesQuery {
    /// `hour` (60 buckets of a minute, the default) or `day` (96 buckets of 15 minutes).
    #[param(inline)]
    window: Option<crate::fleet::SeriesWindow>,
}

/// An endpoint's deliveries over the last hour (by minute) or day (by 15 minutes), oldest
/// bucket first: the deliveries created in each bucket by where they stand now (succeeded,
/// failed, retrying, waiting); the numbers the endpoint page's chart draws.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/series", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id"),
        DeliverySeriesQuery),
    responses((status = 200, description = "the series", body = DeliverySeries),
        (status = 400, description = "bad window or parameter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn delivery_series(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeliverySeriesQuery>,
) -> Result<Json<DeliverySeries>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    workspace_endpoint(&state, &ws, &id).await?;
    let (step, buckets) = query.window.unwrap_or_default().buckets();
    Ok(Json(
        state
            .store
            .webhook_delivery_series(&id, Utc::now(), step, buckets)
            .await?,
    ))
}

/// Replays an endpoint's deliveries created in `[since, until)` (default until now), all or
/// `failed_only`: 202 with the count at once, the deliveries sent again by a background job
/// (`replay`: its progress, also in `…/replays`); `dry_run` only counts them.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/replay", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    request_body(content = Replay, description = "the range", content_type = "application/json"),
    responses((status = 202, description = "how many deliveries are (or would be) sent again, and the replay started", body = ReplayStarted),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"),
        (status = 422, description = "invalid range (the message names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn replay(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ReplayStarted>), ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let endpoint = workspace_endpoint(&state, &ws, &id).await?;
    may_manage(&caller, &endpoint)?;
    let body = body.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let replay: Replay = parse_required(&body)?;
    let ask = ReplayAsk {
        since: replay.since,
        until: replay.until.unwrap_or_else(Utc::now),
        failed_only: replay.failed_only,
        dry_run: replay.dry_run,
    };
    let route = context(&state)?.route();
    let (count, replay) = webhooks::replay::start(&state.store, &route, &ws, &id, &ask).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayStarted { count, replay })))
}

/// An endpoint's replays, newest first (at most 50), with their progress: `created` of
/// `total` sent again so far, `finished_at` once done.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{id}/replays", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "the replays", body = [hangar_workers::store::Replay]),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such endpoint in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn list_replays(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Vec<hangar_workers::store::Replay>>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    workspace_endpoint(&state, &ws, &id).await?;
    Ok(Json(state.store.webhook_replays(&id, 50).await?))
}

/// The caller's delivery `id` and its endpoint, or 404.
async fn delivery_for(caller: &Caller, state: &ApiState, id: &str) -> Result<Delivery, ApiError> {
    let not_found = || ApiError::from(WebhookError::DeliveryNotFound(id.to_owned()));
    let delivery = state
        .store
        .webhook_delivery(id)
        .await?
        .ok_or_else(not_found)?;
    if !caller.sees(Some(&delivery.workspace_id)) {
        return Err(not_found());
    }
    let endpoint = workspace_endpoint(state, &delivery.workspace_id, &delivery.endpoint_id).await?;
    may_manage(caller, &endpoint)?;
    Ok(delivery)
}

/// Sends one delivery again, as a new job (same delivery id, same body, fresh signatures).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resend", tag = "webhooks",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 202, description = "queued", body = Count),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such delivery"),
        (status = 409, description = "the delivery was expunged"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn resend(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Count>), ApiError> {
    require_webhooks(&caller)?;
    let delivery = delivery_for(&caller, &state, &id).await?;
    if delivery.expunged_at.is_some() {
        return Err(WebhookError::Expunged(id).into());
    }
    let context = context(&state)?;
    let count = state
        .store
        .requeue_webhook_deliveries(std::slice::from_ref(&id), &context.route())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Count { count })))
}

/// Erases what a delivery's attempts recorded of the exchange (headers, response bodies); the
/// delivery can no longer be sent.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/expunge", tag = "webhooks",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 204, description = "expunged"),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such delivery"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn expunge(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    require_webhooks(&caller)?;
    delivery_for(&caller, &state, &id).await?;
    state.store.expunge_webhook_delivery(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
