//! Bulk retry and bulk cancel (issue 15): `POST /api/v1/jobs/retry` and
//! `POST /api/v1/jobs/cancel` with `{"ids": [..]}` or `{"filter": {..}}` (exactly one) and
//! an optional `"dry_run": true`; `operator` and up. A workspace token only ever touches its
//! own workspace's jobs (another workspace's ids count as `not_found`; a filter naming
//! another workspace is a 403). Each changed job records the action with the token's name
//! and the request's batch id, in the transaction that changes it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use hangar_workers::job::{JobFilter, JobId, JobState};
use hangar_workers::job_action::{ActionSource, BulkOutcome, BulkTarget, JobAction, MAX_BULK_IDS};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::jobs::time_param;
use super::{ApiError, ApiState};

/// The body of a bulk action: `ids` or `filter`, exactly one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// These jobs (at most 10 000).
    #[serde(default)]
    ids: Option<Vec<i64>>,
    /// Every job matching this filter (the jobs list's filters).
    #[serde(default)]
    filter: Option<BulkFilter>,
    /// Count what would happen and change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// The jobs a bulk action is for, as `GET /api/v1/jobs` filters them. An empty filter is
/// refused unless `all` is true.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// A queue.
    #[serde(default)]
    queue: Option<String>,
    /// A job kind.
    #[serde(default)]
    kind: Option<String>,
    /// Any of these states.
    #[serde(default)]
    state: Vec<String>,
    /// A workspace (a workspace token always acts on its own only).
    #[serde(default)]
    workspace_id: Option<String>,
    /// An idempotency key.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[serde(default)]
    since: Option<String>,
    /// Created before this time (RFC 3339).
    #[serde(default)]
    until: Option<String>,
    /// Every job (of the token's workspace, for a workspace token): needed when no other
    /// field is given.
    #[serde(default)]
    all: bool,
}

impl BulkFilter {
    /// The store's filter, or what is wrong with this one.
    fn to_job_filter(&self, caller: &Caller) -> Result<JobFilter, ApiError> {
        let unprocessable = |e: String| ApiError::Unprocessable(e);
        let states = JobState::parse_lists(self.state.iter().map(String::as_str))
            .map_err(|e| unprocessable(format!("filter.state: {e}")))?;
        let filter = JobFilter {
            states,
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            workspace_id: self.workspace_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            created_from: time_param("filter.since", self.since.as_deref())
                .map_err(|e| unprocessable(e.to_string()))?,
            created_until: time_param("filter.until", self.until.as_deref())
                .map_err(|e| unprocessable(e.to_string()))?,
            ..JobFilter::default()
        };
        if let Some(asked) = &filter.workspace_id {
            caller.require_workspace(asked)?;
        }
        let empty = filter.states.is_empty()
            && filter.kind.is_none()
            && filter.queue.is_none()
            && filter.workspace_id.is_none()
            && filter.idempotency_key.is_none()
            && filter.created_from.is_none()
            && filter.created_until.is_none();
        if empty && !self.all {
            return Err(unprocessable(
                "filter: names no condition (queue, kind, state, workspace_id, \
                 idempotency_key, since, until); to act on every job say \"all\": true"
                    .to_owned(),
            ));
        }
        Ok(filter)
    }
}

/// The request's target, or why it is refused.
fn target(request: &BulkRequest, caller: &Caller) -> Result<BulkTarget, ApiError> {
    match (&request.ids, &request.filter) {
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(ApiError::Unprocessable("ids: the list is empty".to_owned()));
            }
            if ids.len() > MAX_BULK_IDS {
                return Err(ApiError::Unprocessable(format!(
                    "ids: {} ids, at most {MAX_BULK_IDS} per request (or use a filter)",
                    ids.len()
                )));
            }
            Ok(BulkTarget::Ids(ids.iter().copied().map(JobId).collect()))
        }
        (None, Some(filter)) => Ok(BulkTarget::Filter(filter.to_job_filter(caller)?)),
        _ => Err(ApiError::Unprocessable(
            "body: give exactly one of \"ids\" and \"filter\"".to_owned(),
        )),
    }
}

async fn bulk(
    caller: Caller,
    state: ApiState,
    raw: Result<Bytes, BytesRejection>,
    action: JobAction,
) -> Result<Json<BulkOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let body: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let request: BulkRequest =
        serde_json::from_value(body).map_err(|e| ApiError::Unprocessable(format!("body: {e}")))?;
    let target = target(&request, &caller)?;
    let outcome = state
        .store
        .bulk_action(
            action,
            &target,
            caller.workspace.as_deref(),
            &caller.actor(ActionSource::Api),
            request.dry_run,
        )
        .await?;
    Ok(Json(outcome))
}

/// Retries failed and cancelled jobs, by ids or by filter; other states are skipped
/// (a completed job is run again only by its own route), counted by state.
#[utoipa::path(post, path = "/api/v1/jobs/retry", tag = "jobs",
    request_body(content = BulkRequest, description = "`ids` or `filter`, and `dry_run`", content_type = "application/json"),
    responses((status = 200, description = "what changed (or, dry, would change)", body = BulkOutcome),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 422, description = "neither or both of ids and filter, an empty filter, a bad state or time"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn bulk_retry(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkOutcome>, ApiError> {
    bulk(caller, state, raw, JobAction::Retry).await
}

/// Cancels unfinished jobs (available, scheduled, running, retryable), by ids or by
/// filter; finished ones are skipped, counted by state.
#[utoipa::path(post, path = "/api/v1/jobs/cancel", tag = "jobs",
    request_body(content = BulkRequest, description = "`ids` or `filter`, and `dry_run`", content_type = "application/json"),
    responses((status = 200, description = "what changed (or, dry, would change)", body = BulkOutcome),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 422, description = "neither or both of ids and filter, an empty filter, a bad state or time"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn bulk_cancel(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkOutcome>, ApiError> {
    bulk(caller, state, raw, JobAction::Cancel).await
}
