//! The apalis backend (`apalis-hangar`): an apalis 1.0 worker (`WorkerBuilder`, the
//! `catch_panic` and `timeout` tower layers) runs Hangar jobs on both backends; its results
//! are Hangar's: completions and failures with the pool rules' backoff on the job's attempt
//! rows as `hangar jobs show` prints them, and a worker dropped mid-job is rescued when its
//! lease runs out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::WorkerBuilderExt;
use apalis_core::error::{BoxDynError, WorkerError};
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_hangar::{HangarBackend, HangarConfig, HangarFailure, HangarJob};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{JobId, NewJob};
use hangar_workers::store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::support::{Backend, TestDb, stdout_ok, wait_for};

const QUEUE: &str = "apalis";

/// The args of the test kind: what the handler should do on which attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    n: i64,
    /// Attempts up to this one fail (1: the first panics, the next ones answer "HTTP 503").
    #[serde(default)]
    fail_until: i32,
    /// Never returns (the crash test's job).
    #[serde(default)]
    hang: bool,
}

/// The numbers the handler has seen succeed.
type Seen = Arc<Mutex<HashSet<i64>>>;

async fn handle(order: Order, job: Data<HangarJob>, seen: Data<Seen>) -> Result<i64, BoxDynError> {
    let attempt = job.0.0.attempt;
    if order.hang {
        std::future::pending::<()>().await;
    }
    if attempt <= order.fail_until {
        if attempt == 1 {
            panic!("order {} exploded", order.n);
        }
        return Err(HangarFailure::new(ErrorClass::Server, "HTTP 503 from the warehouse").into());
    }
    seen.lock().unwrap().insert(order.n);
    Ok(order.n)
}

/// Short leases, fast polls and backoffs of 200 ms (internal) and 400 ms (server), so a test
/// sees several attempts in a few seconds.
fn config() -> HangarConfig {
    let mut config = HangarConfig::new(QUEUE)
        .kinds(&["order"])
        .concurrency(8)
        .lease(Duration::from_millis(1_200))
        .poll_interval(Duration::from_millis(100));
    config.spec.retry.internal.base_delay = Duration::from_millis(200);
    config.spec.retry.server.base_delay = Duration::from_millis(400);
    config
}

/// An apalis worker on `store`, run until the returned sender is used (or dropped).
fn spawn_worker(
    store: &Store,
    name: &str,
    seen: &Seen,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), WorkerError>>,
) {
    let backend = HangarBackend::<Order>::new(store.clone(), config());
    let worker = WorkerBuilder::new(name)
        .backend(backend)
        .data(seen.clone())
        .catch_panic()
        .timeout(Duration::from_secs(30))
        .build(handle);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    }));
    (stop, run)
}

async fn enqueue(store: &Store, order: Order) -> JobId {
    let mut job = NewJob::new("order", serde_json::to_value(order).unwrap());
    job.queue = QUEUE.to_owned();
    store.enqueue(&job).await.expect("enqueue").id
}

/// The job as `hangar jobs show --json` prints it.
fn show(db: &TestDb, id: JobId) -> serde_json::Value {
    let out = db.run(&["jobs", "show", &id.to_string(), "--json"]);
    serde_json::from_str(&stdout_ok(&out)).expect("job JSON")
}

async fn wait_final(db: &TestDb, id: JobId) -> serde_json::Value {
    wait_for("the job to finish", Duration::from_secs(30), || async {
        let job = show(db, id);
        matches!(job["state"].as_str(), Some("completed" | "failed")).then_some(job)
    })
    .await
}

async fn runs_jobs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut ids = Vec::new();
    for n in 0..40 {
        let order = Order {
            n,
            fail_until: 0,
            hang: false,
        };
        ids.push(enqueue(&store, order).await);
    }
    // A job of another kind on the queue fails at once, never retried.
    let mut stray = NewJob::new("noop", serde_json::json!({}));
    stray.queue = QUEUE.to_owned();
    let stray = store.enqueue(&stray).await.unwrap().id;

    let seen = Seen::default();
    let (stop, run) = spawn_worker(&store, "orders", &seen);
    for id in &ids {
        let job = wait_final(&db, *id).await;
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
        let attempts = job["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{job}");
        assert_eq!(attempts[0]["decision"], "completed", "{job}");
    }
    assert_eq!(seen.lock().unwrap().len(), 40);
    let stray = wait_final(&db, stray).await;
    assert_eq!(stray["state"], "failed", "{stray}");
    assert_eq!(stray["attempts"][0]["error_class"], "client", "{stray}");
    assert!(
        stray["last_error"]
            .as_str()
            .unwrap()
            .contains("no apalis handler for kind 'noop'"),
        "{stray}"
    );

    // The worker is on the Workers page while it runs, and leaves it when it stops.
    let me = format!("apalis:orders:{}", std::process::id());
    let rows = store.processes().await.unwrap();
    let row = rows
        .iter()
        .find(|p| p.id == me)
        .expect("the worker's process row");
    assert_eq!(
        (row.command.as_str(), row.pools.clone()),
        ("apalis", vec!["apalis-apalis".to_owned()])
    );

    stop.send(()).unwrap();
    run.await.unwrap().expect("the worker stops cleanly");
    let rows = store.processes().await.unwrap();
    assert!(rows.iter().all(|p| p.id != me), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_worker_runs_hangar_jobs_postgres() {
    runs_jobs(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_worker_runs_hangar_jobs_sqlite() {
    runs_jobs(Backend::Sqlite).await;
}

async fn retries_with_backoff(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = enqueue(
        &store,
        Order {
            n: 7,
            fail_until: 3,
            hang: false,
        },
    )
    .await;
    let seen = Seen::default();
    let (stop, run) = spawn_worker(&store, "orders", &seen);
    let job = wait_final(&db, id).await;
    stop.send(()).unwrap();
    run.await.unwrap().expect("the worker stops cleanly");

    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempt"], 4, "{job}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 4, "{job}");
    // Attempt 1 panicked (caught by apalis's catch_panic layer): an internal failure, 200 ms
    // ±20 % before the next. Attempts 2 and 3 answered 503: server failures, 400 ms then
    // 800 ms (the server table doubles; ±20 %). Attempt 4 completed.
    assert_eq!(attempts[0]["error_class"], "internal", "{job}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("order 7 exploded"),
        "{job}"
    );
    assert_eq!(attempts[1]["error_class"], "server", "{job}");
    assert_eq!(attempts[2]["error_class"], "server", "{job}");
    let delay = |i: usize| attempts[i]["next_delay_ms"].as_i64().expect("a delay");
    assert!((160..=240).contains(&delay(0)), "{job}");
    assert!((320..=480).contains(&delay(1)), "{job}");
    assert!((640..=960).contains(&delay(2)), "{job}");
    // The waits were kept: each attempt started no earlier than the previous one's end plus
    // its delay (the database's clock on both sides).
    for i in 1..4 {
        let started =
            chrono::DateTime::parse_from_rfc3339(attempts[i]["started_at"].as_str().unwrap())
                .unwrap();
        let finished =
            chrono::DateTime::parse_from_rfc3339(attempts[i - 1]["finished_at"].as_str().unwrap())
                .unwrap();
        let waited = (started - finished).num_milliseconds();
        assert!(
            waited >= delay(i - 1) - 50,
            "attempt {}: waited {waited} ms: {job}",
            i + 1
        );
    }
    assert_eq!(attempts[3]["decision"], "completed", "{job}");
    assert!(seen.lock().unwrap().contains(&7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_failures_retry_with_hangar_backoff_postgres() {
    retries_with_backoff(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_failures_retry_with_hangar_backoff_sqlite() {
    retries_with_backoff(Backend::Sqlite).await;
}

async fn rescues_a_dropped_worker(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = enqueue(
        &store,
        Order {
            n: 9,
            fail_until: 0,
            hang: true,
        },
    )
    .await;
    let seen = Seen::default();
    let (_stop, crashed) = spawn_worker(&store, "doomed", &seen);
    wait_for("the job to run", Duration::from_secs(20), || async {
        (show(&db, id)["state"] == "running").then_some(())
    })
    .await;
    // The worker dies mid-job: its future (backend, heartbeat and all) is dropped.
    crashed.abort();
    let _ = crashed.await;
    // The hanging handler would never finish: the next worker runs the same job without it.
    let (stop, run) = {
        let backend = HangarBackend::<Order>::new(store.clone(), config());
        let seen = seen.clone();
        let worker = WorkerBuilder::new("rescuer")
            .backend(backend)
            .data(seen)
            .build(|order: Order, seen: Data<Seen>| async move {
                seen.lock().unwrap().insert(order.n);
                Ok::<_, BoxDynError>(())
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
            Ok::<(), std::io::Error>(())
        }));
        (stop, run)
    };
    let job = wait_final(&db, id).await;
    stop.send(()).unwrap();
    run.await.unwrap().expect("the worker stops cleanly");

    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts[0]["error_class"], "internal", "{job}");
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(
        error.contains("lease expired: worker apalis:doomed:"),
        "{job}"
    );
    assert_eq!(attempts[1]["decision"], "completed", "{job}");
    assert!(seen.lock().unwrap().contains(&9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_worker_dropped_mid_job_is_rescued_postgres() {
    rescues_a_dropped_worker(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_worker_dropped_mid_job_is_rescued_sqlite() {
    rescues_a_dropped_worker(Backend::Sqlite).await;
}
