//! `hangar bench planner --schedules N`: the planner against MISSION.md's target, "100 000
//! database schedules planned per minute without falling behind".
//!
//! Phase 1 (spread): one planner runs; N API schedules are stored with cron specs
//! `"<i mod 60> * * * * *"`, so their first due times fall within the next minute; it waits
//! until each has enqueued its first job and reports the lateness of those jobs (job
//! `created_at` minus `run_at`: due time to insert). Phase 2 (burst): every schedule is made
//! due at once and the time until all N jobs exist gives the planner's rate. No worker runs;
//! the jobs go to the bench queue, which is emptied before and after, as are the bench
//! schedules.

use std::time::{Duration, Instant};

use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;
use tokio_util::sync::CancellationToken;

use super::{BENCH_QUEUE, peak_rss_mib, percentile};
use crate::config::Config;
use crate::exit::Fatal;

const PREFIX: &str = "bench-planner-";
const INSERT_BATCH: usize = 5_000;

async fn clean(store: &Store, schedules: &Schedules) -> Result<(), Fatal> {
    schedules.delete_prefixed(PREFIX).await?;
    store.delete_queue(BENCH_QUEUE).await?;
    Ok(())
}

/// Waits until every one of the `n` bench schedules has enqueued a job, or fails after
/// `limit`.
async fn wait_all(schedules: &Schedules, n: usize, limit: Duration) -> Result<(), Fatal> {
    let deadline = Instant::now() + limit;
    loop {
        let (_, planned) = schedules.count_planned(PREFIX).await?;
        if planned >= n as u64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Fatal::runtime(format!(
                "bench: not every schedule was planned within {} s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `hangar bench planner`.
pub async fn planner(config: &Config, n: usize, json: bool) -> Result<(), Fatal> {
    if n == 0 {
        return Err(Fatal::config("--schedules: must be at least 1"));
    }
    let store = super::prepare(config).await?;
    let schedules = Schedules::new(store.clone());
    clean(&store, &schedules).await?;
    let shutdown = CancellationToken::new();
    let planner = Planner::new(
        schedules.clone(),
        Routes::new(&config.pools, &Registry::builtin()),
        PlannerConfig::default(),
    );
    let running = tokio::spawn(planner.run(shutdown.clone()));

    // Phase 1: N schedules whose first due times fall within the next minute.
    let inserting = Instant::now();
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    for i in 0..n {
        let mut schedule = NewSchedule::new(
            format!("{PREFIX}{i}"),
            format!("{} * * * * *", i % 60),
            "noop",
        );
        schedule.queue = Some(BENCH_QUEUE.to_owned());
        schedule.workspace_id = Some(format!("ws_{}", i % 10_000));
        batch.push(schedule);
        if batch.len() == INSERT_BATCH || i + 1 == n {
            schedules.upsert_many(&batch).await?;
            batch.clear();
        }
    }
    eprintln!(
        "stored {n} schedules in {:.2}s; waiting for their first slots (up to a minute)",
        inserting.elapsed().as_secs_f64()
    );
    wait_all(&schedules, n, Duration::from_secs(120)).await?;
    let mut lateness = store.insert_lateness_ms(BENCH_QUEUE).await?;
    lateness.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lateness, 50.0), percentile(&lateness, 99.0));
    let max = lateness.last().copied().unwrap_or(0.0);

    // Phase 2: all N due at once; the first slots' jobs are gone, so each gets a new one.
    store.delete_queue(BENCH_QUEUE).await?;
    schedules.make_due_now(PREFIX).await?;
    let burst = Instant::now();
    wait_all(&schedules, n, Duration::from_secs(300)).await?;
    let burst_secs = burst.elapsed().as_secs_f64();
    let per_sec = n as f64 / burst_secs;

    shutdown.cancel();
    let _ = running.await;
    let jobs = store
        .count_in_queue(BENCH_QUEUE, hangar_workers::job::JobState::Completed, false)
        .await?;
    clean(&store, &schedules).await?;
    eprintln!(
        "backend={} schedules={n} first_slots: lateness_p50_ms={p50:.1} burst: all due at once, {jobs} jobs in {burst_secs:.2}s peak_rss_mib={:.1}",
        store.backend_name(),
        peak_rss_mib()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "schedules": n,
                "schedules_per_sec": per_sec, "lateness_p50_ms": p50, "lateness_p99_ms": p99,
                "max_lateness_ms": max, "peak_rss_mib": peak_rss_mib()})
        );
    }
    println!("schedules_per_sec={per_sec:.0} lateness_p99_ms={p99:.1} max_lateness_ms={max:.1}");
    Ok(())
}
