//! `hangar bench throughput|latency` (CONTRACT.md): measurements through the normal pool
//! runtime on the configured database, on a queue of their own that is emptied before and
//! after; `hangar bench planner` measures the cron planner (`bench/planner.rs`), `hangar
//! bench webhooks` outbound webhook deliveries (`bench/webhooks.rs`), `hangar bench http` the
//! HTTP API under load (`bench/http_load.rs`), `hangar bench faults` draining while workers
//! are killed (`bench/faults.rs`), `hangar bench tenants` planner lag and claim latency
//! beside many workspaces, schedules and endpoints (`bench/tenants.rs`). The last line
//! printed is the machine-readable result.

mod faults;
mod http_load;
mod planner;
mod redis_ingress;
mod tenants;
mod webhooks;

pub use faults::{FaultsRun, faults};
pub use http_load::http;
pub use planner::planner;
pub use redis_ingress::ingress;
pub use tenants::{TenantsRun, tenants};
pub use webhooks::webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_workers::job::{ClaimedJob, JobId, JobState, NewJob};
use hangar_workers::kinds::{BoxFuture, Handler, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config::PoolSpec;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::commands::progress::Progress;
use crate::config::Config;
use crate::exit::Fatal;

pub(crate) const BENCH_QUEUE: &str = "hangar-bench";
const ENQUEUE_BATCH: usize = 5_000;

/// A `noop` that reports when it started.
struct Probe {
    started: mpsc::UnboundedSender<(JobId, Instant, f64)>,
}

impl Handler for Probe {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), hangar_workers::kinds::ArgsError> {
        Ok(())
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let now = Instant::now();
        // Enqueue-to-start as the database saw it: claim time minus insert time.
        let waited_ms = (job.started_at - job.created_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1000.0;
        let _ = self.started.send((job.id, now, waited_ms));
        Box::pin(async { Ok(()) })
    }
}

pub(crate) fn bench_pool(config: &Config, concurrency: usize) -> PoolSpec {
    let mut spec = config
        .pool_for_kind("noop")
        .cloned()
        .unwrap_or_else(|| hangar_workers::pool_config::builtin().remove(0));
    spec.name = "bench".to_owned();
    spec.queue = BENCH_QUEUE.to_owned();
    spec.concurrency = concurrency.max(1);
    spec.batch_size = spec.batch_size.max(concurrency.min(1_000));
    spec
}

fn start_pool(
    store: &Store,
    spec: PoolSpec,
    probe: Probe,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut registry = Registry::builtin();
    registry.register("noop", probe);
    let deps = PoolDeps {
        store: store.clone(),
        registry: Arc::new(registry),
        refresher: Arc::new(NoRefresher),
        worker_id: crate::runtime::worker_id(),
    };
    let (listener, stop) = (store.clone(), shutdown.clone());
    tokio::spawn(async move { listener.listen(stop).await });
    tokio::spawn(Pool::new(spec, deps).run(shutdown.clone()))
}

pub(crate) async fn prepare(config: &Config) -> Result<Store, Fatal> {
    let store = crate::connect(config).await?;
    crate::store::migrate(store.database()).await?;
    store.delete_queue(BENCH_QUEUE).await?;
    Ok(store)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Peak resident memory of this process in MiB (Linux), 0 elsewhere.
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `hangar bench throughput`.
pub async fn throughput(
    config: &Config,
    jobs: usize,
    concurrency: usize,
    json: bool,
) -> Result<(), Fatal> {
    if jobs == 0 {
        return Err(Fatal::config("--jobs: must be at least 1"));
    }
    let store = prepare(config).await?;
    let enqueue_started = Instant::now();
    let progress = Progress::new(jobs as u64, "enqueueing", json);
    let mut batch = Vec::with_capacity(ENQUEUE_BATCH);
    for _ in 0..jobs {
        let mut job = NewJob::new("noop", serde_json::json!({}));
        job.queue = BENCH_QUEUE.to_owned();
        batch.push(job);
        if batch.len() == ENQUEUE_BATCH {
            store.enqueue_many(&batch).await?;
            progress.inc(batch.len() as u64);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.enqueue_many(&batch).await?;
    }
    progress.finish();
    let enqueue_secs = enqueue_started.elapsed().as_secs_f64();
    eprintln!(
        "enqueued {jobs} jobs in {enqueue_secs:.2}s ({:.0}/s); draining",
        jobs as f64 / enqueue_secs
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let drain_started = Instant::now();
    let pool = start_pool(
        &store,
        bench_pool(config, concurrency),
        Probe { started: tx },
        &shutdown,
    );
    let mut waits = Vec::with_capacity(jobs);
    let progress = Progress::new(jobs as u64, "draining", json);
    while waits.len() < jobs {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some((_, _, waited_ms))) => {
                waits.push(waited_ms);
                progress.inc(1);
            }
            _ => {
                shutdown.cancel();
                return Err(Fatal::runtime("bench: no job started for 60 s; giving up"));
            }
        }
    }
    // Started is not done: wait until the completions are committed.
    loop {
        let open = store
            .count_in_queue(BENCH_QUEUE, JobState::Completed, false)
            .await?;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    progress.finish();
    shutdown.cancel();
    let _ = pool.await;
    let completed = store
        .count_in_queue(BENCH_QUEUE, JobState::Completed, true)
        .await?;
    store.delete_queue(BENCH_QUEUE).await?;
    waits.sort_by(f64::total_cmp);
    let jobs_per_sec = jobs as f64 / drain_secs;
    let (p50, p99) = (percentile(&waits, 50.0), percentile(&waits, 99.0));
    eprintln!(
        "backend={} jobs={jobs} completed={completed} concurrency={concurrency} drain_s={drain_secs:.3} peak_rss_mib={:.1}",
        store.backend_name(),
        peak_rss_mib()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "jobs": jobs, "concurrency": concurrency,
                "jobs_per_sec": jobs_per_sec, "p50_ms": p50, "p99_ms": p99, "peak_rss_mib": peak_rss_mib()})
        );
    }
    println!("jobs_per_sec={jobs_per_sec:.0} p50_ms={p50:.1} p99_ms={p99:.1}");
    Ok(())
}

/// `hangar bench latency`.
pub async fn latency(
    config: &Config,
    jobs: usize,
    interval_ms: u64,
    json: bool,
) -> Result<(), Fatal> {
    if jobs == 0 {
        return Err(Fatal::config("--jobs: must be at least 1"));
    }
    let store = prepare(config).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let pool = start_pool(
        &store,
        bench_pool(config, 10),
        Probe { started: tx },
        &shutdown,
    );
    // Let the pool reach its idle wait (and LISTEN) before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::with_capacity(jobs);
    let mut enqueue_ms = Vec::with_capacity(jobs);
    let progress = Progress::new(jobs as u64, "one job at a time", json);
    for _ in 0..jobs {
        let mut job = NewJob::new("noop", serde_json::json!({}));
        job.queue = BENCH_QUEUE.to_owned();
        let sent = Instant::now();
        let id = store.enqueue(&job).await?.id;
        enqueue_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some((started_id, started, _))) if started_id == id => {
                    latencies.push(started.duration_since(sent).as_secs_f64() * 1000.0);
                    break;
                }
                Ok(Some(_)) => {}
                _ => {
                    shutdown.cancel();
                    return Err(Fatal::runtime(format!(
                        "bench: job {id} did not start within 10 s"
                    )));
                }
            }
        }
        progress.inc(1);
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
    progress.finish();
    shutdown.cancel();
    let _ = pool.await;
    store.delete_queue(BENCH_QUEUE).await?;
    latencies.sort_by(f64::total_cmp);
    enqueue_ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let max = latencies.last().copied().unwrap_or(0.0);
    eprintln!(
        "enqueue call alone: p50_ms={:.2} p99_ms={:.2}",
        percentile(&enqueue_ms, 50.0),
        percentile(&enqueue_ms, 99.0)
    );
    eprintln!(
        "backend={} jobs={jobs} interval_ms={interval_ms} peak_rss_mib={:.1}",
        store.backend_name(),
        peak_rss_mib()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "jobs": jobs, "interval_ms": interval_ms,
                "p50_ms": p50, "p99_ms": p99, "max_ms": max})
        );
    }
    println!("p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2}");
    Ok(())
}
