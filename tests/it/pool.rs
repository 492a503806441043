//! The pool runtime with handlers that misbehave: a panic and an attempt that outlives the
//! pool's timeout both become failed attempts with the right class, and the pool goes on.

use std::sync::Arc;
use std::time::Duration;

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobState, NewJob};
use hangar_workers::kinds::{BoxFuture, Handler, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::targets::TargetPolicy;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestDb, fast_pools, wait_final};

/// `{"panic": true}` panics; `{"sleep_ms": N}` sleeps N ms; otherwise succeeds.
struct Misbehaving;

impl Handler for Misbehaving {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        Box::pin(async move {
            if job.args["panic"] == true {
                panic!("handler bug");
            }
            if let Some(ms) = job.args["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_overruns_fail_the_attempt_not_the_pool() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let toml = fast_pools("timeout_ms = 300", "")
        .replace("kinds = [\"noop\", \"http\"]", "kinds = [\"odd\"]");
    let spec = pool_config::parse("test", &toml).unwrap().remove(0);
    let mut registry = Registry::builtin_with(TargetPolicy::AllowAll);
    registry.register("odd", Misbehaving);
    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(registry),
            refresher: Arc::new(NoRefresher),
            worker_id: "test".to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));

    let enqueue = |args: serde_json::Value| {
        let store = store.clone();
        async move { store.enqueue(&NewJob::new("odd", args)).await.unwrap().id }
    };
    let panics = enqueue(serde_json::json!({"panic": true})).await;
    let overruns = enqueue(serde_json::json!({"sleep_ms": 5_000})).await;
    let fine = enqueue(serde_json::json!({})).await;

    let job = wait_final(&store, panics, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 4, "internal: 3 retries, then fail");
    assert!(
        job.attempts
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Internal)
                && a.error.as_deref() == Some("the handler panicked"))
    );

    let job = wait_final(&store, overruns, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 4, "timeout: 3 retries, then fail");
    for attempt in &job.attempts {
        assert_eq!(attempt.error_class, Some(ErrorClass::Timeout));
        let took = attempt.finished_at.unwrap() - attempt.started_at;
        assert!(
            took < chrono::Duration::milliseconds(1_500),
            "the 300 ms timeout did not stop it: {took}"
        );
    }

    assert_eq!(
        wait_final(&store, fine, Duration::from_secs(20))
            .await
            .state,
        JobState::Completed
    );
    shutdown.cancel();
    running.await.unwrap();
}

/// While a pool drains a backlog it claims after the last key it took (see `ClaimKey`); a
/// job that arrives ahead of that key (here: a higher priority) must still run soon, not
/// after the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_job_overtakes_a_backlog() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = crate::support::Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let backlog: Vec<NewJob> = (0..3_000)
        .map(|i| {
            let mut job = NewJob::new(
                "http",
                serde_json::json!({"url": server.url("/slow/5"), "body": {"n": i}}),
            );
            job.priority = 5;
            job
        })
        .collect();
    for chunk in backlog.chunks(1_000) {
        store.enqueue_many(chunk).await.unwrap();
    }
    let _worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    crate::support::wait_for(
        "the backlog to be draining",
        Duration::from_secs(30),
        || async { (server.hits_on("/slow").len() >= 300).then_some(()) },
    )
    .await;
    let mut urgent = NewJob::new("noop", serde_json::json!({}));
    urgent.priority = 0;
    let urgent = store.enqueue(&urgent).await.unwrap().id;
    let job = wait_final(&store, urgent, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed);
    let done = store
        .count_in_queue("default", JobState::Completed, true)
        .await
        .unwrap();
    assert!(
        done < 2_000,
        "the urgent job waited for {done} of 3000 backlog jobs"
    );
}
