//! The sync runs page (`GET /sync-runs`): the newest runs (of the session's workspace, or
//! `?workspace=` / `?integration=`), each with its trigger, direction, status, times, record
//! counts, provider calls, time waited on rate budgets and its error (class and message).

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::fragments::{as_of, clip, millis, none, opt_time, table, time};
use super::frame::Nav;
use super::integrations_page::{WorkspaceQuery, workspace_of};
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::sync_runs::sync_store;

/// A run's status as a badge.
pub fn run_status(status: &str) -> Markup {
    let class = match status {
        "succeeded" => "ok",
        "failed" => "bad",
        "rate_limited" => "warn",
        _ => "mut",
    };
    html! { span class=(class) { (status) } }
}

/// `GET /sync-runs`.
pub async fn sync_runs(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Response, Problem> {
    let workspace = workspace_of(&session, query.workspace.as_deref())?;
    let now = Utc::now();
    let runs = sync_store(&state.api)
        .runs_in(workspace.as_deref(), query.integration.as_deref(), 200)
        .await
        .map_err(crate::api::ApiError::from)?;
    let head = html! {
        th { "run" }
        th { "provider" }
        th { "workspace" }
        th { "data type" }
        th { "direction" }
        th { "trigger" }
        th { "status" }
        th { "started" }
        th { "finished" }
        th.num { "read" }
        th.num { "created" }
        th.num { "updated" }
        th.num { "removed" }
        th.num { "conflicted" }
        th.num { "skipped" }
        th.num { "calls" }
        th.num { "budget wait" }
        th { "job" }
        th { "error" }
    };
    let rows = runs
        .iter()
        .map(|r| {
            html! {
                tr {
                    td.mono { (clip(&r.id)) }
                    td.mono { (clip(&r.provider)) }
                    td.mono { (clip(&r.workspace_id)) }
                    td.mono { (clip(&r.data_type)) }
                    td { (r.direction) }
                    td { (r.trigger) }
                    td { (run_status(&r.status)) }
                    td { (time(r.started_at, now)) }
                    td { (opt_time(r.finished_at, now)) }
                    td.num { (r.records.read) }
                    td.num { (r.records.created) }
                    td.num { (r.records.updated) }
                    td.num { (r.records.removed) }
                    td.num { (r.records.conflicted) }
                    td.num { (r.records.skipped) }
                    td.num { (r.provider_calls) }
                    td.num { (millis(r.rate_wait_ms)) }
                    td {
                        @match r.job_id {
                            Some(id) => a.mono href={ "/jobs/" (id) } { (id) },
                            None => (none()),
                        }
                    }
                    td.wrap {
                        @match (&r.error_class, &r.error) {
                            (Some(class), Some(e)) => { span.bad { (class) } ": " (e) },
                            (None, Some(e)) => (e),
                            _ => (none()),
                        }
                    }
                }
            }
        })
        .collect();
    let main = html! {
        (as_of())
        h1 { "Sync runs" }
        (table(head, rows, "No sync runs."))
    };
    Ok(Page {
        title: "Sync runs".to_owned(),
        nav: Nav::SyncRuns,
        main,
    }
    .render(&session))
}
