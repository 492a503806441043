//! The alerts page (`GET /alerts`): open alerts, or all with `?all=1`, newest first, a page
//! at a time (`?before=` an id), with the acknowledge button for operators.

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_workers::alerts::model::Severity;
use hangar_workers::store::{AlertFilter, AlertRow, AlertState, MAX_ALERT_PAGE};
use maud::{Markup, html};
use serde::Deserialize;

use super::fragments::{as_of, clip, done_note, relative, table, time};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::Role;

/// The query of `GET /alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    /// The `done` flag an action's redirect carries.
    done: Option<String>,
    /// `1` or `true`: resolved and acknowledged alerts too.
    all: Option<String>,
    /// The cursor: alerts older than this id.
    before: Option<i64>,
}

/// `GET /alerts`: open alerts, or all with `?all=1`.
pub async fn alerts(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<AlertsQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let all = query.all.is_some_and(|a| a == "1" || a == "true");
    let page = state
        .api
        .store
        .list_alerts(&AlertFilter {
            workspace_id: session.caller.workspace.clone(),
            states: if all {
                Vec::new()
            } else {
                vec![AlertState::Open]
            },
            before: query.before,
            limit: MAX_ALERT_PAGE,
        })
        .await?;
    let head = html! {
        th { "id" }
        th { "severity" }
        th { "kind" }
        th { "message" }
        th { "job" }
        th { "workspace" }
        th.num { "seen" }
        th { "first" }
        th { "last" }
        th { "status" }
    };
    let rows = page
        .alerts
        .iter()
        .map(|a| alert_row(a, &session, now))
        .collect();
    let main = html! {
        (as_of())
        h1 {
            "Alerts "
            small {
                @if all {
                    a href="/alerts" { "only open" }
                } @else {
                    a href="/alerts?all=1" { "show resolved too" }
                }
            }
        }
        (done_note(query.done.as_deref()))
        (table(head, rows, "No alerts. All quiet."))
        @if let Some(next) = page.next_before {
            p {
                a href={ "/alerts?before=" (next) @if all { "&all=1" } } { "Older alerts" }
            }
        }
    };
    Ok(Page {
        title: "Alerts".to_owned(),
        nav: Nav::Alerts,
        main,
    }
    .render(&session))
}

/// One alert's row, with the acknowledge button when it is open and the role allows it.
fn alert_row(a: &AlertRow, session: &Session, now: chrono::DateTime<Utc>) -> Markup {
    let operator = session.caller.role.allows(Role::Operator);
    html! {
        tr {
            td.id { (a.id) }
            td class=(if a.severity == Severity::Critical { "bad" } else { "warn" }) { (a.severity.as_str()) }
            td.mono { (clip(a.kind.as_str())) }
            td.wrap { (a.message) }
            td {
                @match a.job_id {
                    Some(id) => a.mono href={ "/jobs/" (id) } { (id) },
                    None => "–",
                }
            }
            td.mono { (clip(a.workspace_id.as_deref().unwrap_or("–"))) }
            td.num { (a.occurrences) }
            td { (time(a.created_at, now)) }
            td { (time(a.last_seen_at, now)) }
            td {
                @if let Some(at) = a.resolved_at {
                    "resolved " (relative(at, now))
                } @else if let Some(at) = a.acknowledged_at {
                    "acknowledged " (relative(at, now))
                } @else if operator {
                    form.inline method="post" action={ "/alerts/" (a.id) "/ack" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Acknowledge" }
                    }
                } @else {
                    span.bad { "open" }
                }
            }
        }
    }
}
