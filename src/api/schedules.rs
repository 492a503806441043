//! The schedules routes: list and read with `viewer`; enable, disable and run now with
//! `operator`. A workspace token sees only its workspace's schedules (file schedules belong to
//! no workspace, so only tokens valid for every workspace see them); another workspace's
//! schedule answers 404, as if it did not exist. Like job args, a schedule's args are for
//! `operator` and up (`null` for a viewer).

use axum::Json;
use axum::extract::State;
use hangar_schedules::{ScheduleFilter, ScheduleRow, Schedules};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most schedules one list returns.
const MAX_LIMIT: i64 = 10_000;

/// Filters of `GET /api/v1/schedules`; any other parameter is a 400 that names it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SchedulesQuery {
    /// A workspace (a workspace token always sees only its own).
    workspace_id: Option<String>,
    /// At most this many, by name (default 1000, at most 10000).
    limit: Option<i64>,
}

/// What "run now" answers: the job it enqueued and the schedule after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunNow {
    /// The job enqueued now (idempotency key `hangar:run-now:<schedule id>:<unix ms>`).
    pub job_id: i64,
    /// The schedule, with `run_now_job_id`.
    pub schedule: ScheduleRow,
}

/// The schedule as this caller may see it.
fn present(caller: &Caller, mut row: ScheduleRow) -> ScheduleRow {
    if !caller.role.allows(Role::Operator) {
        row.args = serde_json::Value::Null;
    }
    row
}

/// Schedule `id`, if the caller may see it (404 otherwise).
async fn visible(state: &ApiState, caller: &Caller, id: i64) -> Result<ScheduleRow, ApiError> {
    match Schedules::new(state.store.clone()).get_by_id(id).await {
        Ok(row) if caller.sees(row.workspace_id.as_deref()) => Ok(row),
        Ok(_) => Err(ApiError::NotFound(format!("no schedule {id}"))),
        Err(hangar_schedules::ScheduleError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("no schedule {id}")))
        }
        Err(other) => Err(other.into()),
    }
}

/// Lists schedules by name: source (`file` with its `source_file`, or `api`), enabled (and
/// an operator's choice), next run, the last slot with its job and that job's state, the last
/// run-now job with its state, skipped slots.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(SchedulesQuery),
    responses((status = 200, description = "the schedules, by name", body = [ScheduleRow]),
        (status = 400, description = "bad parameter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or another workspace"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_schedules(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SchedulesQuery>,
) -> Result<Json<Vec<ScheduleRow>>, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(ws) = &query.workspace_id {
        caller.require_workspace(ws)?;
    }
    let limit = query.limit.unwrap_or(1_000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    let filter = ScheduleFilter {
        workspace_id: caller.workspace.clone().or(query.workspace_id),
        limit,
    };
    let rows = Schedules::new(state.store.clone()).list(&filter).await?;
    Ok(Json(
        rows.into_iter().map(|r| present(&caller, r)).collect(),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "the schedule's id")),
    responses((status = 200, description = "the schedule", body = ScheduleRow),
        (status = 400, description = "bad id"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed"),
        (status = 404, description = "no such schedule in the caller's workspaces"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn get_schedule(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ScheduleRow>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(present(&caller, visible(&state, &caller, id).await?)))
}

/// Enables a schedule: it runs from its next slot after now (the slots missed while disabled
/// are not run). The operator's choice holds across re-syncs until the schedule's file (or
/// API owner) changes its definition.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/enable", tag = "schedules",
    params(("id" = i64, Path, description = "the schedule's id")),
    responses((status = 200, description = "the schedule after the change", body = ScheduleRow),
        (status = 400, description = "bad id"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed"),
        (status = 404, description = "no such schedule in the caller's workspaces"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn enable_schedule(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ScheduleRow>, ApiError> {
    set_enabled(caller, state, id, true).await
}

/// Disables a schedule: no planner enqueues it until it is enabled again. The operator's
/// choice holds across re-syncs until the schedule's file (or API owner) changes its
/// definition.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/disable", tag = "schedules",
    params(("id" = i64, Path, description = "the schedule's id")),
    responses((status = 200, description = "the schedule after the change", body = ScheduleRow),
        (status = 400, description = "bad id"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed"),
        (status = 404, description = "no such schedule in the caller's workspaces"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn disable_schedule(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ScheduleRow>, ApiError> {
    set_enabled(caller, state, id, false).await
}

async fn set_enabled(
    caller: Caller,
    state: ApiState,
    id: i64,
    enabled: bool,
) -> Result<Json<ScheduleRow>, ApiError> {
    caller.require(Role::Operator)?;
    let row = visible(&state, &caller, id).await?;
    let row = Schedules::new(state.store.clone())
        .set_enabled(&row.name, enabled)
        .await?;
    Ok(Json(present(&caller, row)))
}

/// Enqueues one job of the schedule now (its kind, args, queue, priority and workspace),
/// outside its slots: keyed `hangar:run-now:<id>:<unix ms>`, never a slot's key. 409 while a
/// run of the schedule is still active.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/run", tag = "schedules",
    params(("id" = i64, Path, description = "the schedule's id")),
    responses((status = 200, description = "the job enqueued and the schedule", body = RunNow),
        (status = 400, description = "bad id"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed"),
        (status = 404, description = "no such schedule in the caller's workspaces"),
        (status = 409, description = "a run of the schedule is still active"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn run_schedule(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunNow>, ApiError> {
    caller.require(Role::Operator)?;
    let row = visible(&state, &caller, id).await?;
    let (schedule, job) = Schedules::new(state.store.clone())
        .run_now(&row.name, state.client.routes())
        .await?;
    Ok(Json(RunNow {
        job_id: job.0,
        schedule: present(&caller, schedule),
    }))
}
