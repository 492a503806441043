//! The jobs list (`GET /jobs`): newest first, filtered by state, kind, queue and workspace,
//! the filters echoed back into the form.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use hangar_workers::job::{Job, JobFilter, JobState};
use maud::{Markup, html};
use serde::Deserialize;

use super::fragments::{clip, excerpt, jobs_link, state_badge, table, time};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};

/// Jobs one list shows.
const JOBS_LIMIT: i64 = 200;

/// Filters of `GET /jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    /// One state or several, comma-separated (`failed,retryable`).
    state: Option<String>,
    kind: Option<String>,
    queue: Option<String>,
    workspace: Option<String>,
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `GET /jobs`: newest first, filtered by state, kind and workspace.
pub async fn jobs(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<JobsQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let states = JobState::parse_lists(query.state.as_deref())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("state: {e}")))?;
    let kind = nonempty(query.kind);
    let queue = nonempty(query.queue);
    let asked = nonempty(query.workspace);
    let workspace_id = match &session.caller.workspace {
        Some(own) => Some(own.clone()),
        None => asked.clone(),
    };
    let filter = JobFilter {
        states: states.clone(),
        kind: kind.clone(),
        queue: queue.clone(),
        workspace_id,
        limit: JOBS_LIMIT,
    };
    let jobs = state.api.store.jobs(&filter).await?;
    let head = html! {
        th { "id" }
        th { "state" }
        th { "kind" }
        th { "queue" }
        th.num { "attempt" }
        th { "workspace" }
        th { "run at" }
        th { "updated" }
        th { "last error" }
    };
    let rows = jobs.iter().map(|job| job_row(job, now)).collect();
    let main = html! {
        (super::fragments::as_of())
        h1 { "Jobs" }
        form.filters method="get" action="/jobs" {
            label {
                "state"
                select name="state" {
                    option value="" { "any" }
                    @if states.len() > 1 {
                        // A combination from a link (the overview's, a bookmark) stays
                        // selectable.
                        @let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
                        option selected { (names.join(",")) }
                    }
                    @for s in JobState::ALL {
                        option selected[states == [s]] { (s.as_str()) }
                    }
                }
            }
            label { "kind" input name="kind" value=(kind.as_deref().unwrap_or("")) size="12"; }
            label { "queue" input name="queue" value=(queue.as_deref().unwrap_or("")) size="10"; }
            @match &session.caller.workspace {
                Some(own) => label { "workspace" input value=(own) size="12" disabled; },
                None => label {
                    "workspace"
                    input name="workspace" value=(asked.as_deref().unwrap_or("")) size="12";
                },
            }
            button type="submit" { "Filter" }
            a.btn href="/jobs" { "Clear" }
        }
        (table(head, rows, "No jobs match these filters."))
        @if jobs.len() as i64 == JOBS_LIMIT {
            p.mut {
                small {
                    "The newest " (JOBS_LIMIT) " shown; narrow the filters to see others."
                }
            }
        }
    };
    Ok(Page {
        title: "Jobs".to_owned(),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// One job's row of the list.
fn job_row(job: &Job, now: chrono::DateTime<Utc>) -> Markup {
    let error = crate::commands::jobs::list_error(job).unwrap_or_default();
    html! {
        tr {
            td.id { a href={ "/jobs/" (job.id) } { (job.id) } }
            td { (state_badge(job.state)) }
            td.mono { a href=(jobs_link(&[("kind", &job.kind)])) { (clip(&job.kind)) } }
            td.mono { a href=(jobs_link(&[("queue", &job.queue)])) { (clip(&job.queue)) } }
            td.num { (job.attempt_short()) }
            td.mono { (clip(job.workspace_id.as_deref().unwrap_or("–"))) }
            td { (time(job.run_at, now)) }
            td { (time(job.updated_at, now)) }
            td.wrap { (excerpt(&error, 140)) }
        }
    }
}
