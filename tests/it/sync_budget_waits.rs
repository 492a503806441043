//! A sync bound by Hangar's own paced budget, run by a `hangar worker`, on both backends:
//! each run that finds no slot near enough yields, and the job waits for its slot without
//! using an attempt or a snooze (as a webhook delivery waits for its endpoint's limits), so
//! a chain of such runs longer than the pool's snooze cap (2 here, 20 by default) completes.
//! A provider's own 429 still counts as a snooze: a job throttled past the cap fails.

use std::time::{Duration, Instant};

use hangar_workers::db::Pool;
use hangar_workers::job::JobState;

use crate::integrations_support::DumpOnPanic;
use crate::qbo_sim::REALM;
use crate::support::{Backend, wait_final};
use crate::sync_context_support::ContextWorld;

/// Reserves the realm's paced budget 6 s ahead: with QuickBooks' burst of 25 requests of
/// 126 ms, the next free slot is about 3 s off, further than a run waits inside itself (2 s).
async fn spend_the_budget(w: &ContextWorld) {
    let db = w.store.database();
    let account = format!("quickbooks:{REALM}");
    let until = chrono::Utc::now() + chrono::Duration::seconds(6);
    match db.pool() {
        Pool::Postgres(pg) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, paced_until) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET paced_until = EXCLUDED.paced_until",
        )
        .bind(&account)
        .bind(until)
        .execute(pg)
        .await
        .map(drop),
        Pool::Sqlite(lite) => sqlx::query(
            "INSERT INTO hangar_sync_rate_budgets (account, paced_until) VALUES (?1, ?2) \
             ON CONFLICT (account) DO UPDATE SET paced_until = excluded.paced_until",
        )
        .bind(&account)
        .bind(until.timestamp_micros())
        .execute(lite)
        .await
        .map(drop),
    }
    .expect("spend the budget");
}

async fn budget_waits_use_no_snoozes(backend: Backend) {
    let w = ContextWorld::new(backend).await;
    w.sim.add_payments(3, chrono::Duration::hours(1));
    // Other processes keep the budget spent until the job's runs have yielded 3 times
    // (about every 3 s), one more than the snooze cap.
    spend_the_budget(&w).await;
    let worker = w.worker("worker");
    let _dump = DumpOnPanic(vec![&worker]);
    let id = w.sync_job().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        spend_the_budget(&w).await;
        let runs = w.runs().await;
        if runs.iter().filter(|r| r.status == "rate_limited").count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "three budget waits: {runs:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let job = wait_final(&w.store, id, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempt, 1, "the waits used no attempt: {job:?}");
    assert!(
        job.attempts.iter().all(|a| a.error_class.is_none()),
        "no attempt was recorded for a wait: {:?}",
        job.attempts
    );
    let runs = w.runs().await;
    let waited = runs.iter().filter(|r| r.status == "rate_limited").count();
    assert!(waited >= 3, "more waits than the snooze cap (2): {runs:?}");
    assert!(
        runs.iter()
            .filter(|r| r.status == "rate_limited")
            .all(|r| r.provider_calls == 0 && r.rate_wait_ms > 2_000),
        "{runs:?}"
    );
    assert_eq!(
        (runs[0].status.as_str(), runs[0].records.created),
        ("succeeded", 3)
    );
    assert_eq!(w.sim.calls("429"), 0);

    // The provider's own 429s: each is a snooze, and the third fails the job.
    w.sim.add_payments(1, chrono::Duration::minutes(1));
    w.sim.switch(|s| {
        s.throttle_next = 10;
        s.retry_after_secs = 1;
    });
    let id = w.sync_job().await;
    let job = wait_final(&w.store, id, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(w.sim.calls("429"), 3, "snoozed twice, failed at the third");
    assert!(
        job.last_error.as_deref().unwrap_or("").contains("Throttle"),
        "{job:?}"
    );
}

#[tokio::test]
async fn budget_waits_outlast_the_snooze_cap_postgres() {
    budget_waits_use_no_snoozes(Backend::Postgres).await;
}

#[tokio::test]
async fn budget_waits_outlast_the_snooze_cap_sqlite() {
    budget_waits_use_no_snoozes(Backend::Sqlite).await;
}
