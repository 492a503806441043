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
    let mut registry = Registry::builtin();
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
