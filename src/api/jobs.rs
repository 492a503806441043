//! The jobs routes (CONTRACT.md, "HTTP API"): read with `viewer`, act with `operator`. A
//! workspace token sees only its workspace's jobs; another workspace's job answers 404, as if
//! it did not exist.

use axum::Json;
use axum::extract::State;
use hangar_workers::job::{Job, JobFilter, JobId, JobState};
use serde::Deserialize;

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most jobs one list returns.
const MAX_LIMIT: i64 = 1_000;

/// The job, if the caller may see it (404 otherwise).
async fn visible_job(state: &ApiState, caller: &Caller, id: i64) -> Result<Job, ApiError> {
    Ok(caller.job(&state.store, JobId(id)).await?)
}

/// Filters of `GET /api/v1/jobs`; any other parameter is a 400 that names it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// available, scheduled, running, retryable, completed, failed or cancelled; several
    /// comma-separated (`failed,retryable`) for any of them.
    state: Option<String>,
    /// A job kind.
    kind: Option<String>,
    /// A workspace (a workspace token always sees only its own).
    workspace_id: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "the jobs (job JSON of CONTRACT.md)", body = [Job]),
        (status = 400, description = "bad filter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_jobs(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<Json<Vec<Job>>, ApiError> {
    caller.require(Role::Viewer)?;
    // `state=failed,retryable`: any of several states.
    let states = JobState::parse_lists(query.state.as_deref())
        .map_err(|e| ApiError::BadRequest(format!("state: {e}")))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_LIMIT})"
        )));
    }
    let workspace_id = match (&caller.workspace, query.workspace_id) {
        (Some(own), Some(asked)) if *own != asked => {
            caller.require_workspace(&asked)?;
            None
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let filter = JobFilter {
        states,
        kind: query.kind,
        queue: None,
        workspace_id,
        limit,
    };
    let jobs = state.store.jobs(&filter).await?;
    Ok(Json(jobs.into_iter().map(|j| caller.present(j)).collect()))
}

/// One job with its attempts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job JSON of CONTRACT.md", body = Job),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job (or another workspace's)"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn get_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(visible_job(&state, &caller, id).await?))
}

/// Runs a job again now, with a fresh retry budget.
///
/// Every class's failures, the rate-limit snoozes and the token refresh count from this retry.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job after the change", body = Job),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job"), (status = 409, description = "the job is running or available"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn retry_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Operator)?;
    visible_job(&state, &caller, id).await?;
    let job = state.store.retry_job(JobId(id)).await?;
    Ok(Json(caller.present(job)))
}

/// Cancels an unfinished job (a running attempt stops at its next heartbeat).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job after the change", body = Job),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job"), (status = 409, description = "the job is already finished"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn cancel_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Operator)?;
    visible_job(&state, &caller, id).await?;
    let job = state.store.cancel_job(JobId(id)).await?;
    Ok(Json(caller.present(job)))
}
