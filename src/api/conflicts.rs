//! Financial records held for review: list (`viewer`; a workspace token sees only its
//! workspace's) and resolve (`{"take": "ours"|"theirs"}`, `admin` or `owner`: conflicts are
//! financial records of operations and billing systems — safety records never conflict, they
//! are append-only). Taking theirs applies the provider's version and hands it to the
//! main app as an `updated` change (readable at once over `…/sync-runs/{id}/changes`, put on
//! the Redis stream by the integration's next run); taking ours keeps the platform's side.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use chrono::{DateTime, Utc};
use hangar_integrations::store::SyncStoreError;
use hangar_integrations::store::sync_conflicts::{ConflictRow, Take};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Caller, Role};
use super::sync_runs::sync_store;
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// A conflict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    pub id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
    /// The run that found it.
    pub sync_run_id: String,
    pub object_type: String,
    pub external_id: String,
    pub internal_id: Option<String>,
    /// `changed_on_both_sides`, `stale_concurrency_token` or `removed_at_source`.
    pub reason: String,
    /// The platform's side.
    #[schema(value_type = Object)]
    pub ours: Option<Value>,
    /// The provider's side.
    #[schema(value_type = Object)]
    pub theirs: Value,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `ours` or `theirs` once resolved.
    pub resolution: Option<String>,
}

impl From<ConflictRow> for Conflict {
    fn from(c: ConflictRow) -> Self {
        Conflict {
            id: c.id,
            integration_id: c.integration_id,
            workspace_id: c.workspace_id,
            provider: c.provider,
            data_type: c.data_type,
            sync_run_id: c.sync_run_id,
            object_type: c.object_type,
            external_id: c.external_id,
            internal_id: c.internal_id,
            reason: c.reason,
            ours: c.ours,
            theirs: c.theirs,
            created_at: c.created_at,
            resolved_at: c.resolved_at,
            resolution: c.resolution,
        }
    }
}

/// Filters of `GET /api/v1/conflicts`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictsQuery {
    /// Only this workspace's (a workspace token always sees only its own).
    workspace_id: Option<String>,
    /// `open` (the default) or `all`.
    state: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// The body of a resolve.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `ours` or `theirs`.
    take: String,
}

/// Conflicts, newest first: open ones unless `state=all`.
#[utoipa::path(get, path = "/api/v1/conflicts", tag = "integrations", params(ConflictsQuery),
    responses((status = 200, description = "the conflicts", body = [Conflict]),
        (status = 400, description = "bad filter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_conflicts(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ConflictsQuery>,
) -> Result<Json<Vec<Conflict>>, ApiError> {
    caller.require(Role::Viewer)?;
    let open_only = match query.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state: `{other}` is not one of open, all"
            )));
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to 1000)"
        )));
    }
    if let Some(asked) = &query.workspace_id {
        caller.require_workspace(asked)?;
    }
    let workspace = caller.workspace.clone().or(query.workspace_id);
    let rows = sync_store(&state)
        .conflicts(workspace.as_deref(), open_only, limit)
        .await?;
    Ok(Json(rows.into_iter().map(Conflict::from).collect()))
}

/// Resolves a conflict: `{"take": "ours"}` keeps the platform's side, `{"take": "theirs"}`
/// applies the provider's.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", tag = "integrations",
    params(("id" = String, Path, description = "conflict id")),
    request_body(content = ResolveBody, description = "which side to keep", content_type = "application/json"),
    responses((status = 200, description = "the conflict, resolved", body = Conflict),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such conflict (or another workspace's)"),
        (status = 409, description = "already resolved"),
        (status = 422, description = "`take` is not ours or theirs"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn resolve_conflict(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Conflict>, ApiError> {
    caller.require(Role::Admin)?;
    let store = sync_store(&state);
    let conflict = store.conflict(&id).await?;
    if !caller.sees(Some(&conflict.workspace_id)) {
        return Err(SyncStoreError::NotFound(format!("conflict {id}")).into());
    }
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let body: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let body: ResolveBody = serde_json::from_value(body)
        .map_err(|e| ApiError::Unprocessable(format!("resolve: {e}")))?;
    let take = match body.take.as_str() {
        "ours" => Take::Ours,
        "theirs" => Take::Theirs,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "take: `{other}` is not one of ours, theirs"
            )));
        }
    };
    let who = format!("token:{}", caller.token_id);
    let (resolved, _change) = store.resolve_conflict(&id, take, &who).await?;
    Ok(Json(resolved.into()))
}
