//! The jobs routes (CONTRACT.md, "HTTP API"): read with `viewer`, act with `operator`. A
//! workspace token sees only its workspace's jobs; another workspace's job answers 404, as if
//! it did not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};
use hangar_workers::job::{Job, JobFilter, JobId, JobState};
use hangar_workers::job_action::{ActionSource, JobDetail};
use hangar_workers::store::StoreError;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most jobs one list returns.
const MAX_LIMIT: i64 = 1_000;

/// The job, if the caller may see it (404 otherwise).
async fn visible_job(state: &ApiState, caller: &Caller, id: i64) -> Result<Job, ApiError> {
    Ok(caller.job(&state.store, JobId(id)).await?)
}

/// Filters and cursor of `GET /api/v1/jobs`; any other parameter is a 400 that names it.
#[derive(Debug, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// available, scheduled, running, retryable, completed, failed or cancelled; several
    /// comma-separated (`failed,retryable`) for any of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    /// A job kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    /// A workspace (a workspace token always sees only its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_id: Option<String>,
    /// A queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    /// Only the job with this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    /// Only jobs with this idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    created_from: Option<String>,
    /// Only jobs created before this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    created_until: Option<String>,
    /// The next page: the cursor the previous page's `Link` header gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
}

/// A time parameter: RFC 3339, or a 400 that names it.
pub(super) fn time_param(
    name: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "{name}: '{v}' is not an RFC 3339 time (2026-12-01T13:45:00Z)"
                    ))
                })
        })
        .transpose()
}

/// Lists jobs, newest first. When more match than the page holds, the `Link` header gives
/// the next page (`rel="next"`, the same filters with `cursor`).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "the jobs (job JSON of CONTRACT.md)", body = [Job],
            headers(("Link" = String, description = "`</api/v1/jobs?…&cursor=<cursor>>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "bad filter or cursor"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_jobs(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(mut query): ApiQuery<JobsQuery>,
) -> Result<(HeaderMap, Json<Vec<Job>>), ApiError> {
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
    let created_from = time_param("created_from", query.created_from.as_deref())?;
    let created_until = time_param("created_until", query.created_until.as_deref())?;
    let before_id =
        hangar_workers::job::parse_cursor(query.cursor.as_deref()).map_err(ApiError::BadRequest)?;
    let workspace_id = match (&caller.workspace, query.workspace_id.clone()) {
        (Some(own), Some(asked)) if *own != asked => {
            caller.require_workspace(&asked)?;
            None
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let filter = JobFilter {
        states,
        kind: query.kind.clone(),
        queue: query.queue.clone(),
        workspace_id,
        id: query.id.map(JobId),
        idempotency_key: query.idempotency_key.clone(),
        created_from,
        created_until,
        before_id,
        limit,
    };
    let (jobs, next) = state.store.jobs_page(&filter).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        query.cursor = Some(next.0.to_string());
        let params = serde_urlencoded::to_string(&query).unwrap_or_default();
        if let Ok(link) = HeaderValue::from_str(&format!("</api/v1/jobs?{params}>; rel=\"next\"")) {
            headers.insert(header::LINK, link);
        }
    }
    Ok((
        headers,
        Json(jobs.into_iter().map(|j| caller.present(j)).collect()),
    ))
}

/// One job with its attempts and the operators' actions on it (`actions`, oldest first).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job JSON of CONTRACT.md, plus `actions`", body = JobDetail),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job (or another workspace's)"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn get_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobDetail>, ApiError> {
    caller.require(Role::Viewer)?;
    let job = visible_job(&state, &caller, id).await?;
    let actions = state.store.job_actions(job.id).await?;
    Ok(Json(JobDetail { job, actions }))
}

/// Runs a failed or cancelled job again now (a scheduled or retryable one: now instead of
/// later), with a fresh retry budget.
///
/// Every class's failures, the rate-limit snoozes and the token refresh count from this retry.
/// A completed job is not retried: 409, naming `POST /api/v1/jobs/{id}/run-again`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job after the change", body = Job),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job"),
        (status = 409, description = "the job is running or available, or completed (use run-again)"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn retry_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Operator)?;
    visible_job(&state, &caller, id).await?;
    let job = match state
        .store
        .retry_job(JobId(id), &caller.actor(ActionSource::Api))
        .await
    {
        Err(StoreError::JobConflict {
            state: JobState::Completed,
            ..
        }) => return Err(ApiError::CompletedJob(id)),
        other => other?,
    };
    Ok(Json(caller.present(job)))
}

/// Queues a completed job once more, with a fresh retry budget; its attempts stay.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/run-again", tag = "jobs", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, description = "the job after the change", body = Job),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such job"), (status = 409, description = "the job is not completed"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn run_again_job(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Operator)?;
    visible_job(&state, &caller, id).await?;
    let job = state
        .store
        .run_again_job(JobId(id), &caller.actor(ActionSource::Api))
        .await?;
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
    let job = state
        .store
        .cancel_job(JobId(id), &caller.actor(ActionSource::Api))
        .await?;
    Ok(Json(caller.present(job)))
}
