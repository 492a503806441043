//! The workers page (`GET /workers`, Sidekiq's "Busy", Oban's nodes): the processes that run
//! pools, alive or gone, with the jobs each runs now, and the queues with pause and resume
//! (`POST /queues/pause|resume`, operator). Processes and queues span every workspace, so
//! only tokens valid for every workspace see them, as in the API.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::fragments::{as_of, clip, done_note, opt_time, table, time};
use super::frame::Nav;
use super::session::{Session, same_origin};
use super::{DashState, Page, Problem};
use crate::api::Role;
use crate::fleet::{self, ProcessView, QueueView, RunningView};

/// `?done=` after an action.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /workers`.
pub async fn workers(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<Done>,
) -> Result<Response, Problem> {
    let content = if session.caller.workspace.is_some() {
        html! {
            p.note {
                "Processes and queues serve every workspace, so only tokens valid for every \
                 workspace see them."
            }
        }
    } else {
        let store = &state.api.store;
        let view = fleet::workers(store).await?;
        let queues = fleet::queues(store, &state.api.client.routes().queues()).await?;
        let operator = session.caller.role.allows(Role::Operator);
        html! {
            (done_note(query.done.as_deref()))
            h2 { "Processes" }
            (processes(&view.processes))
            h2 { "Running now" }
            (running(&view.processes, &view.unlisted))
            h2 { "Queues" }
            (queue_table(&queues, operator, &session.csrf))
        }
    };
    let main = html! {
        (as_of())
        h1 { "Workers" }
        (content)
    };
    Ok(Page {
        title: "Workers".to_owned(),
        nav: Nav::Workers,
        main,
    }
    .render(&session))
}

fn processes(list: &[ProcessView]) -> Markup {
    let now = Utc::now();
    let head = html! {
        th { "process" } th { "state" } th { "command" } th { "version" } th { "pools" }
        th { "started" } th { "heartbeat" } th.num { "running" }
    };
    let rows = list
        .iter()
        .map(|p| {
            html! {
                tr {
                    td.mono { (clip(&p.id)) }
                    td { @if p.alive { span.ok { "alive" } } @else { span.mut { "gone" } } }
                    td { (p.command) }
                    td.mono { (clip(&p.version)) }
                    td.mono { (clip(&p.pools.join(", "))) }
                    td { (time(p.started_at, now)) }
                    td { (time(p.heartbeat_at, now)) }
                    td.num { (p.running.len()) }
                }
            }
        })
        .collect();
    table(
        head,
        rows,
        "No process runs pools (none has beaten in the last day).",
    )
}

fn running(list: &[ProcessView], unlisted: &[RunningView]) -> Markup {
    let now = Utc::now();
    let head = html! {
        th.num { "job" } th { "kind" } th { "queue" } th.num { "attempt" }
        th { "workspace" } th { "process" } th { "since" }
    };
    let owned = list
        .iter()
        .flat_map(|p| p.running.iter().map(move |j| (j, p.id.as_str())));
    let rows = owned
        .chain(unlisted.iter().map(|j| (j, "–")))
        .map(|(j, process)| {
            html! {
                tr {
                    td.num { a.mono href={ "/jobs/" (j.id) } { (j.id) } }
                    td.mono { (clip(&j.kind)) }
                    td.mono { (clip(&j.queue)) }
                    td.num { (j.attempt) }
                    td.mono { (clip(j.workspace_id.as_deref().unwrap_or("–"))) }
                    td.mono { (clip(process)) }
                    td { (opt_time(j.started_at, now)) }
                }
            }
        })
        .collect();
    table(head, rows, "No job is running.")
}

fn queue_table(queues: &[QueueView], operator: bool, csrf: &str) -> Markup {
    let head = html! {
        th { "queue" } th { "state" } th.num { "waiting" } th.num { "running" }
        th.num { "lag" } @if operator { th { "" } }
    };
    let rows = queues
        .iter()
        .map(|q| {
            let (action, label) = if q.paused {
                ("resume", "Resume")
            } else {
                ("pause", "Pause")
            };
            html! {
                tr {
                    td.mono { (clip(&q.queue)) }
                    td { @if q.paused { span.warn { "paused" } } @else { span.ok { "running" } } }
                    td.num { (q.waiting) }
                    td.num { (q.running) }
                    td.num { (format!("{:.1} s", q.lag_seconds)) }
                    @if operator {
                        td {
                            form.inline method="post" action={ "/queues/" (action) } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="queue" value=(q.queue);
                                button type="submit" { (label) }
                            }
                        }
                    }
                }
            }
        })
        .collect();
    html! {
        p.note { "A paused queue keeps accepting jobs; no pool claims from it until it is resumed. Running jobs finish." }
        (table(head, rows, "No queues."))
    }
}

/// The form of the pause and resume buttons.
#[derive(Debug, Deserialize)]
pub struct QueueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
}

/// Same origin, CSRF token, operator role, a token for every workspace, a known queue.
async fn admit(
    session: &Session,
    state: &DashState,
    headers: &HeaderMap,
    form: Result<Form<QueueForm>, FormRejection>,
) -> Result<String, Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    let form = form.map(|f| f.0).unwrap_or(QueueForm {
        csrf: String::new(),
        queue: String::new(),
    });
    session.check_csrf(&form.csrf)?;
    if !session.caller.role.allows(Role::Operator) {
        return Err(Problem::forbidden(
            Role::Operator.as_str(),
            session.caller.role.as_str(),
        ));
    }
    if session.caller.workspace.is_some() {
        return Err(Problem::from(crate::api::ApiError::WorkspaceToken));
    }
    fleet::check_queue(
        &state.api.store,
        &state.api.client.routes().queues(),
        &form.queue,
    )
    .await
    .map_err(|e| Problem::from(crate::api::ApiError::NotFound(e)))?;
    Ok(form.queue)
}

/// `POST /queues/pause`.
pub async fn pause(
    session: Session,
    State(state): State<DashState>,
    headers: HeaderMap,
    form: Result<Form<QueueForm>, FormRejection>,
) -> Result<Response, Problem> {
    let queue = admit(&session, &state, &headers, form).await?;
    state
        .api
        .store
        .pause_queue(&queue, Some(&format!("token {}", session.caller.token_id)))
        .await?;
    Ok(Redirect::to("/workers?done=paused").into_response())
}

/// `POST /queues/resume`.
pub async fn resume(
    session: Session,
    State(state): State<DashState>,
    headers: HeaderMap,
    form: Result<Form<QueueForm>, FormRejection>,
) -> Result<Response, Problem> {
    let queue = admit(&session, &state, &headers, form).await?;
    state.api.store.resume_queue(&queue).await?;
    Ok(Redirect::to("/workers?done=resumed").into_response())
}
