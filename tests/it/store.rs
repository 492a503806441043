//! The store through the library, on both backends: results fenced by lease token, the
//! rescuer's takeover, idempotency keys, operator transitions (a cancel keeps the running
//! attempt), completions with their alerts, retention per queue.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobState, NewJob};
use hangar_workers::kinds::{JobFailure, Registry};
use hangar_workers::pool::pruner::{PruneCounts, Pruner};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::refresher::NoRefresher;
use hangar_workers::retry_policy::{Alert, AlertKind, Severity};
use hangar_workers::store::{CANCELLED, Completion, Store, StoreError};
use hangar_workers::targets::TargetPolicy;

use crate::support::{Backend, TestDb, fast_pools, wait_for};

/// The pool of `fast_pools`.
fn spec() -> PoolSpec {
    pool_config::parse("test", &fast_pools("", ""))
        .unwrap()
        .remove(0)
}

/// The completion of a claimed job, now.
fn completion(job: &ClaimedJob) -> Completion {
    Completion {
        id: job.id,
        lease_token: job.lease_token,
        attempt: job.attempt,
        finished_at: chrono::Utc::now(),
    }
}

fn pool(store: &Store) -> Pool {
    Pool::new(
        spec(),
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin_with(TargetPolicy::allow_all())),
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
    let counts = wait_for(
        "A's lease to expire and the rescuer to take the job",
        Duration::from_secs(10),
        || async {
            let counts = pool(&store).maintain_once().await.unwrap();
            (counts.rescued > 0).then_some(counts)
        },
    )
    .await;
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

    // Worker B claims the retry once it is due.
    let b = wait_for("the retry to be due", Duration::from_secs(10), || async {
        let b = store
            .claim("default", "B", 10, Duration::from_secs(30))
            .await
            .unwrap();
        (!b.is_empty()).then_some(b)
    })
    .await;
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
    let cancelled = store
        .cancel_job(first.id, &crate::support::test_actor())
        .await
        .unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    match store
        .cancel_job(first.id, &crate::support::test_actor())
        .await
    {
        Err(StoreError::JobConflict { state, .. }) => assert_eq!(state, JobState::Cancelled),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Retry brings it back; retrying an available job is a conflict.
    assert_eq!(
        store
            .retry_job(first.id, &crate::support::test_actor())
            .await
            .unwrap()
            .state,
        JobState::Available
    );
    assert!(matches!(
        store
            .retry_job(first.id, &crate::support::test_actor())
            .await,
        Err(StoreError::JobConflict { .. })
    ));
    assert!(matches!(
        store.job(hangar_workers::job::JobId(999_999)).await,
        Err(StoreError::JobNotFound(_))
    ));

    // Completed jobs are pruned after retention; failed ones stay.
    let failing = store
        .enqueue(&NewJob::new("noop", serde_json::json!({"fails": true})))
        .await
        .unwrap()
        .id;
    let claimed = store
        .claim("default", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let (to_fail, to_complete): (Vec<_>, Vec<_>) = claimed.iter().partition(|c| c.id == failing);
    let failure = JobFailure::new(ErrorClass::Client, "422 from the provider");
    let decision = hangar_workers::pool::decide_failure(&spec(), to_fail[0], &failure, None);
    let record = hangar_workers::pool::failure_record(to_fail[0], &failure, &decision, "w");
    assert!(store.record_failure(&record).await.unwrap());
    assert_eq!(store.job(failing).await.unwrap().state, JobState::Failed);
    let done: Vec<Completion> = to_complete.iter().map(|c| completion(c)).collect();
    assert!(store.complete(&done).await.unwrap().is_empty());
    clock_past(Utc::now()).await;
    assert_eq!(
        store
            .prune_completed("default", Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_completed("default", Duration::ZERO, 100)
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store.job(first.id).await,
        Err(StoreError::JobNotFound(_))
    ));
    let kept = store.job(failing).await.unwrap();
    assert_eq!(
        kept.state,
        JobState::Failed,
        "failed jobs are kept for replay"
    );
    assert_eq!(kept.attempts.len(), 1);
}

#[tokio::test]
async fn idempotency_and_transitions_on_postgres() {
    idempotency_and_transitions(Backend::Postgres).await;
}

#[tokio::test]
async fn idempotency_and_transitions_on_sqlite() {
    idempotency_and_transitions(Backend::Sqlite).await;
}

/// Runs one SQL script on the store's own database (triggers that make a write fail).
async fn execute(db: &TestDb, sql: &'static str) {
    db.sql(sql).await;
}

/// The rescuer looks up expired leases, then takes each over; a worker that renews its lease
/// in between keeps its job.
async fn a_lease_renewed_a_moment_ago_is_not_taken_over(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    let a = store
        .claim("default", "A", 10, Duration::from_millis(100))
        .await
        .unwrap();
    let expired =
        crate::support::wait_for("the lease to expire", Duration::from_secs(10), || async {
            let expired = store.expired_leases("default", 10).await.unwrap();
            (!expired.is_empty()).then_some(expired)
        })
        .await;
    // Worker A renews its lease after the rescuer's look-up...
    assert_eq!(
        store
            .heartbeat(&[(id, a[0].lease_token)], Duration::from_secs(30))
            .await
            .unwrap(),
        vec![id]
    );
    // ...so the rescuer's takeover must not happen.
    let failure = JobFailure::new(ErrorClass::Internal, "lease expired: worker A stopped");
    let decision = hangar_workers::pool::decide_failure(&spec(), &expired[0].job, &failure, None);
    let record =
        hangar_workers::pool::failure_record(&expired[0].job, &failure, &decision, "rescuer");
    assert!(
        !store
            .rescue(&record, Duration::from_secs(30))
            .await
            .unwrap(),
        "a lease renewed a moment ago was taken over"
    );
    let job = store.job(id).await.unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Running, 1));
    assert!(job.attempts.is_empty(), "no rescue attempt was recorded");
    // A still holds the job and its success counts.
    assert!(
        store
            .complete(&[completion(&a[0])])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.job(id).await.unwrap().state, JobState::Completed);
}

#[tokio::test]
async fn a_lease_renewed_a_moment_ago_is_not_taken_over_on_postgres() {
    a_lease_renewed_a_moment_ago_is_not_taken_over(Backend::Postgres).await;
}

#[tokio::test]
async fn a_lease_renewed_a_moment_ago_is_not_taken_over_on_sqlite() {
    a_lease_renewed_a_moment_ago_is_not_taken_over(Backend::Sqlite).await;
}

/// Enqueues `n` noop jobs to `queue` and completes them.
async fn completed_jobs(store: &Store, queue: &str, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|_| {
            let mut job = NewJob::new("noop", serde_json::json!({}));
            job.queue = queue.to_owned();
            job
        })
        .collect();
    store.enqueue_many(&jobs).await.unwrap();
    let claimed = store
        .claim(queue, "w", n as i64, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    let done: Vec<Completion> = claimed.iter().map(completion).collect();
    assert!(store.complete(&done).await.unwrap().is_empty());
}

/// Waits until the clock is a millisecond (SQLite's resolution) past `moment`: rows finalized
/// before it are then older than a retention of zero.
async fn clock_past(moment: DateTime<Utc>) {
    wait_for(
        "the clock to pass the completions",
        Duration::from_secs(5),
        || async { (Utc::now().timestamp_millis() > moment.timestamp_millis()).then_some(()) },
    )
    .await;
}

async fn completed_in(store: &Store, queue: &str) -> i64 {
    store
        .count_in_queue(queue, JobState::Completed, true)
        .await
        .unwrap()
}

/// Each queue is pruned with its own retention, in bounded statements, by one process at a
/// time; the second "process" is a second connection pool on the same database.
async fn retention_is_per_queue_and_one_process_prunes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let other = db.store().await;
    completed_jobs(&store, "short", 5).await;
    completed_jobs(&store, "long", 3).await;
    clock_past(Utc::now()).await;

    // One statement deletes at most its limit.
    assert_eq!(
        store
            .prune_completed("short", Duration::ZERO, 2)
            .await
            .unwrap(),
        2
    );
    let first = Pruner::new(store.clone(), "short", Duration::ZERO, "first")
        .batch(2)
        .lease(Duration::from_millis(500));
    assert_eq!(
        first.run_once().await.unwrap(),
        PruneCounts {
            held: true,
            pruned: 3
        }
    );
    assert_eq!(completed_in(&store, "short").await, 0);
    assert_eq!(
        completed_in(&store, "long").await,
        3,
        "the short retention of queue 'short' pruned queue 'long'"
    );
    let long = Pruner::new(store.clone(), "long", Duration::from_secs(3600), "first");
    assert_eq!(long.run_once().await.unwrap().pruned, 0);
    assert_eq!(completed_in(&store, "long").await, 3);

    // While `first` holds the queue's lease, another process does not prune it.
    completed_jobs(&store, "short", 2).await;
    clock_past(Utc::now()).await;
    let second = Pruner::new(other.clone(), "short", Duration::ZERO, "second").batch(2);
    assert_eq!(
        second.run_once().await.unwrap(),
        PruneCounts {
            held: false,
            pruned: 0
        }
    );
    assert_eq!(completed_in(&store, "short").await, 2);
    // Once `first` stops renewing, the other takes over.
    let counts = crate::support::wait_for(
        "the first pruner's lease to expire",
        Duration::from_secs(10),
        || async {
            let counts = second.run_once().await.unwrap();
            counts.held.then_some(counts)
        },
    )
    .await;
    assert_eq!(counts.pruned, 2);
    assert!(!first.run_once().await.unwrap().held);
}

#[tokio::test]
async fn retention_is_per_queue_and_one_process_prunes_on_postgres() {
    retention_is_per_queue_and_one_process_prunes(Backend::Postgres).await;
}

#[tokio::test]
async fn retention_is_per_queue_and_one_process_prunes_on_sqlite() {
    retention_is_per_queue_and_one_process_prunes(Backend::Sqlite).await;
}

/// A cancel of a running job records the attempt it interrupted; the worker's late result
/// is rejected.
async fn a_cancelled_running_job_keeps_its_attempt(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let running = store
        .enqueue(&NewJob::new("noop", serde_json::json!({"n": 1})))
        .await
        .unwrap()
        .id;
    let claimed = store
        .claim("default", "host:7", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, running);
    let waiting = store
        .enqueue(&NewJob::new("noop", serde_json::json!({"n": 2})))
        .await
        .unwrap()
        .id;

    let job = store
        .cancel_job(running, &crate::support::test_actor())
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.attempts.len(), 1, "the interrupted attempt is recorded");
    let attempt = &job.attempts[0];
    assert_eq!(attempt.attempt, 1);
    assert_eq!(attempt.started_at, claimed[0].started_at);
    assert!(
        attempt
            .finished_at
            .is_some_and(|end| end >= attempt.started_at)
    );
    assert_eq!(attempt.error.as_deref(), Some(CANCELLED));
    assert_eq!(attempt.error_class, None);
    assert_eq!(
        store.complete(&[completion(&claimed[0])]).await.unwrap(),
        vec![running],
        "the worker's late success is rejected"
    );
    assert_eq!(store.job(running).await.unwrap().attempts.len(), 1);

    // A job cancelled before it ran has no attempt.
    let job = store
        .cancel_job(waiting, &crate::support::test_actor())
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.attempts.is_empty());
}

#[tokio::test]
async fn a_cancelled_running_job_keeps_its_attempt_on_postgres() {
    a_cancelled_running_job_keeps_its_attempt(Backend::Postgres).await;
}

#[tokio::test]
async fn a_cancelled_running_job_keeps_its_attempt_on_sqlite() {
    a_cancelled_running_job_keeps_its_attempt(Backend::Sqlite).await;
}

/// A success after failures completes the job and resolves its alert together: when the
/// alert cannot be resolved, the job is not completed either (the completer retries).
async fn a_completion_and_its_alert_commit_together(
    backend: Backend,
    refuse: &'static str,
    allow: &'static str,
) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    let first = store
        .claim("default", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let failure = JobFailure::new(ErrorClass::Server, "HTTP 503");
    let decision = hangar_workers::pool::decide_failure(&spec(), &first[0], &failure, None);
    let mut record = hangar_workers::pool::failure_record(&first[0], &failure, &decision, "w");
    record.next_state = JobState::Retryable;
    record.delay = Duration::ZERO;
    record.alert = Some(Alert {
        kind: AlertKind::JobFailing,
        severity: Severity::Warning,
        message: "job keeps failing".to_owned(),
    });
    assert!(store.record_failure(&record).await.unwrap());
    assert_eq!(store.alerts(false).await.unwrap().len(), 1);
    let second = store
        .claim("default", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(second[0].attempt, 2);

    execute(&db, refuse).await;
    assert!(store.complete(&[completion(&second[0])]).await.is_err());
    let job = store.job(id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Running,
        "the job was completed while its alert stayed open"
    );
    assert_eq!(store.alerts(false).await.unwrap().len(), 1);

    execute(&db, allow).await;
    assert!(
        store
            .complete(&[completion(&second[0])])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.job(id).await.unwrap().state, JobState::Completed);
    assert!(store.alerts(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_completion_and_its_alert_commit_together_on_postgres() {
    a_completion_and_its_alert_commit_together(
        Backend::Postgres,
        "CREATE FUNCTION hangar_test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'alerts are read-only'; END $$; \
         CREATE TRIGGER hangar_test_refuse BEFORE UPDATE ON hangar_alerts \
         FOR EACH ROW EXECUTE FUNCTION hangar_test_refuse();",
        "DROP TRIGGER hangar_test_refuse ON hangar_alerts",
    )
    .await;
}

#[tokio::test]
async fn a_completion_and_its_alert_commit_together_on_sqlite() {
    a_completion_and_its_alert_commit_together(
        Backend::Sqlite,
        "CREATE TRIGGER hangar_test_refuse BEFORE UPDATE ON hangar_alerts \
         BEGIN SELECT RAISE(ABORT, 'alerts are read-only'); END;",
        "DROP TRIGGER hangar_test_refuse",
    )
    .await;
}
