//! The TCP fault proxy (`fault_proxy.rs`) between Hangar and PostgreSQL and between Hangar and
//! a provider (issue 14): added latency, dropped connections, half-open sockets and a
//! bandwidth limit. Jobs finish or are rescued, and nothing waits past its timeout: every
//! test asserts the job's outcome and how long it took to settle.
//!
//! The database cases run on PostgreSQL only (SQLite is a file, there is no socket to break);
//! the provider cases run on both backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{JobId, JobState, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fault_proxy::{Fault, FaultProxy, authority_of};
use crate::support::{Backend, Receiver, TestDb, enqueue_http, fast_pools, wait_final};

/// A pool of the built-in kinds running in this process on `store`, as `worker_id`.
pub(crate) fn start_pool(store: &Store, worker_id: &str) -> (CancellationToken, JoinHandle<()>) {
    let spec = pool_config::parse("test", &fast_pools("", ""))
        .expect("pools")
        .remove(0);
    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin_with(TargetPolicy::allow_all())),
            refresher: Arc::new(NoRefresher),
            worker_id: worker_id.to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));
    (shutdown, running)
}

async fn noop(store: &Store) -> JobId {
    store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .expect("enqueue")
        .id
}

/// 40 ms added to every chunk each way between the pool and PostgreSQL (a far-away
/// database): every job still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_tcp_db_latency_jobs_complete_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.store().await;
    let proxy = FaultProxy::start(&authority_of(&db.url)).await;
    proxy.set(Fault::Latency(Duration::from_millis(40)));
    let proxied = Store::connect_existing(&proxy.url_for(&db.url), 4)
        .await
        .expect("connect through the proxy");
    let (shutdown, running) = start_pool(&proxied, "slow-link");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(noop(&direct).await);
    }
    for id in ids {
        let job = wait_final(&direct, id, Duration::from_secs(20)).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(job.attempts.len(), 1, "ran once: {job:?}");
    }
    shutdown.cancel();
    running.await.expect("pool stops");
}

/// Every connection between the pool and PostgreSQL is closed at once (a restart, a reset
/// by a middlebox), twice, while jobs arrive: the pool reconnects and every job completes,
/// each in one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_tcp_db_dropped_connections_jobs_complete_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.store().await;
    let proxy = FaultProxy::start(&authority_of(&db.url)).await;
    let proxied = Store::connect_existing(&proxy.url_for(&db.url), 4)
        .await
        .expect("connect through the proxy");
    let (shutdown, running) = start_pool(&proxied, "dropped");
    let mut ids = vec![noop(&direct).await];
    wait_final(&direct, ids[0], Duration::from_secs(10)).await;
    for _ in 0..2 {
        proxy.drop_all();
        for _ in 0..5 {
            ids.push(noop(&direct).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in ids {
        let job = wait_final(&direct, id, Duration::from_secs(20)).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(job.attempts.len(), 1, "ran once: {job:?}");
    }
    shutdown.cancel();
    running.await.expect("pool stops");
}

/// The link between a worker holding a job and PostgreSQL goes half-open (packets vanish:
/// its connections are cut and new ones never answer). Its lease (2 s) cannot be renewed:
/// another worker rescues the job once the lease ran out, not before, and completes it; the
/// cut-off worker stops the attempt itself and shuts down within its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_tcp_db_half_open_job_is_rescued_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.store().await;
    let server = Receiver::start().await;
    let proxy = FaultProxy::start(&authority_of(&db.url)).await;
    let proxied = Store::connect_existing(&proxy.url_for(&db.url), 4)
        .await
        .expect("connect through the proxy");
    let (cut_shutdown, cut_running) = start_pool(&proxied, "cut-off");
    // 4 s at the provider: the job is surely running when the link breaks.
    let id = enqueue_http(
        &direct,
        &server.url("/slow/4000"),
        serde_json::json!({"timeout_ms": 10000}),
    )
    .await;
    crate::support::wait_state(&direct, id, JobState::Running, Duration::from_secs(10)).await;
    let cut_at = Instant::now();
    proxy.set(Fault::HalfOpen);
    proxy.drop_all();

    let (shutdown, running) = start_pool(&direct, "rescuer");
    let job = wait_final(&direct, id, Duration::from_secs(20)).await;
    let settled = cut_at.elapsed();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts.len(), 2, "rescued once: {job:?}");
    let lost = job.attempts[0].error.clone().unwrap_or_default();
    assert!(lost.contains("lease expired"), "{job:?}");
    // The lease is 2 s: not rescued before it ran out; the second run takes 4 s more.
    assert!(
        settled >= Duration::from_secs(6) && settled < Duration::from_secs(20),
        "settled {settled:?} after the cut"
    );

    let stopping = Instant::now();
    cut_shutdown.cancel();
    cut_running.await.expect("the cut-off pool stops");
    assert!(
        stopping.elapsed() < Duration::from_secs(3 + 10 + 2),
        "the cut-off pool stopped within its grace and the store's timeouts ({:?})",
        stopping.elapsed()
    );
    shutdown.cancel();
    running.await.expect("pool stops");
}

/// Between the worker and the provider: a half-open socket fails the attempt as a `timeout`
/// when the job's own `timeout_ms` runs out (not later), a connection dropped mid-request
/// fails as `timeout` too, both are retried and complete once the link is back, and a
/// 2 KiB/s link still completes.
async fn provider_link_faults(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    let proxy = FaultProxy::start(&authority_of(&server.base)).await;
    let (shutdown, running) = start_pool(&store, "provider-link");

    proxy.set(Fault::HalfOpen);
    let half_open = enqueue_http(
        &store,
        &proxy.url_for(&server.url("/status/200")),
        serde_json::json!({"timeout_ms": 1000}),
    )
    .await;
    let job = crate::support::wait_for("the first attempt", Duration::from_secs(10), || async {
        let job = store.job(half_open).await.ok()?;
        job.attempts
            .first()
            .is_some_and(|a| a.finished_at.is_some())
            .then_some(job)
    })
    .await;
    let first = &job.attempts[0];
    assert_eq!(first.error_class, Some(ErrorClass::Timeout), "{job:?}");
    let took = (first.finished_at.unwrap() - first.started_at)
        .to_std()
        .unwrap();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2500),
        "the attempt ended at its 1 s timeout, took {took:?}"
    );
    proxy.set(Fault::None);
    proxy.drop_all();
    let job = wait_final(&store, half_open, Duration::from_secs(10)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");

    let dropped = enqueue_http(
        &store,
        &proxy.url_for(&server.url("/slow/1500")),
        serde_json::json!({"timeout_ms": 5000}),
    )
    .await;
    crate::support::wait_state(&store, dropped, JobState::Running, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.drop_all();
    let job = wait_final(&store, dropped, Duration::from_secs(15)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts.len(), 2, "{job:?}");
    assert_eq!(
        job.attempts[0].error_class,
        Some(ErrorClass::Timeout),
        "{job:?}"
    );

    proxy.set(Fault::Bandwidth(2048));
    let started = Instant::now();
    let slow_link = enqueue_http(
        &store,
        &proxy.url_for(&server.url("/status/200")),
        serde_json::json!({"timeout_ms": 5000, "body": "x".repeat(4096)}),
    )
    .await;
    let job = wait_final(&store, slow_link, Duration::from_secs(15)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts.len(), 1, "{job:?}");
    // 4 KiB of body at 2 KiB/s: throttled, not refused.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    shutdown.cancel();
    running.await.expect("pool stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_tcp_provider_link_postgres() {
    provider_link_faults(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_tcp_provider_link_sqlite() {
    provider_link_faults(Backend::Sqlite).await;
}
