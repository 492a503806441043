//! The alerts routes (CONTRACT.md, "HTTP API"): list with `viewer`, acknowledge with
//! `operator`. The workspace and state filters run in SQL and the list pages by alert id
//! (`?before=`), so no alert is ever out of reach however many others there are. A workspace
//! token sees only its workspace's alerts; another workspace's alert answers 404, as if it did
//! not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use hangar_workers::store::{
    AlertFilter, AlertRow, AlertState, DEFAULT_ALERT_PAGE, MAX_ALERT_PAGE,
};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// Filters and cursor of `GET /api/v1/alerts`.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// Only alerts in these states, comma-separated: `open` (neither acknowledged nor
    /// resolved), `acknowledged` (acknowledged, not resolved), `resolved`. Default: `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    /// `true`: alerts in every state (not together with `state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
    /// Only this workspace's alerts (a workspace token always sees only its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_id: Option<String>,
    /// Only alerts older than this alert id: the cursor the previous page's `Link` header
    /// gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
}

impl AlertsQuery {
    /// The states asked for; an empty list means every state.
    fn states(&self) -> Result<Vec<AlertState>, ApiError> {
        match (&self.state, self.all) {
            (Some(_), Some(true)) => Err(ApiError::BadRequest(
                "state and all=true contradict each other: give one".to_owned(),
            )),
            (None, Some(true)) => Ok(Vec::new()),
            (None, _) => Ok(vec![AlertState::Open]),
            (Some(list), _) => list
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<AlertState>()
                        .map_err(|e| ApiError::BadRequest(format!("state: {e}")))
                })
                .collect(),
        }
    }
}

/// Alerts, newest first: open ones unless `state` or `all` says otherwise. When more match
/// than the page holds, the `Link` header gives the next page (`rel="next"`, with `before`).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, description = "a page of alerts (alert JSON of CONTRACT.md, with its `state`)",
            body = [AlertRow],
            headers(("Link" = String, description = "`</api/v1/alerts?…&before=<id>>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "bad filter or cursor"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"), (status = 429, description = "rate limited")),
    security(("bearer" = ["viewer"])))]
pub async fn list_alerts(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(mut query): ApiQuery<AlertsQuery>,
) -> Result<(HeaderMap, Json<Vec<AlertRow>>), ApiError> {
    caller.require(Role::Viewer)?;
    let states = query.states()?;
    let limit = query.limit.unwrap_or(DEFAULT_ALERT_PAGE);
    if !(1..=MAX_ALERT_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_ALERT_PAGE})"
        )));
    }
    if let Some(asked) = &query.workspace_id {
        caller.require_workspace(asked)?;
    }
    let filter = AlertFilter {
        workspace_id: caller.workspace.clone().or(query.workspace_id.clone()),
        states,
        before: query.before,
        limit,
    };
    let page = state.store.list_alerts(&filter).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = page.next_before {
        query.before = Some(next);
        let params = serde_urlencoded::to_string(&query).unwrap_or_default();
        if let Ok(link) = HeaderValue::from_str(&format!("</api/v1/alerts?{params}>; rel=\"next\""))
        {
            headers.insert(header::LINK, link);
        }
    }
    Ok((headers, Json(page.alerts)))
}

/// Acknowledges an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts", params(("id" = i64, Path, description = "alert id")),
    responses((status = 200, description = "the alert after the change", body = AlertRow),
        (status = 400, description = "the id is not a number"),
        (status = 401, description = "no valid token"), (status = 403, description = "role not allowed"),
        (status = 404, description = "no such alert (or another workspace's)"), (status = 429, description = "rate limited")),
    security(("bearer" = ["operator"])))]
pub async fn ack_alert(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AlertRow>, ApiError> {
    caller.require(Role::Operator)?;
    caller.check_alert(&state.store, id).await?;
    Ok(Json(state.store.ack_alert(id).await?))
}
