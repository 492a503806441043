//! Drains N no-op jobs through an apalis worker on [`HangarBackend`] and through Hangar's
//! native pool, on the same database and the same pool settings, and prints the drain rates
//! (BENCHMARKS.md, "apalis backend"). Each run enqueues the jobs first, then times from the
//! worker's start until the last completion is committed; the two runners alternate which
//! goes first, and the queue is deleted between runs.
//!
//! ```sh
//! cargo run --release -p apalis-hangar --example drain -- DATABASE_URL [JOBS] [CONCURRENCY] [RUNS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_hangar::{HangarBackend, HangarConfig};
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::Store;
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "drain-bench";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .ok_or("usage: drain DATABASE_URL [JOBS] [CONCURRENCY] [RUNS]")?;
    let jobs: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
    let concurrency: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let store = Store::connect(url, 16).await?;
    store.migrate().await?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let store = store.clone();
        let stop = shutdown.clone();
        async move { store.listen(stop).await }
    });
    let mut spec = pool_config::builtin().remove(0);
    spec.name = QUEUE.to_owned();
    spec.queue = QUEUE.to_owned();
    spec.kinds = vec!["noop".to_owned()];
    spec.concurrency = concurrency;
    spec.prefetch = concurrency;

    let (mut native, mut apalis) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for first in [run % 2 == 0, run % 2 == 1] {
            if first {
                native.push(drain(&store, jobs, || run_native(&store, &spec)).await?);
            } else {
                apalis.push(drain(&store, jobs, || run_apalis(&store, &spec)).await?);
            }
        }
        eprintln!(
            "run {}: native {:.0} jobs/s, apalis {:.0} jobs/s",
            run + 1,
            native[run],
            apalis[run]
        );
    }
    shutdown.cancel();
    let (n, a) = (median(&mut native), median(&mut apalis));
    println!(
        "backend={} jobs={jobs} concurrency={concurrency} runs={runs} native_median={n:.0} apalis_median={a:.0} ratio={:.2}",
        store.backend_name(),
        a / n
    );
    Ok(())
}

/// Enqueues `jobs` no-op jobs, starts a runner, and returns jobs/s from its start until
/// every job is completed.
async fn drain<F>(store: &Store, jobs: usize, start: F) -> Result<f64, Box<dyn std::error::Error>>
where
    F: FnOnce() -> (CancellationToken, tokio::task::JoinHandle<()>),
{
    store.delete_queue(QUEUE).await?;
    let batch: Vec<NewJob> = (0..5_000.min(jobs))
        .map(|_| {
            let mut job = NewJob::new("noop", serde_json::json!({}));
            job.queue = QUEUE.to_owned();
            job
        })
        .collect();
    let mut left = jobs;
    while left > 0 {
        let n = left.min(batch.len());
        store.enqueue_many(&batch[..n]).await?;
        left -= n;
    }
    let started = Instant::now();
    let (stop, running) = start();
    while store
        .count_in_queue(QUEUE, JobState::Completed, false)
        .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = running.await;
    Ok(rate)
}

fn run_native(store: &Store, spec: &PoolSpec) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let pool = Pool::new(
        spec.clone(),
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin()),
            refresher: Arc::new(NoRefresher),
            worker_id: "bench-native".to_owned(),
        },
    );
    let stop = CancellationToken::new();
    (stop.clone(), tokio::spawn(pool.run(stop)))
}

fn run_apalis(store: &Store, spec: &PoolSpec) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let backend = HangarBackend::<serde_json::Value>::new(
        store.clone(),
        HangarConfig::from_spec(spec.clone()),
    );
    let worker = WorkerBuilder::new("bench-apalis")
        .backend(backend)
        .build(noop);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let run = tokio::spawn(async move {
        let _ = worker
            .run_until(async move {
                signal.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
            .await;
    });
    (stop, run)
}

/// The apalis handler: does nothing, as the native `noop` kind.
async fn noop(_: serde_json::Value) -> Result<(), BoxDynError> {
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
