//! The events pages: the events the workspaces published (`GET /events`), newest first by
//! arrival, filtered by workspace, type and a time range, by pages of [`EVENTS_PAGE`]
//! (`?cursor=`, the last row of the page before); and one event (`GET /events/{id}`) with
//! where it went: its webhook deliveries, the jobs its subscriptions made and their sync
//! runs. The same rules as `GET /api/v1/events`: a workspace token sees only its workspace,
//! the event's data is for `operator` and up.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use hangar_workers::store::{EventFilter, EventSummary};
use maud::{Markup, html};

use super::fragments::{as_of, clip, none, opt_time, table, time};
use super::frame::Nav;
use super::jobs_page::form_time;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::events::visible_event;

/// Events one page shows.
const EVENTS_PAGE: i64 = 100;

/// The filters of `GET /events` as the query gives them; empty ones are absent.
#[derive(Debug, Default)]
struct EventsQuery {
    workspace: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

impl EventsQuery {
    fn parse(raw: Option<&str>) -> EventsQuery {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
        let mut query = EventsQuery::default();
        for (name, value) in pairs {
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            let slot = match name.as_str() {
                "workspace" => &mut query.workspace,
                "type" => &mut query.event_type,
                "from" => &mut query.from,
                "until" => &mut query.until,
                "cursor" => &mut query.cursor,
                _ => continue,
            };
            *slot = Some(value);
        }
        query
    }

    /// `/events?…` with these filters and `cursor`.
    fn link(&self, cursor: Option<i64>) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("workspace", &self.workspace),
            ("type", &self.event_type),
            ("from", &self.from),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n, v)))
        .collect();
        if let Some(cursor) = cursor {
            pairs.push(("cursor", cursor.to_string()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/events".to_owned()
        } else {
            format!("/events?{query}")
        }
    }
}

/// `/events/{id}?workspace=…`: one event's page.
fn event_link(e: &EventSummary) -> String {
    let query = serde_urlencoded::to_string([("workspace", &e.workspace_id)]).unwrap_or_default();
    let id: String = url_path_segment(&e.id);
    format!("/events/{id}?{query}")
}

/// `text` percent-encoded for one path segment.
fn url_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /events`: a page of events, newest first, filtered.
pub async fn events(
    session: Session,
    State(state): State<DashState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let query = EventsQuery::parse(raw.as_deref());
    let before = query
        .cursor
        .as_deref()
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("cursor: '{v}' is not a cursor of this list"),
                )
            })
        })
        .transpose()?;
    let workspace_id = match &session.caller.workspace {
        Some(own) => Some(own.clone()),
        None => query.workspace.clone(),
    };
    let filter = EventFilter {
        workspace_id,
        event_type: query.event_type.clone(),
        since: form_time("from", query.from.as_deref())?,
        until: form_time("until", query.until.as_deref())?,
        before,
        limit: EVENTS_PAGE,
    };
    let (events, next) = state.api.store.events_page(&filter).await?;
    let head = html! {
        th { "id" }
        th { "type" }
        th { "workspace" }
        th { "timestamp" }
        th { "received" }
        th.num { "deliveries" }
        th.num { "jobs" }
    };
    let rows = events
        .iter()
        .map(|e| {
            html! {
                tr {
                    td.id { a href=(event_link(e)) { (clip(&e.id)) } }
                    td.mono { (e.event_type) }
                    td.mono { (clip(&e.workspace_id)) }
                    td { (time(e.timestamp, now)) }
                    td { (time(e.received_at, now)) }
                    td.num { (e.deliveries) }
                    td.num { (e.jobs) }
                }
            }
        })
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let main = html! {
        (as_of())
        h1 { "Events" }
        form.filters method="get" action="/events" {
            @match &session.caller.workspace {
                Some(own) => label { "workspace" input value=(own) size="12" disabled; },
                None => label {
                    "workspace"
                    input name="workspace" value=(text(&query.workspace)) size="12";
                },
            }
            label { "type" input name="type" value=(text(&query.event_type)) size="16" placeholder="trip.created"; }
            label { "received from (UTC)" input type="datetime-local" name="from" value=(text(&query.from)); }
            label { "received until (UTC)" input type="datetime-local" name="until" value=(text(&query.until)); }
            button type="submit" { "Filter" }
            a.btn href="/events" { "Clear" }
        }
        (table(head, rows, "No events match these filters."))
        nav.pages {
            @if before.is_some() {
                a href=(query.link(None)) { "← Newest" }
            }
            @if let Some(next) = next {
                a href=(query.link(Some(next))) rel="next" { "Older →" }
            } @else if !events.is_empty() {
                small.mut { "No older events match." }
            }
        }
    };
    Ok(Page {
        title: "Events".to_owned(),
        nav: Nav::Events,
        main,
    }
    .render(&session))
}

/// The query of `GET /events/{id}`.
#[derive(Debug, serde::Deserialize)]
pub struct EventQuery {
    /// The event's workspace (needed when several workspaces have the id).
    workspace: Option<String>,
}

/// `GET /events/{id}`: one event and where it went.
pub async fn event(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<EventQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let view = visible_event(
        &state.api.store,
        &session.caller,
        &id,
        query.workspace.as_deref().filter(|w| !w.is_empty()),
    )
    .await?;
    let e = &view.event;
    let deliveries: Vec<Markup> = view
        .webhook_deliveries
        .iter()
        .map(|d| {
            html! {
                tr {
                    td.id { (clip(&d.id)) }
                    td.id { a href={ "/webhooks/" (d.endpoint_id) } { (clip(&d.endpoint_id)) } }
                    td.mono.wrap { (d.endpoint_url) }
                    td { span class={ "badge " (d.state) } { (d.state) } }
                    td.num { (d.attempts) }
                    td.num { @match d.last_status { Some(s) => (s), None => (none()) } }
                    td.wrap { @match &d.last_error { Some(err) => (err), None => (none()) } }
                    td.id { @match d.job_id { Some(j) => a href={ "/jobs/" (j) } { (j) }, None => (none()) } }
                    td { (opt_time(d.delivered_at, now)) }
                }
            }
        })
        .collect();
    let jobs: Vec<Markup> = view
        .jobs
        .iter()
        .map(|j| {
            html! {
                tr {
                    td.id { a href={ "/jobs/" (j.id) } { (j.id) } }
                    td.mono { (j.kind) }
                    td.mono { (j.queue) }
                    td { span class={ "badge " (j.state) } { (j.state) } }
                    td.num { (j.attempt) }
                    td { (time(j.created_at, now)) }
                }
            }
        })
        .collect();
    let runs: Vec<Markup> = view
        .sync_runs
        .iter()
        .map(|r| {
            html! {
                tr {
                    td.id { (clip(&r.id)) }
                    td.mono { (r.provider) }
                    td.mono { (r.data_type) }
                    td { (r.direction) }
                    td { span class={ "badge " (r.status) } { (r.status) } }
                    td.id { @match r.job_id { Some(j) => a href={ "/jobs/" (j) } { (j) }, None => (none()) } }
                    td { (time(r.started_at, now)) }
                    td.wrap { @match &r.error { Some(err) => (err), None => (none()) } }
                }
            }
        })
        .collect();
    let main = html! {
        (as_of())
        h1 { "Event " code { (e.id) } }
        dl.fields {
            dt { "type" } dd.mono { (e.event_type) }
            dt { "workspace" } dd.mono { (e.workspace_id) }
            dt { "timestamp" } dd { (time(e.timestamp, now)) }
            dt { "received" } dd { (time(e.received_at, now)) }
            dt { "data" }
            dd {
                @if view.data.is_null() {
                    span.mut { "shown to operators and up" }
                } @else {
                    pre { (serde_json::to_string_pretty(&view.data).unwrap_or_default()) }
                }
            }
        }
        h2 { "Webhook deliveries" }
        (table(
            html! {
                th { "delivery" } th { "endpoint" } th { "url" } th { "state" }
                th.num { "attempts" } th.num { "last status" } th { "last error" } th { "job" }
                th { "delivered" }
            },
            deliveries,
            "No webhook endpoint of this workspace takes this event type.",
        ))
        h2 { "Jobs started" }
        (table(
            html! {
                th { "job" } th { "kind" } th { "queue" } th { "state" } th.num { "attempt" }
                th { "created" }
            },
            jobs,
            "No event subscription (e.g. an integration's outbound sync) took this event.",
        ))
        h2 { "Sync runs" }
        (table(
            html! {
                th { "run" } th { "provider" } th { "data type" } th { "direction" }
                th { "status" } th { "job" } th { "started" } th { "error" }
            },
            runs,
            "No sync run of these jobs (yet).",
        ))
    };
    Ok(Page {
        title: format!("Event {}", e.id),
        nav: Nav::Events,
        main,
    }
    .render(&session))
}
