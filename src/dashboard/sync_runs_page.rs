//! The sync runs page (`GET /sync-runs`): the newest runs (of the session's workspace, or
//! `?workspace=` / `?integration=`), each with its trigger, direction, status, times, record
//! counts, provider calls, time waited on rate budgets and its error (class and message);
//! above them, charts of the runs started per minute (or 15 minutes, `?window=day`) by status
//! and of the records they read and applied.

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_integrations::store::sync_run_series::RunSeries;
use maud::{Markup, html};

use super::chart::{Bar, Point, Series, bars, lines, window_of, window_tabs, window_title};
use super::fragments::{as_of, clip, millis, none, opt_time, table, time};
use super::frame::Nav;
use super::integrations_page::{WorkspaceQuery, workspace_of};
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::sync_runs::sync_store;
use crate::fleet::SeriesWindow;

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

/// A value for a link's query string: anything but unreserved characters percent-encoded.
fn urlencoding(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The runs over the window by status, and the records they read and applied, as
/// `GET /api/v1/workspaces/{ws}/sync-runs/series` gives them.
fn run_charts(series: &RunSeries, window: SeriesWindow, path: &str) -> Markup {
    let statuses = [
        Series {
            name: "succeeded",
            class: "c-ok",
        },
        Series {
            name: "failed",
            class: "c-bad",
        },
        Series {
            name: "rate_limited",
            class: "c-warn",
        },
        Series {
            name: "running",
            class: "c-run",
        },
    ];
    let records = [
        Series {
            name: "read",
            class: "l-a",
        },
        Series {
            name: "applied",
            class: "l-b",
        },
    ];
    let runs: Vec<Bar> = series
        .points
        .iter()
        .map(|p| Bar {
            start: p.start,
            values: vec![p.succeeded, p.failed, p.rate_limited, p.running],
        })
        .collect();
    let moved: Vec<Point> = series
        .points
        .iter()
        .map(|p| Point {
            start: p.start,
            values: vec![Some(p.records_read as f64), Some(p.records_applied as f64)],
        })
        .collect();
    let title = window_title(window);
    html! {
        section #run-charts {
            h2 { "Runs by status " span.mut { (title) } }
            (window_tabs(window, path))
            div.charts {
                section {
                    h4 { "runs started" }
                    (bars(&format!("sync runs by status, {title}"), &statuses, &runs, series.step_seconds))
                }
                section {
                    h4 { "records" }
                    (lines(&format!("records read and applied, {title}"), &records, &moved, series.step_seconds, |v| format!("{v:.0}")))
                }
            }
        }
    }
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
    let window = window_of(query.window.as_deref());
    let (step, buckets) = window.buckets();
    let series = sync_store(&state.api)
        .run_series(
            workspace.as_deref(),
            query.integration.as_deref(),
            now,
            step,
            buckets,
        )
        .await
        .map_err(crate::api::ApiError::from)?;
    let mut path = "/sync-runs".to_owned();
    for (name, value) in [
        ("workspace", &workspace),
        ("integration", &query.integration),
    ] {
        if let Some(value) = value {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("{name}={}", urlencoding(value)));
        }
    }
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
        (run_charts(&series, window, &path))
        (table(head, rows, "No sync runs."))
    };
    Ok(Page {
        title: "Sync runs".to_owned(),
        nav: Nav::SyncRuns,
        main,
    }
    .render(&session))
}
