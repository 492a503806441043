//! The overview of a workspace token's session: that workspace's own numbers only — its jobs
//! per queue and state (failures, retries, running, waiting) with each queue's lag, its
//! latest failed jobs with their error class, and its webhook endpoints' health. Every query
//! is filtered by the session's workspace in the database, so no other workspace's figure
//! can reach the page; the open-alerts card above it is scoped the same way.

use chrono::{DateTime, Utc};
use hangar_workers::job::{JobFilter, JobState};
use hangar_workers::webhooks::Health;
use maud::{Markup, html};

use super::fragments::{clip, duration_words, excerpt, jobs_link, none, table, time};
use super::{DashState, Problem};

/// How many of the workspace's latest failed jobs the overview lists.
const RECENT_FAILURES: i64 = 10;

/// The job states the workspace's queue table shows, failures first.
const SHOWN: [JobState; 5] = [
    JobState::Failed,
    JobState::Retryable,
    JobState::Running,
    JobState::Available,
    JobState::Scheduled,
];

/// The workspace's queues, recent failures and webhook endpoints.
pub async fn section(
    state: &DashState,
    workspace: &str,
    now: DateTime<Utc>,
) -> Result<Markup, Problem> {
    let store = &state.api.store;
    let stats = store.workspace_queue_stats(workspace).await?;
    let failed = store
        .jobs(&JobFilter {
            states: vec![JobState::Failed],
            workspace_id: Some(workspace.to_owned()),
            limit: RECENT_FAILURES,
            ..JobFilter::default()
        })
        .await?;
    let mut failures = Vec::with_capacity(failed.len());
    for job in failed {
        // The list has no attempts; the last one's class is the failure's.
        let class = store
            .job(job.id)
            .await
            .ok()
            .and_then(|j| j.attempts.last().and_then(|a| a.error_class))
            .map(|c| c.as_str().to_owned());
        failures.push((job, class));
    }
    let endpoints = store.webhook_endpoints(Some(workspace)).await?;

    let queue_head = html! {
        th { "queue" }
        @for s in SHOWN { th.num { (s.as_str()) } }
        th.num { "lag" }
    };
    let queue_rows = stats
        .iter()
        .map(|q| {
            let count = |s: JobState| {
                q.counts
                    .iter()
                    .find(|(c, _)| *c == s)
                    .map_or(0, |(_, n)| *n)
            };
            html! {
                tr data-queue=(q.queue) {
                    td.mono { (clip(&q.queue)) }
                    @for s in SHOWN {
                        @let n = count(s);
                        td class=(if n == 0 { "num mut" } else if s == JobState::Failed { "num bad" } else { "num" }) {
                            a href=(jobs_link(&[("state", s.as_str()), ("queue", q.queue.as_str())])) { (n) }
                        }
                    }
                    td.num { (duration_words(q.lag_seconds as u64)) }
                }
            }
        })
        .collect();
    let failure_head = html! {
        th.num { "job" } th { "kind" } th { "queue" } th { "failed" } th { "class" } th { "error" }
    };
    let failure_rows = failures
        .iter()
        .map(|(job, class)| {
            html! {
                tr {
                    td.num { a.mono href={ "/jobs/" (job.id) } { (job.id) } }
                    td.mono { (clip(&job.kind)) }
                    td.mono { (clip(&job.queue)) }
                    td { (time(job.updated_at, now)) }
                    td { @if let Some(c) = class { span.bad { (c) } } @else { (none()) } }
                    td { (excerpt(job.last_error.as_deref().unwrap_or(""), 120)) }
                }
            }
        })
        .collect();
    let endpoint_head = html! {
        th { "endpoint" } th { "health" } th.num { "failures in a row" } th { "last success" }
    };
    let endpoint_rows = endpoints
        .iter()
        .map(|e| {
            let class = match e.health {
                Health::Healthy => "ok",
                Health::Degraded | Health::Paused => "warn",
                Health::Disabled => "bad",
            };
            html! {
                tr {
                    td { a.mono href={ "/webhooks/" (e.id) } { (clip(&e.url)) } }
                    td { span class=(class) { (e.health.as_str()) } }
                    td.num { (e.failure_streak) }
                    td { @if let Some(at) = e.last_success_at { (time(at, now)) } @else { (none()) } }
                }
            }
        })
        .collect();
    Ok(html! {
        h2 { "Your workspace's queues " span.mut { (clip(workspace)) } }
        (table(queue_head, queue_rows, "No waiting, running or failed job in this workspace."))
        h2 { "Recent failures" }
        (table(failure_head, failure_rows, "No failed job in this workspace."))
        h2 { "Webhook endpoints" }
        (table(endpoint_head, endpoint_rows, "This workspace has no webhook endpoints."))
    })
}
