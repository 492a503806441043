//! The planner loop: enqueues one job per schedule slot, correct with any number of planner
//! processes on one database.
//!
//! [`Planner::run_once`] plans one batch: it claims up to `batch_size` due rows (`enabled AND
//! next_run_at <= now`; PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite `BEGIN IMMEDIATE`) and, in
//! the same transaction, for each row takes the latest slot that is due (one catch-up run
//! after downtime, not one per missed slot), skips it if the schedule's previous job is still
//! active, else inserts its job with the idempotency key `schedule:<name>:<slot>` (`ON
//! CONFLICT DO NOTHING`: the unique key makes one job per slot certain even if two planners
//! ever raced), and moves `next_run_at` to the first due time after now.
//!
//! [`Planner::run`] loops around it: a full batch goes again at once; otherwise it sleeps
//! until the earliest `next_run_at`, at most `max_sleep` (so rows added or changed by other
//! processes are seen), and wakes early on shutdown. It wakes the pools of this process for
//! the queues it filled; on PostgreSQL the jobs table's NOTIFY trigger wakes other processes.
//! A failed batch is retried with [`Backoff`]. "Now" comes from [`PlannerConfig::clock`]: the
//! database's on PostgreSQL (the system's on SQLite), or a test's manual clock.
//! Shutdown: a batch in progress commits or rolls back as a whole; the loop then returns.

use std::time::Duration;

use hangar_workers::backoff::Backoff;
use hangar_workers::clock::Clock;
use hangar_workers::routes::Routes;
use tokio_util::sync::CancellationToken;

use crate::batch::SpecCache;
use crate::store::{BatchReport, ScheduleError, Schedules};

/// How the planner runs.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// Most rows claimed and planned in one transaction.
    pub batch_size: i64,
    /// Longest sleep between looks at the table.
    pub max_sleep: Duration,
    /// Shortest sleep after a batch that was not full: rows that are due but locked by
    /// another planner are not polled in a tight loop.
    pub min_sleep: Duration,
    /// Where "now" comes from: the system clock (and the database's `now()` on PostgreSQL),
    /// or a test's [`ManualClock`](hangar_workers::clock::ManualClock).
    pub clock: Clock,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            batch_size: 1_000,
            max_sleep: Duration::from_secs(1),
            min_sleep: Duration::from_millis(10),
            clock: Clock::system(),
        }
    }
}

/// The planner of one process.
pub struct Planner {
    schedules: Schedules,
    routes: Routes,
    specs: SpecCache,
    config: PlannerConfig,
}

impl Planner {
    /// A planner over `schedules` whose jobs go where `routes` sends them (a schedule without
    /// a queue to the pool that runs its kind; always with that pool's `max_attempts`).
    pub fn new(schedules: Schedules, routes: Routes, config: PlannerConfig) -> Planner {
        Planner {
            schedules,
            routes,
            specs: SpecCache::default(),
            config,
        }
    }

    /// Plans one batch of due schedules and wakes the pools of this process that got jobs.
    pub async fn run_once(&mut self) -> Result<BatchReport, ScheduleError> {
        let report = self
            .schedules
            .plan_batch(
                self.config.batch_size,
                &self.routes,
                &mut self.specs,
                self.config.clock.fixed(),
            )
            .await?;
        for queue in &report.queues {
            self.schedules.store().wakeups().wake(queue);
        }
        record(&report);
        Ok(report)
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(batch_size = self.config.batch_size, "planner started");
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            let pause = match self.run_once().await {
                Ok(report) if report.claimed as i64 >= self.config.batch_size => {
                    backoff.reset();
                    continue;
                }
                Ok(_) => {
                    backoff.reset();
                    self.idle_pause().await
                }
                Err(error) => {
                    let pause = backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "planner batch failed");
                    pause
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("planner stopped");
    }

    /// How long to sleep when nothing more is due: until the earliest due time, within
    /// `[min_sleep, max_sleep]`.
    async fn idle_pause(&self) -> Duration {
        match self.schedules.next_due().await {
            Ok((Some(next), db_now)) => (next - self.config.clock.fixed().unwrap_or(db_now))
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(self.config.min_sleep, self.config.max_sleep),
            Ok((None, _)) => self.config.max_sleep,
            Err(error) => {
                tracing::warn!(%error, "planner cannot read the next due time");
                self.config.max_sleep
            }
        }
    }
}

/// Metrics and logs of one batch. No per-schedule labels: 100 000 schedules must not become
/// 100 000 series.
fn record(report: &BatchReport) {
    if report.claimed == 0 {
        return;
    }
    metrics::counter!("hangar_planner_enqueued_total").increment(report.enqueued);
    metrics::counter!("hangar_planner_skipped_total").increment(report.skipped.len() as u64);
    metrics::counter!("hangar_planner_deduplicated_total").increment(report.deduplicated);
    let lateness = report.lateness.num_milliseconds().max(0) as f64 / 1000.0;
    metrics::gauge!("hangar_planner_lag_seconds").set(lateness);
    // A fleet of schedules overlapping at once must not flood the log: the first few by name,
    // then one line with the count (the metric and `skipped_count` have every one).
    const LOGGED_SKIPS: usize = 10;
    for skip in report.skipped.iter().take(LOGGED_SKIPS) {
        tracing::info!(
            schedule = %skip.name,
            slot = %skip.slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            previous = %skip.previous_state,
            "slot skipped: the previous run is still active"
        );
    }
    if report.skipped.len() > LOGGED_SKIPS {
        tracing::info!(
            more = report.skipped.len() - LOGGED_SKIPS,
            "more slots skipped in this batch: their previous runs are still active"
        );
    }
    tracing::debug!(
        claimed = report.claimed,
        enqueued = report.enqueued,
        skipped = report.skipped.len(),
        deduplicated = report.deduplicated,
        lateness_ms = report.lateness.num_milliseconds(),
        "planned a batch"
    );
}
