//! A workspace's sync runs (the audit of every run) and the changes a run applied: the same
//! objects the `{prefix}:changes` stream carries, for a main app without Redis. `viewer`
//! reads; a workspace token sees only its workspace (another's run answers 404).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_changes::ChangeRow;
use hangar_integrations::store::sync_runs::RunRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most runs or changes one page holds.
const MAX_PAGE: i64 = 1000;

/// The records of a run (CONTRACT's `records`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunRecords {
    pub read: i64,
    pub created: i64,
    pub updated: i64,
    pub removed: i64,
    pub conflicted: i64,
    pub skipped: i64,
}

/// A sync run: CONTRACT's fields (`id`, `provider`, `data_type`, `direction`, `trigger`,
/// `status`, `started_at`, `finished_at`, `records`, `error`) and the rest of the audit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncRun {
    pub id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
    /// `in` or `out`.
    pub direction: String,
    /// `schedule`, `manual`, `event` or `webhook`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` or `rate_limited`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub records: RunRecords,
    /// The provider's message (or Hangar's), when the run failed or was rate limited.
    pub error: Option<String>,
    /// The class of that error (`auth`, `rate_limit`, `server`, `client`, …).
    pub error_class: Option<String>,
    /// The job that ran it.
    pub job_id: Option<i64>,
    /// The credential version the run used.
    pub credential_version: Option<i64>,
    /// Where the run started reading.
    #[schema(value_type = Object)]
    pub cursor_before: Option<Value>,
    /// Where it stopped.
    #[schema(value_type = Object)]
    pub cursor_after: Option<Value>,
    /// Requests made to the provider.
    pub provider_calls: i64,
    /// Time until the rate budget refills, when the run stopped on it.
    pub rate_wait_ms: i64,
    /// What the run said (e.g. a full reconciliation and why).
    pub log: Vec<String>,
}

impl From<RunRow> for SyncRun {
    fn from(r: RunRow) -> Self {
        SyncRun {
            id: r.id,
            integration_id: r.integration_id,
            workspace_id: r.workspace_id,
            provider: r.provider,
            data_type: r.data_type,
            direction: r.direction,
            trigger: r.trigger,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            records: RunRecords {
                read: r.records.read,
                created: r.records.created,
                updated: r.records.updated,
                removed: r.records.removed,
                conflicted: r.records.conflicted,
                skipped: r.records.skipped,
            },
            error: r.error,
            error_class: r.error_class,
            job_id: r.job_id,
            credential_version: r.credential_version,
            cursor_before: r.cursor_before,
            cursor_after: r.cursor_after,
            provider_calls: r.provider_calls,
            rate_wait_ms: r.rate_wait_ms,
            log: r.log,
        }
    }
}

/// An applied change, as the `{prefix}:changes` stream carries it (CONTRACT.md).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncChange {
    pub sync_run_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub object_type: String,
    pub external_id: String,
    pub internal_id: Option<String>,
    /// `created`, `updated`, `appended` or `conflict`.
    pub action: String,
    /// The record as the provider sent it.
    #[schema(value_type = Object)]
    pub record: Value,
    /// RFC 3339 UTC.
    pub changed_at: String,
}

impl From<ChangeRow> for SyncChange {
    fn from(c: ChangeRow) -> Self {
        SyncChange {
            changed_at: c
                .changed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sync_run_id: c.sync_run_id,
            workspace_id: c.workspace_id,
            provider: c.provider,
            object_type: c.object_type,
            external_id: c.external_id,
            internal_id: c.internal_id,
            action: c.action,
            record: c.record,
        }
    }
}

/// Filters of `GET …/sync-runs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this integration's runs.
    integration_id: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Paging of `GET …/sync-runs/{id}/changes`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Only changes after this position (the `after` of the previous page's `Link`; 0 first).
    after: Option<i64>,
    /// At most this many, in order of application (default 1000, at most 1000).
    limit: Option<i64>,
}

fn limit(asked: Option<i64>, default: i64) -> Result<i64, ApiError> {
    let limit = asked.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_PAGE})"
        )))
    }
}

/// The sync engine's tables, on the store's database.
pub(crate) fn sync_store(state: &ApiState) -> SyncStore {
    SyncStore::new(state.store.database().clone())
}

/// A workspace's sync runs, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/sync-runs", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"), RunsQuery),
    responses((status = 200, description = "the runs, newest first", body = [SyncRun]),
        (status = 400, description = "bad filter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_runs(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<Vec<SyncRun>>, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    let limit = limit(query.limit, 100)?;
    let runs = sync_store(&state)
        .runs(&ws, query.integration_id.as_deref(), limit)
        .await?;
    Ok(Json(runs.into_iter().map(SyncRun::from).collect()))
}

/// One sync run.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/sync-runs/{id}", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run", body = SyncRun),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such run in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn get_run(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<SyncRun>, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    Ok(Json(sync_store(&state).run(Some(&ws), &id).await?.into()))
}

/// The changes a run applied, in order: the objects the `{prefix}:changes` stream carries,
/// for a main app without Redis. A full page has a `Link` header to the next one.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/sync-runs/{id}/changes", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "run id"), ChangesQuery),
    responses((status = 200, description = "the run's applied changes, in order", body = [SyncChange],
            headers(("Link" = String, description = "`<…/changes?after=<position>&limit=…>; rel=\"next\"` when the page is full"))),
        (status = 400, description = "bad paging"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such run in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_changes(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<(axum::http::HeaderMap, Json<Vec<SyncChange>>), ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    let limit = limit(query.limit, MAX_PAGE)?;
    let store = sync_store(&state);
    store.run(Some(&ws), &id).await?;
    let changes = store.changes(&id, query.after.unwrap_or(0), limit).await?;
    let mut headers = axum::http::HeaderMap::new();
    if changes.len() as i64 == limit
        && let Some(last) = changes.last()
        && let Ok(link) = axum::http::HeaderValue::from_str(&format!(
            "</api/v1/workspaces/{ws}/sync-runs/{id}/changes?after={}&limit={limit}>; rel=\"next\"",
            last.id
        ))
    {
        headers.insert(axum::http::header::LINK, link);
    }
    Ok((
        headers,
        Json(changes.into_iter().map(SyncChange::from).collect()),
    ))
}

/// The window and filter of `GET …/sync-runs/series`; any other parameter is a 400 that
/// names it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunSeriesQuery {
    /// `hour` (60 buckets of a minute, the default) or `day` (96 buckets of 15 minutes).
    #[param(inline)]
    window: Option<crate::fleet::SeriesWindow>,
    /// Only this integration's runs.
    integration_id: Option<String>,
}

/// A workspace's sync runs over the last hour (by minute) or day (by 15 minutes), oldest
/// bucket first: runs started in each bucket by status, and the records they read and
/// applied; the numbers the sync runs page's chart draws.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/sync-runs/series", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"), RunSeriesQuery),
    responses((status = 200, description = "the series", body = hangar_integrations::store::sync_run_series::RunSeries),
        (status = 400, description = "bad window or parameter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn run_series(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunSeriesQuery>,
) -> Result<Json<hangar_integrations::store::sync_run_series::RunSeries>, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    let (step, buckets) = query.window.unwrap_or_default().buckets();
    Ok(Json(
        sync_store(&state)
            .run_series(
                Some(&ws),
                query.integration_id.as_deref(),
                Utc::now(),
                step,
                buckets,
            )
            .await?,
    ))
}
