//! The fleet's routes: the queues (`GET /api/v1/queues`, pause and resume with `operator`,
//! their per-minute series `GET /api/v1/queues/series`)
//! and the processes that run pools with the jobs each runs now (`GET /api/v1/workers`), as
//! `fleet.rs` shapes them for the dashboard and the CLI too. Queues are shared by every
//! workspace, so these take only tokens valid for every workspace (403 otherwise).

use axum::Json;
use axum::extract::State;

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};
use crate::fleet::{self, QueueView, SeriesWindow, WorkersView};
use hangar_workers::store::QueueSeries;

/// 403 for a workspace token, then the role check.
fn require_fleet(caller: &Caller, need: Role) -> Result<(), ApiError> {
    caller.require(need)?;
    if caller.workspace.is_some() {
        return Err(ApiError::WorkspaceToken);
    }
    Ok(())
}

/// The pools' queues, and any other queue that holds jobs or a pause.
async fn all_queues(state: &ApiState) -> Result<Vec<QueueView>, ApiError> {
    Ok(fleet::queues(&state.store, &state.client.routes().queues()).await?)
}

/// The queue `queue`, or 404.
async fn one_queue(state: &ApiState, queue: &str) -> Result<QueueView, ApiError> {
    all_queues(state)
        .await?
        .into_iter()
        .find(|q| q.queue == queue)
        .ok_or_else(|| ApiError::NotFound(format!("no queue '{queue}'")))
}

/// Lists the queues: paused or not, jobs waiting and running, lag.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, description = "the queues, by name", body = [QueueView]),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_queues(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    require_fleet(&caller, Role::Viewer)?;
    Ok(Json(all_queues(&state).await?))
}

/// Pauses a queue: it keeps accepting jobs and no pool claims from it; running jobs finish.
/// Pausing a paused queue changes nothing.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path, description = "the queue")),
    responses((status = 200, description = "the queue after the change", body = QueueView),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no such queue"), (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn pause_queue(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<QueueView>, ApiError> {
    require_fleet(&caller, Role::Operator)?;
    one_queue(&state, &queue).await?;
    let by = format!("token {}", caller.token_id);
    state.store.pause_queue(&queue, Some(&by)).await?;
    Ok(Json(one_queue(&state, &queue).await?))
}

/// Resumes a paused queue: its pools claim again at once. Resuming a running queue changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path, description = "the queue")),
    responses((status = 200, description = "the queue after the change", body = QueueView),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no such queue"), (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn resume_queue(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<QueueView>, ApiError> {
    require_fleet(&caller, Role::Operator)?;
    one_queue(&state, &queue).await?;
    state.store.resume_queue(&queue).await?;
    Ok(Json(one_queue(&state, &queue).await?))
}

/// The processes that run pools (alive first) with the jobs each runs now.
#[utoipa::path(get, path = "/api/v1/workers", tag = "queues",
    responses((status = 200, description = "the processes and their running jobs", body = WorkersView),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_workers(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<WorkersView>, ApiError> {
    require_fleet(&caller, Role::Viewer)?;
    Ok(Json(fleet::workers(&state.store).await?))
}

/// The window of `GET /api/v1/queues/series`; any other parameter is a 400 that names it.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// `hour` (60 buckets of a minute, the default) or `day` (96 buckets of 15 minutes).
    #[param(inline)]
    window: Option<SeriesWindow>,
}

/// Per queue, jobs completed and failed (and failed attempts retried) with the mean attempt
/// duration and its p50/p95/p99 (from a √2 log-scale histogram: the upper bound of the
/// bucket), and the depth and lag sampled once a minute (the bucket's highest), by minute
/// over the last hour or by 15 minutes over the last day, oldest bucket first; the numbers
/// the dashboard's charts draw. Queues with nothing in the window are left out.
#[utoipa::path(get, path = "/api/v1/queues/series", tag = "queues", params(SeriesQuery),
    responses((status = 200, description = "the series, by queue", body = [QueueSeries]),
        (status = 400, description = "bad window"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn queue_series(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Json<Vec<QueueSeries>>, ApiError> {
    require_fleet(&caller, Role::Viewer)?;
    let window = query.window.unwrap_or_default();
    Ok(Json(
        fleet::series(&state.store, window, chrono::Utc::now()).await?,
    ))
}
