//! The overview page: per queue the jobs in each state, lag, throughput and failure rate
//! over the last five minutes; open alerts; the dead-letter count.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use hangar_workers::job::JobState;
use hangar_workers::store::{AlertFilter, AlertState, QueueThroughput};

use super::html::{self, Nav};
use super::pages::{REDIS_WAIT, as_of, table};
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::ingress::read_dead_letters;

/// The window of the throughput and failure rate.
const RATE_WINDOW: Duration = Duration::from_secs(300);

/// `GET /`: queues, open alerts, dead letters.
pub async fn overview(
    session: Session,
    State(state): State<DashState>,
) -> Result<Response, Problem> {
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
    let mut main = format!("{}<h1>Overview</h1><div class=cards>", as_of());
    let alert_class = if alerts > 0 { "bad" } else { "ok" };
    let _ = write!(
        main,
        "<div class=card><a href=\"/alerts\">Open alerts<b class={alert_class}>{alerts}</b></a></div>"
    );
    if global {
        let dead = match &state.redis {
            None => "<span class=mut>no Redis</span>".to_owned(),
            Some(redis) => {
                match tokio::time::timeout(REDIS_WAIT, read_dead_letters(redis, 1)).await {
                    Ok(Ok((_, n))) => format!(
                        "<span class={}>{n}</span>",
                        if n > 0 { "warn" } else { "ok" }
                    ),
                    _ => "<span class=bad>Redis unreachable</span>".to_owned(),
                }
            }
        };
        let _ = write!(
            main,
            "<div class=card><a href=\"/dead-letters\">Dead letters<b>{dead}</b></a></div></div>"
        );
        main.push_str(&queue_table(&state, now).await?);
    } else {
        main.push_str(
            "</div><p class=note>Queue totals span every workspace, so they are shown only to \
             tokens valid for every workspace. <a href=\"/jobs\">Your workspace's jobs</a>.</p>",
        );
    }
    Ok(Page {
        title: "Overview".to_owned(),
        nav: Nav::Overview,
        main,
    }
    .render(&session))
}

async fn queue_table(state: &DashState, now: chrono::DateTime<Utc>) -> Result<String, Problem> {
    let store = &state.api.store;
    let stats = store.queue_stats().await?;
    let since = now - chrono::Duration::from_std(RATE_WINDOW).unwrap_or_default();
    let rates = store.queue_throughput(since).await?;
    let mut queues: Vec<&str> = stats.iter().map(|s| s.queue.as_str()).collect();
    queues.extend(rates.iter().map(|r| r.queue.as_str()));
    queues.sort_unstable();
    queues.dedup();
    // Failures first: at phone width the columns on the right scroll out of view.
    let shown = [
        JobState::Failed,
        JobState::Retryable,
        JobState::Running,
        JobState::Available,
        JobState::Scheduled,
    ];
    let mut head = "<th>queue</th>".to_owned();
    for s in shown {
        let _ = write!(head, "<th class=num>{}</th>", s.as_str());
    }
    head.push_str(
        "<th class=num>lag</th><th class=num>completed/min</th><th class=num>failed (5 min)</th>\
         <th class=num>failure rate</th>",
    );
    let mut rows = String::new();
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
        let _ = write!(rows, "<tr><td class=mono>{}</td>", html::clip(queue));
        for s in shown {
            let n = stat
                .and_then(|st| st.counts.iter().find(|(c, _)| *c == s))
                .map_or(0, |(_, n)| *n);
            let class = match (s, n) {
                (_, 0) => "num mut",
                (JobState::Failed, _) => "num bad",
                (JobState::Retryable, _) => "num warn",
                _ => "num",
            };
            let _ = write!(
                rows,
                "<td class=\"{class}\"><a href=\"/jobs?state={}&amp;queue={}\">{n}</a></td>",
                s.as_str(),
                html::url_enc(queue)
            );
        }
        let lag = stat.map_or(0.0, |s| s.lag_seconds);
        let lag_class = if lag >= 60.0 { "num bad" } else { "num" };
        let finished = rate.completed + rate.failed;
        let failure = if finished == 0 {
            "<span class=mut>–</span>".to_owned()
        } else {
            let pct = 100.0 * rate.failed as f64 / finished as f64;
            let class = if pct >= 10.0 {
                "bad"
            } else if pct > 0.0 {
                "warn"
            } else {
                "ok"
            };
            format!("<span class={class}>{pct:.1} %</span>")
        };
        let _ = write!(
            rows,
            "<td class=\"{lag_class}\">{}</td><td class=num>{:.1}</td><td class=num>{}</td>\
             <td class=num>{failure}</td></tr>",
            html::duration_words(lag as u64),
            rate.completed as f64 / (RATE_WINDOW.as_secs_f64() / 60.0),
            rate.failed,
        );
    }
    Ok(format!(
        "<h2>Queues</h2>{}",
        table(&head, &rows, "No jobs in any queue yet.")
    ))
}
