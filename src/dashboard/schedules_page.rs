//! The schedules page (`GET /schedules`): what `hangar schedules list` shows, for the
//! session's workspace or all of them — where each schedule comes from (its file, or the
//! API), whether it is enabled (and whether an operator chose so), its next run, its last
//! slot with that slot's job and state, the last run an operator started — and, for
//! `operator` and up, *Enable*/*Disable* and *Run now* (`POST /schedules/{id}/enable|disable|
//! run`, with the same origin, CSRF, role and workspace checks as every dashboard action).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use hangar_schedules::{ScheduleError, ScheduleFilter, ScheduleRow, Schedules, Source};
use hangar_workers::job::{JobId, JobState};
use maud::{Markup, html};
use serde::Deserialize;

use super::fragments::{as_of, clip, opt_time, state_badge, table};
use super::frame::Nav;
use super::session::{CsrfForm, Session, same_origin};
use super::{DashState, Page, Problem};
use crate::api::{ApiError, Role};

/// The query of `GET /schedules`: the note of an action's redirect.
#[derive(Debug, Deserialize)]
pub struct SchedulesQuery {
    /// `enabled`, `disabled` or `run:<job id>`.
    done: Option<String>,
}

/// `GET /schedules`: what `hangar schedules list` shows, with the operator's actions.
pub async fn schedules(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<SchedulesQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let filter = ScheduleFilter {
        workspace_id: session.caller.workspace.clone(),
        ..ScheduleFilter::default()
    };
    let list = Schedules::new(state.api.store.clone())
        .list(&filter)
        .await
        .map_err(ApiError::from)?;
    let operator = session.caller.role.allows(Role::Operator);
    let head = html! {
        th { "name" }
        th { "source" }
        th { "spec" }
        th { "kind · queue" }
        th { "enabled" }
        th { "next run" }
        th { "last slot" }
        th { "last slot's job" }
        th { "run now" }
        th.num { "skipped" }
        @if operator { th { "" } }
    };
    let rows = list
        .iter()
        .map(|s| {
            html! {
                tr data-schedule=(s.name) {
                    td {
                        span.mono { (clip(&s.name)) }
                        @if let Some(ws) = &s.workspace_id { br; small.mono { (clip(ws)) } }
                    }
                    td { (source(s)) }
                    td.mono { (clip(&s.spec)) }
                    td {
                        span.mono { (clip(&s.kind)) }
                        br;
                        small.mono { (clip(s.queue.as_deref().unwrap_or("(kind's pool)"))) }
                    }
                    td {
                        @if s.enabled { span.ok { "yes" } } @else { span.mut { "no" } }
                        @if s.operator_enabled.is_some() { " " small { "(operator)" } }
                    }
                    td { (opt_time(s.next_run_at, now)) }
                    td { (opt_time(s.last_slot_at, now)) }
                    td { (job(s.last_job_id, s.last_job_state)) }
                    td { (job(s.run_now_job_id, s.run_now_job_state)) }
                    td.num { (s.skipped_count) }
                    @if operator { td { (actions(s, &session.csrf)) } }
                }
            }
        })
        .collect();
    let main = html! {
        (as_of())
        h1 { "Schedules" }
        (done(query.done.as_deref()))
        (table(head, rows, "No schedules."))
        p.note {
            "An operator's enable or disable holds when the planner re-syncs the schedule files, \
             until the file changes that schedule (then the file's setting applies again). \
             Enabling runs from the next slot; missed slots are not run. Run now enqueues one \
             job at once, outside the slots."
        }
    };
    Ok(Page {
        title: "Schedules".to_owned(),
        nav: Nav::Schedules,
        main,
    }
    .render(&session))
}

/// Where the schedule comes from: its file, or the API.
fn source(s: &ScheduleRow) -> Markup {
    match (s.source, &s.source_file) {
        (Source::File, Some(file)) => html! { "file " span.mono { (clip(file)) } },
        (Source::File, None) => html! { "file" },
        (Source::Api, _) => html! { "API" },
    }
}

/// A job link with its state badge, `pruned` once retention removed it, or a dash.
fn job(id: Option<JobId>, state: Option<JobState>) -> Markup {
    match (id, state) {
        (Some(id), Some(st)) => {
            html! { a.mono href={ "/jobs/" (id) } { (id) } " " (state_badge(st)) }
        }
        (Some(id), None) => html! { span.mono { (id) } " " small { "pruned" } },
        _ => html! { "–" },
    }
}

/// The operator's buttons for one schedule.
fn actions(s: &ScheduleRow, csrf: &str) -> Markup {
    let (toggle, label) = if s.enabled {
        ("disable", "Disable")
    } else {
        ("enable", "Enable")
    };
    html! {
        form.inline method="post" action={ "/schedules/" (s.id) "/" (toggle) } {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (label) }
        }
        " "
        form.inline method="post" action={ "/schedules/" (s.id) "/run" } {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Run now" }
        }
    }
}

/// The note an action's redirect asks for.
fn done(done: Option<&str>) -> Markup {
    let text = match done {
        Some("enabled") => "Enabled: it runs from its next slot.".to_owned(),
        Some("disabled") => {
            "Disabled: no planner enqueues it until it is enabled again.".to_owned()
        }
        Some(run) if run.starts_with("run:") => {
            format!("Enqueued job {} now.", run.trim_start_matches("run:"))
        }
        _ => return html! {},
    };
    html! { p class="note done" { (text) } }
}

/// Same origin, CSRF token, operator role, and a schedule the session may see (404 as if it
/// did not exist otherwise).
async fn admit(
    session: &Session,
    state: &DashState,
    headers: &HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
    id: i64,
) -> Result<(Schedules, ScheduleRow), Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    session.check_csrf(&form.map(|f| f.0.csrf).unwrap_or_default())?;
    if !session.caller.role.allows(Role::Operator) {
        return Err(Problem::forbidden(
            Role::Operator.as_str(),
            session.caller.role.as_str(),
        ));
    }
    let schedules = Schedules::new(state.api.store.clone());
    let not_found = || ApiError::NotFound(format!("no schedule {id}"));
    let row = match schedules.get_by_id(id).await {
        Ok(row) if session.caller.sees(row.workspace_id.as_deref()) => row,
        Ok(_) | Err(ScheduleError::NotFound(_)) => return Err(not_found().into()),
        Err(other) => return Err(ApiError::from(other).into()),
    };
    Ok((schedules, row))
}

/// `POST /schedules/{id}/enable`.
pub async fn enable(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    let (schedules, row) = admit(&session, &state, &headers, form, id).await?;
    schedules
        .set_enabled(&row.name, true)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/schedules?done=enabled").into_response())
}

/// `POST /schedules/{id}/disable`.
pub async fn disable(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    let (schedules, row) = admit(&session, &state, &headers, form, id).await?;
    schedules
        .set_enabled(&row.name, false)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/schedules?done=disabled").into_response())
}

/// `POST /schedules/{id}/run`.
pub async fn run(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    let (schedules, row) = admit(&session, &state, &headers, form, id).await?;
    let (_, job) = schedules
        .run_now(&row.name, state.api.client.routes())
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to(&format!("/schedules?done=run:{job}")).into_response())
}
