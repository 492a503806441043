//! One job (`GET /jobs/{id}`): its fields, its args (operators and up), its attempts on a
//! time line (`timeline.rs`) and newest first in a table, what operators did to it
//! ("Retried by … at …"), and the buttons the role and the state allow: Retry (failed,
//! cancelled), Run now (scheduled, retryable), Run again (completed, through a
//! confirmation page) and Cancel (unfinished).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_workers::job::AttemptRecord;
use hangar_workers::job_action::JobAction;
use maud::{Markup, html};
use serde::Deserialize;

use super::actions::visible_job;
use super::fragments::{as_of, done_note, millis, state_badge, table, time};
use super::frame::Nav;
use super::session::Session;
use super::timeline::timeline;
use super::{DashState, Page, Problem};
use crate::api::Role;

/// The `done` flag an action's redirect carries.
#[derive(Debug, Deserialize)]
pub struct JobQuery {
    done: Option<String>,
}

/// `GET /jobs/{id}`: fields, args, attempts, and the actions the role allows.
pub async fn job(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    Query(query): Query<JobQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let job = visible_job(&state, &session, id).await?;
    let operator = session.caller.role.allows(Role::Operator);
    let applies = |action: JobAction| action.applies_to().contains(&job.state);
    // Retry and Run now post to the same route: it retries a failed or cancelled job and
    // runs a waiting one now.
    let actions = [
        (applies(JobAction::Retry), "retry", "Retry", "primary"),
        (applies(JobAction::RunNow), "retry", "Run now", "primary"),
        (applies(JobAction::Cancel), "cancel", "Cancel", "danger"),
    ];
    let run_again = applies(JobAction::RunAgain);
    let history = state.api.store.job_actions(job.id).await?;
    let dash = "–";
    let head = html! {
        th.num { "#" }
        th { "started" }
        th.num { "took" }
        th { "class" }
        th.num { "HTTP" }
        th { "error" }
        th.num { "next delay" }
        th { "decision" }
    };
    let rows = job
        .attempts
        .iter()
        .rev()
        .map(|a| attempt_row(a, now))
        .collect();
    let main = html! {
        (as_of())
        h1 { "Job " span.mono { (job.id) } " " (state_badge(job.state)) }
        (done_note(query.done.as_deref()))
        @if operator {
            div.actions {
                @for (allowed, action, label, class) in actions {
                    @if allowed {
                        form.inline method="post" action={ "/jobs/" (job.id) "/" (action) } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" class=(class) id=(action) { (label) }
                        }
                    }
                }
                @if run_again {
                    a.btn.primary #run-again href={ "/jobs/" (job.id) "/run-again" } { "Run again…" }
                }
            }
        }
        dl.fields {
            dt { "kind" } dd.mono { (job.kind) }
            dt { "queue" } dd.mono { (job.queue) }
            dt { "state" } dd { (state_badge(job.state)) }
            dt { "attempt" } dd { (job.attempt_label()) }
            dt { "priority" } dd { (job.priority) }
            dt { "workspace" } dd.mono { (job.workspace_id.as_deref().unwrap_or(dash)) }
            dt { "idempotency key" } dd.mono { (job.idempotency_key.as_deref().unwrap_or(dash)) }
            dt { "run at" } dd { (time(job.run_at, now)) }
            dt { "created" } dd { (time(job.created_at, now)) }
            dt { "updated" } dd { (time(job.updated_at, now)) }
            dt { "last error" } dd.mono { (job.last_error.as_deref().unwrap_or(dash)) }
        }
        h2 { "Args" }
        @if operator {
            pre #args { (serde_json::to_string_pretty(&job.args).unwrap_or_default()) }
        } @else {
            p.mut #args { "shown to operators and up" }
        }
        @if !history.is_empty() {
            h2 { "Operator actions" }
            ul #actions {
                @for a in &history {
                    li {
                        (a.action.past()) " by " span.mono { (a.actor) }
                        " (" (a.source.as_str()) ") at " (time(a.at, now))
                        @if let Some(batch) = &a.batch_id {
                            " " small.mut { "bulk " span.mono { (batch) } }
                        }
                    }
                }
            }
        }
        h2 { "Attempts" }
        (timeline(&job, now))
        (table(head, rows, "No attempt yet."))
    };
    Ok(Page {
        title: format!("Job {}", job.id),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// One attempt's row: when, how long, how it ended and what was decided.
fn attempt_row(a: &AttemptRecord, now: chrono::DateTime<Utc>) -> Markup {
    html! {
        tr {
            td.num { (a.attempt) }
            td { (time(a.started_at, now)) }
            td.num {
                @match a.finished_at {
                    Some(f) => (millis((f - a.started_at).num_milliseconds())),
                    None => span.mut { "running" },
                }
            }
            td {
                @match a.error_class {
                    Some(c) => span.bad { (c.as_str()) },
                    None => span.ok { "ok" },
                }
            }
            td.num {
                @match a.http_status {
                    Some(s) => (s),
                    None => "–",
                }
            }
            td.wrap { (a.error.as_deref().unwrap_or("")) }
            td.num { (a.next_delay_ms.map_or_else(|| "–".to_owned(), millis)) }
            td.wrap { small { (a.decision.as_deref().unwrap_or("")) } }
        }
    }
}
