//! The provider's limits, against the simulator, on both backends: a 429 `ThrottleExceeded`
//! pauses the realm for its `Retry-After` (no call before it ends, the run `rate_limited`,
//! the job snoozed); a spent budget snoozes without calling; a 401 refreshes once and
//! retries once; a dead refresh token fails the run as an auth failure.

use std::time::{Duration, Instant};

use hangar_workers::db::Pool;
use hangar_workers::error_class::ErrorClass;

use crate::qbo_sim::REALM;
use crate::support::{Backend, wait_for};
use crate::sync_support::SyncWorld;

fn data_calls(w: &SyncWorld) -> u32 {
    ["cdc", "query", "401", "429", "5xx"]
        .iter()
        .map(|r| w.sim.calls(r))
        .sum()
}

async fn throttling_waits_its_retry_after(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(3, chrono::Duration::hours(1));
    w.sim.switch(|s| {
        s.throttle_next = 1;
        s.retry_after_secs = 2;
    });
    let started = Instant::now();
    let failure = w.sync_payments().await.expect_err("throttled");
    assert_eq!(failure.class, ErrorClass::RateLimit);
    assert_eq!(failure.retry_after.as_deref(), Some("2"));
    let run = w.last_run().await;
    assert_eq!(run.status, "rate_limited", "{run:?}");
    assert_eq!(run.rate_wait_ms, 2000);
    assert!(
        run.error.as_deref().unwrap().contains("ThrottleExceeded"),
        "{run:?}"
    );
    assert_eq!(w.sim.calls("429"), 1);

    // Until the Retry-After has passed, no job calls the realm: each attempt snoozes
    // without a request.
    let calls = data_calls(&w);
    let synced = wait_for("the pause to end", Duration::from_secs(15), || async {
        match w.sync_payments().await {
            Ok(()) => Some(started.elapsed()),
            Err(f) => {
                assert_eq!(f.class, ErrorClass::RateLimit);
                assert_eq!(data_calls(&w), calls, "a call during the pause");
                None
            }
        }
    })
    .await;
    assert!(synced >= Duration::from_millis(1900), "{synced:?}");
    let done = w.last_run().await;
    assert_eq!(
        (done.status.as_str(), done.records.created),
        ("succeeded", 3)
    );
    assert_eq!(w.sim.calls("429"), 1, "the provider never throttled again");
}

#[tokio::test]
async fn throttling_waits_its_retry_after_postgres() {
    throttling_waits_its_retry_after(Backend::Postgres).await;
}

#[tokio::test]
async fn throttling_waits_its_retry_after_sqlite() {
    throttling_waits_its_retry_after(Backend::Sqlite).await;
}

/// Another process spent the realm's 500 requests of this minute: the run makes no call
/// and ends `rate_limited`, the job snoozing until the window refills.
async fn a_spent_budget_snoozes_without_calling(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let db = w.db.database().await;
    let account = format!("quickbooks:{REALM}");
    match db.pool() {
        Pool::Postgres(pg) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, window_started_at, window_used) \
             VALUES ($1, now() - interval '10 seconds', 500)",
        )
        .bind(&account)
        .execute(pg)
        .await
        .map(drop),
        Pool::Sqlite(lite) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, window_started_at, window_used) \
             VALUES (?1, ?2, 500)",
        )
        .bind(&account)
        .bind(chrono::Utc::now().timestamp_millis() - 10_000)
        .execute(lite)
        .await
        .map(drop),
    }
    .expect("spend the budget");
    let failure = w.sync_payments().await.expect_err("budget spent");
    assert_eq!(failure.class, ErrorClass::RateLimit);
    let wait: u64 = failure.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((45..=50).contains(&wait), "waits for the window: {wait}");
    let run = w.last_run().await;
    assert_eq!(run.status, "rate_limited");
    assert!((45_000..=50_000).contains(&run.rate_wait_ms), "{run:?}");
    assert_eq!((run.provider_calls, data_calls(&w)), (0, 0));
    db.close().await;
}

#[tokio::test]
async fn a_spent_budget_snoozes_without_calling_postgres() {
    a_spent_budget_snoozes_without_calling(Backend::Postgres).await;
}

#[tokio::test]
async fn a_spent_budget_snoozes_without_calling_sqlite() {
    a_spent_budget_snoozes_without_calling(Backend::Sqlite).await;
}

/// An expired token (401 code 3200): one refresh through the token endpoint, one retry.
/// A dead refresh token (`invalid_grant`): the run fails as an auth failure.
async fn unauthorized_refreshes_once(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    w.sim.switch(|s| s.expire_tokens = true);
    w.sync_payments().await.expect("sync after one refresh");
    assert_eq!((w.sim.calls("401"), w.sim.calls("token")), (1, 1));
    assert_eq!(*w.access.refreshes.lock().unwrap(), 1);
    let run = w.last_run().await;
    assert_eq!((run.status.as_str(), run.records.created), ("succeeded", 2));

    w.sim.switch(|s| {
        s.expire_tokens = true;
        s.invalid_grant = true;
    });
    let failure = w.sync_payments().await.expect_err("dead refresh token");
    assert_eq!(failure.class, ErrorClass::Auth);
    assert!(failure.message.contains("invalid_grant"), "{failure:?}");
    assert_eq!((w.sim.calls("401"), w.sim.calls("token")), (2, 2));
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.error_class.as_deref()),
        ("failed", Some("auth"))
    );
}

#[tokio::test]
async fn unauthorized_refreshes_once_postgres() {
    unauthorized_refreshes_once(Backend::Postgres).await;
}

#[tokio::test]
async fn unauthorized_refreshes_once_sqlite() {
    unauthorized_refreshes_once(Backend::Sqlite).await;
}
