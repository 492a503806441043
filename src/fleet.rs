//! The fleet as the dashboard's Workers page, the API and the CLI show it: the processes that
//! run pools (alive or gone, by their heartbeat) with the jobs each runs now, and the queues
//! with their depth and whether they are paused. One shape for the three surfaces.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use hangar_workers::job::JobState;
use hangar_workers::store::{ProcessRow, RunningJob, Store, StoreError};

use crate::runtime::PROCESS_HEARTBEAT;

/// Running jobs read for the list at most.
const RUNNING_LIMIT: i64 = 1_000;

/// One running job, under the process that holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunningView {
    /// The job's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// The attempt under way.
    pub attempt: i32,
    /// Its workspace.
    pub workspace_id: Option<String>,
    /// When this attempt was claimed.
    pub started_at: Option<DateTime<Utc>>,
}

/// One process that runs pools.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProcessView {
    /// `host:pid`, as jobs' `leased_by`.
    pub id: String,
    /// The machine.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// Hangar's version.
    pub version: String,
    /// `serve` or `worker`.
    pub command: String,
    /// The pools it runs.
    pub pools: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Whether it beat within the last three heartbeat periods (30 s).
    pub alive: bool,
    /// The jobs it runs now.
    pub running: Vec<RunningView>,
}

/// The workers list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkersView {
    /// Alive processes first, then the gone ones (seen in the last day).
    pub processes: Vec<ProcessView>,
    /// Running jobs whose lease names no listed process (an older Hangar, a process that
    /// has not beaten yet); the rescuer takes them back once their lease expires.
    pub unlisted: Vec<RunningView>,
}

/// One queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueView {
    /// The queue.
    pub queue: String,
    /// Paused: it accepts jobs and no pool claims from it.
    pub paused: bool,
    /// When it was paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// Who paused it.
    pub paused_by: Option<String>,
    /// Jobs ready to run now or later (available, scheduled, retryable).
    pub waiting: i64,
    /// Jobs running.
    pub running: i64,
    /// Seconds the oldest due job has waited.
    pub lag_seconds: f64,
}

fn running_view(job: &RunningJob) -> RunningView {
    RunningView {
        id: job.id.0,
        kind: job.kind.clone(),
        queue: job.queue.clone(),
        attempt: job.attempt,
        workspace_id: job.workspace_id.clone(),
        started_at: job.attempted_at,
    }
}

/// The processes with their running jobs.
pub async fn workers(store: &Store) -> Result<WorkersView, StoreError> {
    let rows: Vec<ProcessRow> = store.processes().await?;
    let running = store.running_jobs(RUNNING_LIMIT).await?;
    let now = Utc::now();
    let alive_after = now - chrono::Duration::from_std(PROCESS_HEARTBEAT * 3).unwrap_or_default();
    let mut processes: Vec<ProcessView> = rows
        .into_iter()
        .map(|row| ProcessView {
            running: running
                .iter()
                .filter(|j| j.leased_by.as_deref() == Some(row.id.as_str()))
                .map(running_view)
                .collect(),
            alive: row.heartbeat_at >= alive_after,
            id: row.id,
            host: row.host,
            pid: row.pid,
            version: row.version,
            command: row.command,
            pools: row.pools,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
        })
        .collect();
    processes.sort_by_key(|p| !p.alive);
    let listed: BTreeSet<&str> = processes.iter().map(|p| p.id.as_str()).collect();
    let unlisted = running
        .iter()
        .filter(|j| !j.leased_by.as_deref().is_some_and(|by| listed.contains(by)))
        .map(running_view)
        .collect();
    Ok(WorkersView {
        processes,
        unlisted,
    })
}

/// The queues of `configured` (the pool files') and any other queue that holds jobs or is
/// paused, by name.
pub async fn queues(store: &Store, configured: &[String]) -> Result<Vec<QueueView>, StoreError> {
    let stats = store.queue_stats().await?;
    let paused = store.paused_queues().await?;
    let mut names: BTreeSet<String> = configured.iter().cloned().collect();
    names.extend(stats.iter().map(|s| s.queue.clone()));
    names.extend(paused.iter().map(|p| p.queue.clone()));
    Ok(names
        .into_iter()
        .map(|queue| {
            let stat = stats.iter().find(|s| s.queue == queue);
            let count = |states: &[JobState]| {
                stat.map_or(0, |s| {
                    s.counts
                        .iter()
                        .filter(|(state, _)| states.contains(state))
                        .map(|(_, n)| n)
                        .sum()
                })
            };
            let pause = paused.iter().find(|p| p.queue == queue);
            QueueView {
                paused: pause.is_some(),
                paused_at: pause.map(|p| p.paused_at),
                paused_by: pause.and_then(|p| p.paused_by.clone()),
                waiting: count(&[
                    JobState::Available,
                    JobState::Scheduled,
                    JobState::Retryable,
                ]),
                running: count(&[JobState::Running]),
                lag_seconds: stat.map_or(0.0, |s| s.lag_seconds),
                queue,
            }
        })
        .collect())
}

/// Whether `queue` is one a pause may name: a configured queue or one that holds jobs or a
/// pause. `Err` lists the known ones.
pub async fn check_queue(store: &Store, configured: &[String], queue: &str) -> Result<(), String> {
    let known = queues(store, configured).await.map_err(|e| e.to_string())?;
    if known.iter().any(|q| q.queue == queue) {
        return Ok(());
    }
    let names: Vec<&str> = known.iter().map(|q| q.queue.as_str()).collect();
    Err(format!(
        "unknown queue '{queue}' (known: {})",
        names.join(", ")
    ))
}

/// The window of a queue series: the last hour by minute, or the last day by 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeriesWindow {
    /// 60 buckets of one minute.
    #[default]
    Hour,
    /// 96 buckets of 15 minutes.
    Day,
}

impl SeriesWindow {
    /// The bucket length and how many buckets.
    pub fn buckets(self) -> (std::time::Duration, usize) {
        match self {
            SeriesWindow::Hour => (std::time::Duration::from_secs(60), 60),
            SeriesWindow::Day => (std::time::Duration::from_secs(900), 96),
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesWindow::Hour => "hour",
            SeriesWindow::Day => "day",
        }
    }
}

/// Per queue, completed, failed and retried jobs and the mean attempt duration over `window`
/// as of `now`, from the per-minute counters (never a scan of the jobs).
pub async fn series(
    store: &Store,
    window: SeriesWindow,
    now: DateTime<Utc>,
) -> Result<Vec<hangar_workers::store::QueueSeries>, StoreError> {
    let (step, buckets) = window.buckets();
    store.queue_series(now, step, buckets).await
}
