//! The schedules page (`GET /schedules`): what `hangar schedules list` shows, for the
//! session's workspace or all of them.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use hangar_schedules::{ScheduleFilter, Schedules};
use maud::html;

use super::fragments::{as_of, clip, opt_time, state_badge, table};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};

/// `GET /schedules`: what `hangar schedules list` shows.
pub async fn schedules(
    session: Session,
    State(state): State<DashState>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let filter = ScheduleFilter {
        workspace_id: session.caller.workspace.clone(),
        ..ScheduleFilter::default()
    };
    let list = Schedules::new(state.api.store.clone())
        .list(&filter)
        .await
        .map_err(crate::api::ApiError::from)?;
    let head = html! {
        th { "name" }
        th { "spec" }
        th { "kind" }
        th { "queue" }
        th { "workspace" }
        th { "enabled" }
        th { "next run" }
        th { "last job" }
        th.num { "skipped" }
    };
    let rows = list
        .iter()
        .map(|s| {
            html! {
                tr {
                    td.mono { (clip(&s.name)) }
                    td.mono { (clip(&s.spec)) }
                    td.mono { (clip(&s.kind)) }
                    td.mono { (clip(s.queue.as_deref().unwrap_or("(kind's pool)"))) }
                    td.mono { (clip(s.workspace_id.as_deref().unwrap_or("–"))) }
                    td {
                        @if s.enabled { span.ok { "yes" } } @else { span.mut { "no" } }
                    }
                    td { (opt_time(s.next_run_at, now)) }
                    td {
                        @match (s.last_job_id, s.last_job_state) {
                            (Some(id), Some(st)) => {
                                a.mono href={ "/jobs/" (id) } { (id) } " " (state_badge(st))
                            }
                            (Some(id), None) => {
                                span.mono { (id) } " " small { "pruned" }
                            }
                            _ => "–",
                        }
                    }
                    td.num { (s.skipped_count) }
                }
            }
        })
        .collect();
    let main = html! {
        (as_of())
        h1 { "Schedules" }
        (table(head, rows, "No schedules."))
    };
    Ok(Page {
        title: "Schedules".to_owned(),
        nav: Nav::Schedules,
        main,
    }
    .render(&session))
}
