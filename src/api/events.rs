//! The events a workspace published (`GET /api/v1/events`, `GET /api/v1/events/{id}`): type,
//! id, times, and where each went (its webhook deliveries, the jobs its subscriptions made
//! and the sync runs of those jobs). `viewer` reads; an event's `data` is for `operator` and
//! up, as job args are. A workspace token sees only its workspace's events; another's answers
//! 404, as if it did not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};
use hangar_integrations::store::SyncStore;
use hangar_workers::store::{
    EventDelivery, EventDetail, EventFilter, EventJob, EventSummary, Store,
};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::sync_runs::SyncRun;
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most events one list returns.
const MAX_LIMIT: i64 = 1_000;
/// How much earlier than the event's arrival a run of its jobs may say it started (the
/// runs' times come from the process clock on SQLite).
const CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(5);

/// Filters and cursor of `GET /api/v1/events`; any other parameter is a 400 that names it.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A workspace (a workspace token always sees only its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// An event type (`trip.created`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events received at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only events received before this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The next page: the cursor the previous page's `Link` header gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// Which event `GET /api/v1/events/{id}` means when several workspaces have that id.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The event's workspace (needed only when the id exists in several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

/// One event with its data and where it went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event as listed.
    #[serde(flatten)]
    pub event: EventSummary,
    /// Its `data` (`null` for a viewer).
    pub data: serde_json::Value,
    /// Its webhook deliveries (one per subscribed endpoint), oldest first.
    pub webhook_deliveries: Vec<EventDelivery>,
    /// The jobs its event subscriptions made (e.g. an integration's `sync`), oldest first.
    #[serde(rename = "jobs_started")]
    pub jobs: Vec<EventJob>,
    /// The sync runs of those jobs.
    pub sync_runs: Vec<SyncRun>,
}

/// A time parameter: RFC 3339, or a 400 that names it.
fn time_param(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
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

/// The store's filter for `query` as `caller` may ask it (a workspace token: its own
/// workspace; another one named is a 403).
pub fn filter(caller: &Caller, query: &EventsQuery) -> Result<EventFilter, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_LIMIT})"
        )));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|v| match v.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err(ApiError::BadRequest(format!(
                "cursor: '{v}' is not a cursor of this list"
            ))),
        })
        .transpose()?;
    let workspace_id = match (&caller.workspace, query.workspace_id.clone()) {
        (Some(own), Some(asked)) if *own != asked => {
            caller.require_workspace(&asked)?;
            None
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked.filter(|w| !w.is_empty()),
    };
    Ok(EventFilter {
        workspace_id,
        event_type: query.event_type.clone().filter(|t| !t.is_empty()),
        since: time_param("since", query.since.as_deref())?,
        until: time_param("until", query.until.as_deref())?,
        before,
        limit,
    })
}

/// Lists events, newest first (by arrival). When more match than the page holds, the `Link`
/// header gives the next page (`rel="next"`, the same filters with `cursor`).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "the events, newest first, each with its counts of webhook deliveries and started jobs", body = [EventSummary],
            headers(("Link" = String, description = "`</api/v1/events?…&cursor=<cursor>>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "bad filter or cursor"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_published_events(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(mut query): ApiQuery<EventsQuery>,
) -> Result<(HeaderMap, Json<Vec<EventSummary>>), ApiError> {
    caller.require(Role::Viewer)?;
    let filter = filter(&caller, &query)?;
    let (events, next) = state.store.events_page(&filter).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        query.cursor = Some(next.to_string());
        let params = serde_urlencoded::to_string(&query).unwrap_or_default();
        if let Ok(link) = HeaderValue::from_str(&format!("</api/v1/events?{params}>; rel=\"next\""))
        {
            headers.insert(header::LINK, link);
        }
    }
    Ok((headers, Json(events)))
}

/// The event `id` (of `workspace` when given) with its data and where it went: 404 when
/// there is none, 409 when the id exists in several workspaces and none was named.
pub async fn load_event(
    store: &Store,
    workspace: Option<&str>,
    id: &str,
) -> Result<EventView, ApiError> {
    let mut found = store.event_details(workspace, id).await?;
    let detail: EventDetail = match found.len() {
        0 => return Err(ApiError::NotFound(format!("no event '{id}'"))),
        1 => found.remove(0),
        n => {
            return Err(ApiError::Conflict(format!(
                "event '{id}' exists in {n} workspaces: name one with workspace_id"
            )));
        }
    };
    let job_ids: Vec<i64> = detail.jobs.iter().map(|j| j.id).collect();
    let sync_runs = SyncStore::new(store.database().clone())
        .runs_of_jobs(
            &detail.event.workspace_id,
            &job_ids,
            detail.event.received_at - CLOCK_SLACK,
        )
        .await?
        .into_iter()
        .map(SyncRun::from)
        .collect();
    Ok(EventView {
        event: detail.event,
        data: detail.data,
        webhook_deliveries: detail.deliveries,
        jobs: detail.jobs,
        sync_runs,
    })
}

/// The event `id` as `caller` may see it: another workspace's is a 404, as if it did not
/// exist; its `data` is `null` below `operator`.
pub async fn visible_event(
    store: &Store,
    caller: &Caller,
    id: &str,
    workspace: Option<&str>,
) -> Result<EventView, ApiError> {
    let workspace = match (&caller.workspace, workspace) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::NotFound(format!("no event '{id}'")));
        }
        (Some(own), _) => Some(own.as_str()),
        (None, asked) => asked.filter(|w| !w.is_empty()),
    };
    let mut view = load_event(store, workspace, id).await?;
    if !caller.role.allows(Role::Operator) {
        view.data = serde_json::Value::Null;
    }
    Ok(view)
}

/// One event with where it went: its webhook deliveries (endpoint, state, attempts), the
/// jobs its event subscriptions made and their sync runs.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "the event id (`evt_…`)"), EventQuery),
    responses((status = 200, description = "the event and where it went", body = EventView),
        (status = 400, description = "bad parameter"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed"),
        (status = 404, description = "no such event (or another workspace's)"),
        (status = 409, description = "the id exists in several workspaces: name one"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn get_published_event(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventView>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(
        visible_event(&state.store, &caller, &id, query.workspace_id.as_deref()).await?,
    ))
}
