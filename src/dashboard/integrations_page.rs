//! The integrations page (`GET /integrations`): a workspace's integrations (every workspace
//! for a token valid for all; `?workspace=` narrows it) with their status (`needs_reauth`
//! and why stand out), data types and frequency, their last sync run and the next one their
//! schedules plan. Read-only (changing an integration is the API's `PUT`, with its secrets).

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use hangar_integrations::integration::Status;
use hangar_schedules::{ScheduleFilter, Schedules};
use maud::html;
use serde::Deserialize;

use super::fragments::{as_of, clip, none, opt_time, table, time};
use super::frame::Nav;
use super::session::Session;
use super::sync_runs_page::run_status;
use super::{DashState, Page, Problem};
use crate::api::sync_runs::sync_store;

/// `?workspace=` of the integration pages.
#[derive(Debug, Default, Deserialize)]
pub struct WorkspaceQuery {
    /// Only this workspace's (a workspace token always sees only its own).
    pub workspace: Option<String>,
    /// Only this integration's (sync runs).
    pub integration: Option<String>,
    /// The sync runs chart's window: `day`, or the last hour.
    pub window: Option<String>,
}

/// The workspace a page shows: the session's, or the one asked for if the session may see it.
pub fn workspace_of(session: &Session, asked: Option<&str>) -> Result<Option<String>, Problem> {
    let asked = asked.filter(|w| !w.is_empty());
    if let Some(asked) = asked {
        session.caller.require_workspace(asked)?;
    }
    Ok(session
        .caller
        .workspace
        .clone()
        .or(asked.map(str::to_owned)))
}

/// A note for a process without the master key (integrations cannot be read there).
pub fn no_key() -> maud::Markup {
    html! {
        p.note { "Integrations need the master key (HANGAR_MASTER_KEY) in this process." }
    }
}

/// `GET /integrations`.
pub async fn integrations(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Response, Problem> {
    let workspace = workspace_of(&session, query.workspace.as_deref())?;
    let now = Utc::now();
    let Some(context) = state.api.integrations.as_ref() else {
        return Ok(page(&session, html! { h1 { "Integrations" } (no_key()) }));
    };
    let list = context
        .list(workspace.as_deref())
        .await
        .map_err(crate::api::ApiError::from)?;
    let schedules = Schedules::new(state.api.store.clone())
        .list(&ScheduleFilter {
            workspace_id: workspace.clone(),
            limit: 10_000,
        })
        .await
        .map_err(crate::api::ApiError::from)?;
    let runs = sync_store(&state.api);
    let mut rows = Vec::with_capacity(list.len());
    for i in &list {
        let last = runs
            .runs(&i.workspace_id, Some(&i.id), 1)
            .await
            .map_err(crate::api::ApiError::from)?
            .into_iter()
            .next();
        let next: Option<DateTime<Utc>> = schedules
            .iter()
            .filter(|s| s.integration.as_deref() == Some(i.id.as_str()) && s.enabled)
            .filter_map(|s| s.next_run_at)
            .min();
        let runs_link = format!(
            "/sync-runs?{}",
            serde_urlencoded::to_string([("workspace", &i.workspace_id), ("integration", &i.id)])
                .unwrap_or_default()
        );
        rows.push(html! {
            tr {
                td.mono { (clip(&i.provider)) }
                td.mono { (clip(&i.workspace_id)) }
                td {
                    @match i.status {
                        Status::Active => span.ok { "active" },
                        Status::Disabled => span.mut { "disabled" },
                        Status::NeedsReauth => span.bad { "needs_reauth" },
                    }
                    @if let Some(reason) = &i.status_reason {
                        br; small.wrap { (reason) }
                    }
                }
                td.mono { (i.data_types.join(", ")) }
                td.mono { (clip(&i.frequency)) }
                td {
                    @match &last {
                        Some(run) => {
                            (run_status(&run.status)) " " (time(run.started_at, now)) " "
                            a href=(runs_link) { "runs" }
                        }
                        None => (none()),
                    }
                }
                td {
                    @if i.status == Status::Active { (opt_time(next, now)) } @else { (none()) }
                }
            }
        });
    }
    let head = html! {
        th { "provider" }
        th { "workspace" }
        th { "status" }
        th { "data types" }
        th { "frequency" }
        th { "last run" }
        th { "next run" }
    };
    let main = html! {
        (as_of())
        h1 { "Integrations" }
        (table(head, rows, "No integrations."))
    };
    Ok(page(&session, main))
}

fn page(session: &Session, main: maud::Markup) -> Response {
    Page {
        title: "Integrations".to_owned(),
        nav: Nav::Integrations,
        main,
    }
    .render(session)
}
