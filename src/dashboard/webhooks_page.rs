//! The webhook pages: a workspace's endpoints (`GET /webhooks?workspace=`) with their health,
//! last success, failure streak, disabled reason and circuit; one endpoint
//! (`GET /webhooks/{id}`) with its limits, a chart of its deliveries by outcome over the last
//! hour or day (`?window=day`), and its deliveries newest first, each with its
//! attempts, and the resend and replay buttons for whoever may manage it. The same roles as
//! the API: reading needs `admin` or `safety_manager`, resending and replaying the rights to
//! everything the endpoint receives (checked again by the actions, whatever the page showed).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_workers::store::{Attempt, Delivery, DeliverySeries, Replay};
use hangar_workers::webhooks::{Circuit, Endpoint, Health};
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{Bar, Series, bars, window_of, window_tabs, window_title};
use super::fragments::{as_of, clip, millis, none, opt_time, table, time};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::webhook_bodies::{may_manage, require_webhooks};
use crate::fleet::SeriesWindow;

/// Deliveries one endpoint page shows.
const DELIVERIES_SHOWN: i64 = 50;

/// The query of `GET /webhooks`.
#[derive(Debug, Deserialize)]
pub struct WebhooksQuery {
    /// The workspace (a workspace token's own by default).
    workspace: Option<String>,
}

/// The query of `GET /webhooks/{id}`.
#[derive(Debug, Deserialize)]
pub struct EndpointQuery {
    /// The note an action's redirect carries.
    done: Option<String>,
    /// The chart's window: `day` for the last day by 15 minutes, else the last hour.
    window: Option<String>,
}

/// Reading webhooks needs `admin` or `safety_manager`, as in the API.
fn admit_reader(session: &Session) -> Result<(), Problem> {
    Ok(require_webhooks(&session.caller)?)
}

/// `GET /webhooks`: the endpoints of one workspace.
pub async fn endpoints(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<WebhooksQuery>,
) -> Result<Response, Problem> {
    admit_reader(&session)?;
    let now = Utc::now();
    let workspace = query
        .workspace
        .filter(|w| !w.trim().is_empty())
        .or_else(|| session.caller.workspace.clone());
    let listing = match &workspace {
        Some(ws) => {
            session.caller.require_workspace(ws)?;
            Some(state.api.store.webhook_endpoints(Some(ws)).await?)
        }
        None => None,
    };
    let head = html! {
        th { "endpoint" }
        th { "url" }
        th { "health" }
        th { "circuit" }
        th { "last success" }
        th.num { "failures in a row" }
        th { "disabled" }
        th.num { "in flight" }
    };
    let main = html! {
        (as_of())
        h1 { "Webhook endpoints" }
        form method="get" action="/webhooks" {
            label { "Workspace " input type="text" name="workspace" value=(workspace.as_deref().unwrap_or("")); }
            " " button type="submit" { "Show" }
        }
        @match &listing {
            Some(list) => {
                (table(head, list.iter().map(|e| endpoint_row(e, now)).collect(),
                    "No webhook endpoints in this workspace."))
            }
            None => p.note { "Name a workspace to see its endpoints." },
        }
    };
    Ok(Page {
        title: "Webhooks".to_owned(),
        nav: Nav::Webhooks,
        main,
    }
    .render(&session))
}

fn health_badge(health: Health) -> Markup {
    let class = match health {
        Health::Healthy => "ok",
        Health::Degraded | Health::Paused => "warn",
        Health::Disabled => "bad",
    };
    html! { span class=(class) { (health.as_str()) } }
}

fn circuit_cell(e: &Endpoint, now: chrono::DateTime<Utc>) -> Markup {
    let class = match e.circuit {
        Circuit::Closed => "ok",
        Circuit::HalfOpen => "warn",
        Circuit::Open => "bad",
    };
    html! {
        span class=(class) { (e.circuit.as_str()) }
        @if let (Circuit::Open, Some(until)) = (e.circuit, e.circuit_open_until) {
            " until " (time(until, now))
        }
    }
}

fn endpoint_row(e: &Endpoint, now: chrono::DateTime<Utc>) -> Markup {
    html! {
        tr {
            td { a.mono href={ "/webhooks/" (e.id) } { (e.id) } }
            td.wrap { (clip(&e.url)) }
            td { (health_badge(e.health)) }
            td { (circuit_cell(e, now)) }
            td { (opt_time(e.last_success_at, now)) }
            td.num { (e.failure_streak) }
            td.wrap { @match &e.disabled_reason { Some(why) => (why), None => (none()) } }
            td.num { (e.max_in_flight) }
        }
    }
}

/// `GET /webhooks/{id}`: the endpoint, its deliveries with their attempts, the actions.
pub async fn endpoint(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<String>,
    Query(query): Query<EndpointQuery>,
) -> Result<Response, Problem> {
    admit_reader(&session)?;
    let now = Utc::now();
    let e = visible_endpoint(&state, &session, &id).await?;
    let manage = may_manage(&session.caller, &e).is_ok();
    let deliveries = state
        .api
        .store
        .webhook_deliveries(&e.id, DELIVERIES_SHOWN)
        .await?;
    let replays = state.api.store.webhook_replays(&e.id, 10).await?;
    let window = window_of(query.window.as_deref());
    let (step, buckets) = window.buckets();
    let series = state
        .api
        .store
        .webhook_delivery_series(&e.id, now, step, buckets)
        .await?;
    let done = match query.done.as_deref() {
        Some("resent") => Some("Resent: the delivery goes out again now.".to_owned()),
        Some(n) if n.starts_with("replayed-") => Some(format!(
            "Replay started: {} deliveries go out again in the background (progress under \
             Replays).",
            n.trim_start_matches("replayed-")
        )),
        _ => None,
    };
    let main = html! {
        (as_of())
        h1 { "Webhook endpoint " span.mono { (e.id) } }
        @if let Some(text) = done { p class="note done" { (text) } }
        dl {
            dt { "url" } dd.mono { (e.url) }
            dt { "workspace" } dd { a href={ "/webhooks?workspace=" (e.workspace_id) } { (e.workspace_id) } }
            dt { "health" } dd { (health_badge(e.health)) }
            dt { "circuit" } dd { (circuit_cell(&e, now)) }
            dt { "last success" } dd { (opt_time(e.last_success_at, now)) }
            dt { "failures in a row" } dd { (e.failure_streak) }
            dt { "failing since" } dd { (opt_time(e.failing_since, now)) }
            dt { "disabled" } dd { @match &e.disabled_reason { Some(why) => (why), None => (none()) } }
            dt { "limits" } dd {
                (e.max_in_flight) " in flight"
                @if let Some(rate) = e.rate_limit_per_s { ", " (rate) " per second" }
                @if let Some(key) = &e.ordering_key { ", ordered by " span.mono { (key) } }
            }
        }
        @if manage {
            form method="post" action={ "/webhooks/" (e.id) "/replay" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label { "Replay deliveries since (UTC, RFC 3339) "
                    input type="text" name="since" required placeholder="2026-11-22T00:00:00Z"; }
                " " label { input type="checkbox" name="failed_only" value="1"; " only failed ones" }
                " " button type="submit" { "Replay" }
            }
        }
        (delivery_chart(&series, window, &format!("/webhooks/{}", e.id)))
        @if !replays.is_empty() {
            h2 { "Replays" }
            (table(replay_head(), replays.iter().map(|r| replay_row(r, now)).collect(), ""))
        }
        h2 { "Deliveries" }
        (table(delivery_head(), deliveries.iter().map(|d| delivery_row(d, &session, manage, now)).collect(),
            "No deliveries yet."))
    };
    Ok(Page {
        title: format!("Webhook endpoint {}", e.id),
        nav: Nav::Webhooks,
        main,
    }
    .render(&session))
}

/// The endpoint's deliveries over the window by outcome, as `GET …/{id}/series` gives them.
fn delivery_chart(series: &DeliverySeries, window: SeriesWindow, path: &str) -> Markup {
    let outcomes = [
        Series {
            name: "succeeded",
            class: "c-ok",
        },
        Series {
            name: "failed",
            class: "c-bad",
        },
        Series {
            name: "retrying",
            class: "c-warn",
        },
        Series {
            name: "waiting",
            class: "c-run",
        },
    ];
    let points: Vec<Bar> = series
        .points
        .iter()
        .map(|p| Bar {
            start: p.start,
            values: vec![p.succeeded, p.failed, p.retrying, p.waiting],
        })
        .collect();
    html! {
        section #delivery-chart {
            h2 { "Deliveries by outcome " span.mut { (window_title(window)) } }
            (window_tabs(window, path))
            (bars(&format!("deliveries of {} by outcome, {}", series.endpoint_id, window_title(window)),
                &outcomes, &points, series.step_seconds))
        }
    }
}

/// The endpoint, if the session may see it (404 otherwise, as if it did not exist).
pub async fn visible_endpoint(
    state: &DashState,
    session: &Session,
    id: &str,
) -> Result<Endpoint, Problem> {
    match state.api.store.webhook_endpoint(id).await? {
        Some(e) if session.caller.sees(Some(&e.workspace_id)) => Ok(e),
        _ => Err(Problem::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("There is no webhook endpoint {id}."),
        )),
    }
}

fn replay_head() -> Markup {
    html! {
        th { "replay" }
        th { "range" }
        th { "progress" }
        th { "asked" }
        th { "finished" }
    }
}

fn replay_row(r: &Replay, now: chrono::DateTime<Utc>) -> Markup {
    html! {
        tr {
            td.mono { (r.id) }
            td { (time(r.since, now)) " to " (time(r.until, now))
                @if r.failed_only { " (failed only)" } }
            td.num { (r.created) " / " (r.total) }
            td { (time(r.created_at, now)) }
            td { @match r.finished_at {
                Some(at) => span.ok { "done " (time(at, now)) },
                None => span.warn { "in progress" },
            } }
        }
    }
}

fn delivery_head() -> Markup {
    html! {
        th { "delivery" }
        th { "event" }
        th { "state" }
        th { "created" }
        th { "attempts" }
        th { "" }
    }
}

fn delivery_row(
    d: &Delivery,
    session: &Session,
    manage: bool,
    now: chrono::DateTime<Utc>,
) -> Markup {
    let class = match d.state.as_str() {
        "succeeded" => "ok",
        "failed" => "bad",
        _ => "warn",
    };
    html! {
        tr {
            td.mono { (d.id) }
            td { span.mono { (d.event_type) } br; span.mono { (d.event_id) } }
            td { span class=(class) { (d.state) } }
            td { (time(d.created_at, now)) }
            td.wrap {
                @if d.attempts.is_empty() { (none()) }
                @for a in &d.attempts { (attempt_line(a, now)) br; }
            }
            td {
                @if manage && d.expunged_at.is_none() {
                    form.inline method="post" action={ "/webhooks/deliveries/" (d.id) "/resend" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Resend" }
                    }
                }
            }
        }
    }
}

fn attempt_line(a: &Attempt, now: chrono::DateTime<Utc>) -> Markup {
    html! {
        "#" (a.attempt) " " (time(a.started_at, now)) " · "
        @match a.status { Some(s) => { "HTTP " (s) }, None => "no answer" }
        " · " (millis(i64::from(a.total_ms)))
        @if let Some(class) = &a.error_class { " · " span.bad { (class) } }
    }
}
