//! The store through the library, on both backends: results fenced by lease token,
//! idempotency keys, operator transitions, pruning.

use std::sync::Arc;
use std::time::Duration;

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::{Completion, Store, StoreError};
use hangar_workers::targets::TargetPolicy;

use crate::support::{Backend, TestDb, fast_pools};

fn pool(store: &Store) -> Pool {
    let spec = pool_config::parse("test", &fast_pools("", ""))
        .unwrap()
        .remove(0);
    Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin_with(TargetPolicy::AllowAll)),
            refresher: Arc::new(NoRefresher),
            worker_id: "test:rescuer".to_owned(),
        },
    )
}

async fn stale_results_are_rejected(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .id;

    // Worker A claims with a short lease, then stalls past it.
    let a = store
        .claim("default", "A", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let counts = pool(&store).maintain_once().await.unwrap();
    assert_eq!(counts.rescued, 1);
    let job = store.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Retryable);
    assert_eq!(job.attempts[0].error_class, Some(ErrorClass::Internal));
    assert!(
        job.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("lease expired: worker A")
    );

    // Worker B claims the retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = store
        .claim("default", "B", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attempt, 2);

    // A wakes up and reports: rejected, on every path.
    let completion = |token| Completion {
        id,
        lease_token: token,
        attempt: 1,
        finished_at: chrono::Utc::now(),
    };
    assert_eq!(
        store
            .complete(&[completion(a[0].lease_token)])
            .await
            .unwrap(),
        vec![id]
    );
    assert!(
        store
            .heartbeat(&[(id, a[0].lease_token)], Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let spec = pool_config::parse("test", &fast_pools("", ""))
        .unwrap()
        .remove(0);
    let failure = hangar_workers::kinds::JobFailure::new(ErrorClass::Server, "late");
    let decision = hangar_workers::pool::decide_failure(&spec, &a[0], &failure, None);
    let record = hangar_workers::pool::failure_record(&a[0], &failure, &decision, "A");
    assert!(!store.record_failure(&record).await.unwrap());
    let job = store.job(id).await.unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Running, 2),
        "A overwrote B's attempt"
    );

    // B's result counts.
    assert!(
        store
            .complete(&[completion(b[0].lease_token)])
            .await
            .unwrap()
            .is_empty()
    );
    let job = store.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempts.len(), 2);
    assert_eq!(job.attempts[1].error_class, None);
}

#[tokio::test]
async fn stale_results_are_rejected_on_postgres() {
    stale_results_are_rejected(Backend::Postgres).await;
}

#[tokio::test]
async fn stale_results_are_rejected_on_sqlite() {
    stale_results_are_rejected(Backend::Sqlite).await;
}

async fn idempotency_and_transitions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut job = NewJob::new("noop", serde_json::json!({"a": 1}));
    job.idempotency_key = Some("k1".to_owned());
    let first = store.enqueue(&job).await.unwrap();
    let again = store.enqueue(&job).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.id, again.id);
    let mut other_kind = job.clone();
    other_kind.kind = "http".to_owned();
    assert_ne!(
        store.enqueue(&other_kind).await.unwrap().id,
        first.id,
        "unique per kind only"
    );
    assert_eq!(
        store
            .enqueue_many(&[job.clone(), job.clone()])
            .await
            .unwrap(),
        0
    );

    // Cancel, then cancel again: a conflict that names the state.
    let cancelled = store.cancel_job(first.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    match store.cancel_job(first.id).await {
        Err(StoreError::JobConflict { state, .. }) => assert_eq!(state, JobState::Cancelled),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Retry brings it back; retrying an available job is a conflict.
    assert_eq!(
        store.retry_job(first.id).await.unwrap().state,
        JobState::Available
    );
    assert!(matches!(
        store.retry_job(first.id).await,
        Err(StoreError::JobConflict { .. })
    ));
    assert!(matches!(
        store.job(hangar_workers::job::JobId(999_999)).await,
        Err(StoreError::JobNotFound(_))
    ));

    // Completed jobs are pruned after retention; failed ones stay.
    let claimed = store
        .claim("default", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let done: Vec<Completion> = claimed
        .iter()
        .map(|c| Completion {
            id: c.id,
            lease_token: c.lease_token,
            attempt: c.attempt,
            finished_at: chrono::Utc::now(),
        })
        .collect();
    assert!(store.complete(&done).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store
            .prune_completed(Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.prune_completed(Duration::ZERO, 100).await.unwrap(), 2);
    assert!(matches!(
        store.job(first.id).await,
        Err(StoreError::JobNotFound(_))
    ));
}

#[tokio::test]
async fn idempotency_and_transitions_on_postgres() {
    idempotency_and_transitions(Backend::Postgres).await;
}

#[tokio::test]
async fn idempotency_and_transitions_on_sqlite() {
    idempotency_and_transitions(Backend::Sqlite).await;
}
