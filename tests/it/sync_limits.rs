//! The provider's limits, against the simulator, on both backends: a 429 `ThrottleExceeded`
//! pauses the realm for its `Retry-After` (no call before it ends, the run `rate_limited`,
//! the job snoozed); a budget reserved far ahead snoozes without calling; a backfill at
//! QuickBooks' 500 requests a minute is paced under it and draws no 429; a 401 refreshes
//! once and retries once; a dead refresh token fails the run as an auth failure.

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

/// Other processes reserved the realm's paced budget a minute ahead: the run makes no call
/// and ends `rate_limited`, the job snoozing until its slot comes (the minute, less the
/// burst of 25 requests of 126 ms each that may go ahead of it).
async fn a_spent_budget_snoozes_without_calling(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let db = w.db.database().await;
    let account = format!("quickbooks:{REALM}");
    match db.pool() {
        Pool::Postgres(pg) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, paced_until) \
             VALUES ($1, now() + interval '60 seconds')",
        )
        .bind(&account)
        .execute(pg)
        .await
        .map(drop),
        Pool::Sqlite(lite) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, paced_until) VALUES (?1, ?2)",
        )
        .bind(&account)
        .bind((chrono::Utc::now() + chrono::Duration::seconds(60)).timestamp_micros())
        .execute(lite)
        .await
        .map(drop),
    }
    .expect("spend the budget");
    let failure = w.sync_payments().await.expect_err("budget spent");
    assert_eq!(failure.class, ErrorClass::RateLimit);
    let wait: u64 = failure.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((54..=57).contains(&wait), "waits for its slot: {wait}");
    let run = w.last_run().await;
    assert_eq!(run.status, "rate_limited");
    assert!((54_000..=57_000).contains(&run.rate_wait_ms), "{run:?}");
    assert_eq!((run.provider_calls, data_calls(&w)), (0, 0));
    db.close().await;
}

/// A backfill at QuickBooks' documented limit, the simulator enforcing 500 requests in any
/// 60 s (a sliding window, as the provider counts): pages of 10 (9 new records each, one
/// tied at the boundary) so that requests, not data, are the limit, about 535 of them, more
/// than a minute's worth. The burst goes at once, then each call waits its slot inside the
/// run, every run yields after its share of pacing (the job would snooze; here the next
/// attempt follows at once), and the provider never throttles. About 65 s.
async fn a_paced_backfill_draws_no_429(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sync_payments()
        .await
        .expect("the first, empty sync sets the cursor");
    let records = 4_800;
    w.sim
        .add_payments(records, -chrono::Duration::seconds(records as i64 + 1));
    w.sim.switch(|s| {
        s.page_size = 10;
        s.per_minute = Some(500);
    });
    let before = data_calls(&w);
    let started = Instant::now();
    wait_for("the backfill", Duration::from_secs(180), || async {
        match w.sync_payments().await {
            Ok(()) => Some(()),
            Err(f) => {
                assert_eq!(f.class, ErrorClass::RateLimit, "{f:?}");
                assert_eq!(w.sim.calls("429"), 0, "the provider throttled: {f:?}");
                None
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let calls = data_calls(&w) - before;
    assert_eq!(w.sim.calls("429"), 0, "the provider never throttled");
    assert!(calls > 500, "more than a minute's requests: {calls}");
    // 25 at once, then 475 a minute: not slower than the pace either.
    let paced = Duration::from_secs_f64(f64::from(calls - 25) * 60.0 / 475.0);
    assert!(
        elapsed >= paced.mul_f64(0.98),
        "{elapsed:?} for {calls} calls"
    );
    let runs = w.runs().await;
    let created: i64 = runs.iter().map(|r| r.records.created).sum();
    assert_eq!(created, records as i64);
    let waited: i64 = runs.iter().map(|r| r.rate_wait_ms).sum();
    // What a call did not spend reading its page and applying it, it waited for its slot,
    // and the runs say so. On a machine slow enough that each call's own work (a budget
    // transaction, the request, the page's transaction) takes a slot's interval (126 ms),
    // no call has to wait: then the work itself must account for the time.
    let interval = Duration::from_secs(60) / 475;
    let waited_for = Duration::from_millis(u64::try_from(waited).unwrap_or(0));
    let working = elapsed.saturating_sub(waited_for) / calls;
    assert!(
        waited >= 1_000 || working >= interval.mul_f64(0.9),
        "the pacing is in the runs' rate_wait_ms: {waited} ms waited, {working:?} of work a call"
    );
}

#[tokio::test]
async fn a_paced_backfill_draws_no_429_postgres() {
    a_paced_backfill_draws_no_429(Backend::Postgres).await;
}

#[tokio::test]
async fn a_paced_backfill_draws_no_429_sqlite() {
    a_paced_backfill_draws_no_429(Backend::Sqlite).await;
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
