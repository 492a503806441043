//! The auth rule through the token-refresh seam: a 401 asks the refresher, a refreshed token
//! gets one immediate retry, a failed refresh (or a second 401) fails the job, alerts and
//! marks the integration for re-authorisation. The refresher here is a test double; the
//! HTTP server and the database are real.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangar_workers::alerts::model::{AlertKind, Severity};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobState};
use hangar_workers::kinds::{BoxFuture, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::TokenRefresher;
use hangar_workers::retry_policy::RefreshOutcome;
use hangar_workers::targets::TargetPolicy;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, Receiver, TestDb, enqueue_http, fast_pools, wait_final};

/// Answers every refresh with `outcome` and counts the calls.
struct DoubleRefresher {
    outcome: RefreshOutcome,
    refreshes: AtomicUsize,
    reauth: AtomicUsize,
}

impl TokenRefresher for DoubleRefresher {
    fn refresh<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        failure: &'a JobFailure,
    ) -> BoxFuture<'a, RefreshOutcome> {
        assert_eq!(failure.class, ErrorClass::Auth);
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { self.outcome.clone() })
    }

    fn mark_needs_reauth<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        _reason: &'a str,
    ) -> BoxFuture<'a, ()> {
        self.reauth.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

async fn run_auth_case(
    path: &str,
    outcome: RefreshOutcome,
) -> (
    hangar_workers::job::Job,
    Arc<DoubleRefresher>,
    Vec<hangar_workers::store::AlertRow>,
) {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    let refresher = Arc::new(DoubleRefresher {
        outcome,
        refreshes: AtomicUsize::new(0),
        reauth: AtomicUsize::new(0),
    });
    let spec = pool_config::parse("test", &fast_pools("", ""))
        .unwrap()
        .remove(0);
    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin_with(TargetPolicy::allow_all())),
            refresher: refresher.clone(),
            worker_id: "test".to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));
    let id = enqueue_http(&store, &server.url(path), serde_json::json!({})).await;
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    shutdown.cancel();
    running.await.unwrap();
    let alerts = store.alerts(true).await.unwrap();
    (job, refresher, alerts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_token_gets_one_immediate_retry() {
    let (job, refresher, alerts) =
        run_auth_case("/flaky/auth/1/401", RefreshOutcome::Refreshed).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempts.len(), 2);
    assert_eq!(job.attempts[0].error_class, Some(ErrorClass::Auth));
    assert_eq!(job.attempts[0].next_delay_ms, Some(0));
    assert_eq!(refresher.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(refresher.reauth.load(Ordering::SeqCst), 0);
    assert!(alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_after_refresh_asks_for_reauthorisation() {
    let (job, refresher, alerts) = run_auth_case("/status/401", RefreshOutcome::Refreshed).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 2, "retried exactly once");
    assert_eq!(
        refresher.refreshes.load(Ordering::SeqCst),
        1,
        "no refresh loop"
    );
    assert_eq!(refresher.reauth.load(Ordering::SeqCst), 1);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::ReauthRequired);
    assert!(
        alerts[0].message.contains("401 again"),
        "{}",
        alerts[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_alerts_the_admin() {
    let outcome = RefreshOutcome::Failed {
        reason: "invalid_grant".to_owned(),
    };
    let (job, refresher, alerts) = run_auth_case("/status/401", outcome).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 1);
    assert_eq!(refresher.reauth.load(Ordering::SeqCst), 1);
    assert_eq!(alerts[0].kind, AlertKind::ReauthRequired);
    assert_eq!(alerts[0].severity, Severity::Critical);
    assert!(
        alerts[0].message.contains("invalid_grant"),
        "{}",
        alerts[0].message
    );
}
