//! The overview page: per queue the jobs in each state, lag, throughput and failure rate
//! over the last five minutes, and charts of jobs completed and failed per minute over the
//! last hour (or per 15 minutes over the last day, `?window=day`) with the queue's depth,
//! lag and attempt duration percentiles over the same window; open alerts; the dead-letter
//! count. A workspace token's session sees its own workspace's queues, failures and webhook
//! endpoints instead (`workspace_overview.rs`).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_workers::job::JobState;
use hangar_workers::store::{AlertFilter, AlertState, QueueThroughput};
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{Bar, Point, Series, bars, lines};
use super::dead_letters_page::REDIS_WAIT;
use super::fragments::{as_of, clip, duration_words, jobs_link, millis, none, table};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::fleet::SeriesWindow;
use crate::redis_ingress::read_dead_letters;

/// The window of the throughput and failure rate.
const RATE_WINDOW: Duration = Duration::from_secs(300);

/// The job states the queue table shows, failures first: at phone width the columns on the
/// right scroll out of view.
const SHOWN: [JobState; 5] = [
    JobState::Failed,
    JobState::Retryable,
    JobState::Running,
    JobState::Available,
    JobState::Scheduled,
];

/// The query of `GET /`: the charts' window.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    /// `day` for the last day by 15 minutes; anything else the last hour by minute.
    window: Option<String>,
}

/// `GET /`: queues, charts, open alerts, dead letters.
pub async fn overview(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, Problem> {
    let window = match query.window.as_deref() {
        Some("day") => SeriesWindow::Day,
        _ => SeriesWindow::Hour,
    };
    let now = Utc::now();
    let store = &state.api.store;
    let global = session.caller.workspace.is_none();
    // Open = neither acknowledged nor resolved: an acknowledged alert has someone on it.
    let alerts = store
        .count_alerts(&AlertFilter {
            workspace_id: session.caller.workspace.clone(),
            states: vec![AlertState::Open],
            ..AlertFilter::default()
        })
        .await?;
    let own = match (&session.caller.workspace, global) {
        (Some(ws), false) => Some(super::workspace_overview::section(&state, ws, now).await?),
        _ => None,
    };
    let (dead, queues) = if global {
        (
            Some(dead_letter_count(&state).await),
            Some((
                queue_table(&state, now).await?,
                charts(&state, window, now).await?,
            )),
        )
    } else {
        (None, None)
    };
    let main = html! {
        (as_of())
        h1 { "Overview" }
        div.cards {
            div.card {
                a href="/alerts" {
                    "Open alerts"
                    b class=(if alerts > 0 { "bad" } else { "ok" }) { (alerts) }
                }
            }
            @if let Some(dead) = dead {
                div.card { a href="/dead-letters" { "Dead letters" b { (dead) } } }
            }
        }
        @if let Some((queues, charts)) = queues {
            (queues)
            (charts)
        }
        @if let Some(own) = own {
            (own)
        }
    };
    Ok(Page {
        title: "Overview".to_owned(),
        nav: Nav::Overview,
        main,
    }
    .render(&session))
}

/// The dead-letter card's figure: the count, or why there is none.
async fn dead_letter_count(state: &DashState) -> Markup {
    let Some(redis) = &state.redis else {
        return html! { span.mut { "no Redis" } };
    };
    match tokio::time::timeout(REDIS_WAIT, read_dead_letters(redis, 1)).await {
        Ok(Ok((_, n))) => html! { span class=(if n > 0 { "warn" } else { "ok" }) { (n) } },
        _ => html! { span.bad { "Redis unreachable" } },
    }
}

/// Per queue: the jobs in each state, lag, throughput and failure rate.
async fn queue_table(state: &DashState, now: chrono::DateTime<Utc>) -> Result<Markup, Problem> {
    let store = &state.api.store;
    let stats = store.queue_stats().await?;
    let since = now - chrono::Duration::from_std(RATE_WINDOW).unwrap_or_default();
    let rates = store.queue_throughput(since).await?;
    let mut queues: Vec<&str> = stats.iter().map(|s| s.queue.as_str()).collect();
    queues.extend(rates.iter().map(|r| r.queue.as_str()));
    queues.sort_unstable();
    queues.dedup();
    let head = html! {
        th { "queue" }
        @for s in SHOWN { th.num { (s.as_str()) } }
        th.num { "lag" }
        th.num { "completed/min" }
        th.num { "failed (5 min)" }
        th.num { "failure rate" }
    };
    let mut rows = Vec::new();
    for queue in queues {
        let stat = stats.iter().find(|s| s.queue == queue);
        let rate = rates
            .iter()
            .find(|r| r.queue == queue)
            .cloned()
            .unwrap_or(QueueThroughput {
                queue: queue.to_owned(),
                completed: 0,
                failed: 0,
            });
        let count = |s: JobState| {
            stat.and_then(|st| st.counts.iter().find(|(c, _)| *c == s))
                .map_or(0, |(_, n)| *n)
        };
        let lag = stat.map_or(0.0, |s| s.lag_seconds);
        let finished = rate.completed + rate.failed;
        rows.push(html! {
            tr {
                td.mono { (clip(queue)) }
                @for s in SHOWN {
                    @let n = count(s);
                    td class=(count_class(s, n)) {
                        a href=(jobs_link(&[("state", s.as_str()), ("queue", queue)])) { (n) }
                    }
                }
                td class=(if lag >= 60.0 { "num bad" } else { "num" }) {
                    (duration_words(lag as u64))
                }
                td.num {
                    (format!("{:.1}", rate.completed as f64 / (RATE_WINDOW.as_secs_f64() / 60.0)))
                }
                td.num { (rate.failed) }
                td.num {
                    @if finished == 0 {
                        (none())
                    } @else {
                        @let pct = 100.0 * rate.failed as f64 / finished as f64;
                        span class=(rate_class(pct)) { (format!("{pct:.1} %")) }
                    }
                }
            }
        });
    }
    Ok(html! {
        h2 { "Queues" }
        (table(head, rows, "No jobs in any queue yet."))
    })
}

/// The class of a state's count: failures red, retries amber, zero muted.
fn count_class(state: JobState, n: i64) -> &'static str {
    match (state, n) {
        (_, 0) => "num mut",
        (JobState::Failed, _) => "num bad",
        (JobState::Retryable, _) => "num warn",
        _ => "num",
    }
}

/// The class of a failure rate in percent.
fn rate_class(pct: f64) -> &'static str {
    if pct >= 10.0 {
        "bad"
    } else if pct > 0.0 {
        "warn"
    } else {
        "ok"
    }
}

/// A queue's depth, lag and attempt duration percentiles over the window, as line charts.
fn over_time(q: &hangar_workers::store::QueueSeries, title: &str) -> Markup {
    let points = |f: &dyn Fn(&hangar_workers::store::SeriesPoint) -> Vec<Option<f64>>| {
        q.points
            .iter()
            .map(|p| Point {
                start: p.start,
                values: f(p),
            })
            .collect::<Vec<_>>()
    };
    let depth = points(&|p| vec![p.depth.map(|d| d as f64)]);
    let lag = points(&|p| vec![p.lag_seconds]);
    let durations = points(&|p| {
        [p.p50_ms, p.p95_ms, p.p99_ms]
            .iter()
            .map(|v| v.map(|ms| ms as f64))
            .collect()
    });
    let waiting = [Series {
        name: "waiting",
        class: "l-a",
    }];
    let lagging = [Series {
        name: "lag",
        class: "l-b",
    }];
    let percentiles = [
        Series {
            name: "p50",
            class: "l-a",
        },
        Series {
            name: "p95",
            class: "l-b",
        },
        Series {
            name: "p99",
            class: "l-c",
        },
    ];
    let step = q.step_seconds;
    let queue = &q.queue;
    html! {
        h4 { "waiting (highest sample)" }
        (lines(&format!("queue {queue}: jobs waiting {title}"), &waiting, &depth, step, |v| format!("{v:.0}")))
        h4 { "lag (highest sample)" }
        (lines(&format!("queue {queue}: lag {title}"), &lagging, &lag, step, |v| duration_words(v as u64)))
        h4 { "attempt duration (bucket upper bound)" }
        (lines(&format!("queue {queue}: attempt duration percentiles {title}"), &percentiles, &durations, step, |v| millis(v as i64)))
    }
}

/// Per queue with jobs finished in the window, a chart of completed and failed jobs (and
/// failed attempts retried) per bucket, from the per-minute counters.
async fn charts(
    state: &DashState,
    window: SeriesWindow,
    now: chrono::DateTime<Utc>,
) -> Result<Markup, Problem> {
    let all = crate::fleet::series(&state.api.store, window, now).await?;
    let series = [
        Series {
            name: "completed",
            class: "c-ok",
        },
        Series {
            name: "failed",
            class: "c-bad",
        },
        Series {
            name: "retried",
            class: "c-warn",
        },
    ];
    let title = match window {
        SeriesWindow::Hour => "per minute, last hour",
        SeriesWindow::Day => "per 15 minutes, last day",
    };
    Ok(html! {
        h2 { "Queues over time " span.mut { (title) } }
        p.tabs {
            @for (w, label) in [(SeriesWindow::Hour, "Last hour"), (SeriesWindow::Day, "Last day")] {
                a class=(if w == window { "on" } else { "" }) href={ "/?window=" (w.as_str()) } { (label) }
            }
        }
        @if all.is_empty() {
            p.mut { "No job finished and no queue sampled in this window." }
        } @else {
            div.charts {
                @for q in &all {
                    @let completed: i64 = q.points.iter().map(|p| p.completed).sum();
                    @let failed: i64 = q.points.iter().map(|p| p.failed).sum();
                    @let bars_of: Vec<Bar> = q.points.iter().map(|p| Bar {
                        start: p.start,
                        values: vec![p.completed, p.failed, p.retried],
                    }).collect();
                    section data-queue=(q.queue) {
                        h3 {
                            a.mono href=(jobs_link(&[("queue", q.queue.as_str())])) { (clip(&q.queue)) }
                            small { (completed) " completed · " (failed) " failed" }
                        }
                        (bars(&format!("queue {}: jobs finished {title}", q.queue), &series, &bars_of, q.step_seconds))
                        (over_time(q, title))
                    }
                }
            }
        }
    })
}
