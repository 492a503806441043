//! The LISTEN connection's reconnection (issue 14): a `hangar worker` on PostgreSQL whose
//! pool polls only once a minute starts a job enqueued by another process within seconds
//! because the enqueue's NOTIFY wakes it; after its LISTEN backend is terminated (what a
//! database restart does to it), the worker listens again and the next job from another
//! process still starts within seconds, not at the next poll. PostgreSQL only: SQLite has no
//! LISTEN (its wake-ups are in-process).

use std::time::{Duration, Instant};

use hangar_workers::job::{JobState, NewJob};

use crate::support::{ANY_PORT, Backend, TestDb, wait_for, wait_state};

const SLOW_POLL: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop"]
poll_interval_ms = 60000
"#;

/// The number of backends of this database listening (LISTEN is their last statement).
async fn listeners(db: &TestDb) -> i64 {
    db.query_i64(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .await
}

#[tokio::test]
async fn listen_reconnect_postgres_wakes_after_its_connection_is_killed() {
    let db = TestDb::new(Backend::Postgres).await;
    db.pools(SLOW_POLL);
    let store = db.store().await;
    let _worker = db.spawn("worker", &["worker", "--bind", ANY_PORT]);
    wait_for("the worker's LISTEN", Duration::from_secs(20), || async {
        (listeners(&db).await == 1).then_some(())
    })
    .await;
    // Past the worker's first claims, so only a NOTIFY (or the 60 s poll) can wake it.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sent = Instant::now();
    let first = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    wait_state(&store, first, JobState::Completed, Duration::from_secs(10)).await;
    assert!(sent.elapsed() < Duration::from_secs(10), "woken by NOTIFY");

    let terminated = db
        .query_i64(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%') AS t",
        )
        .await;
    assert_eq!(terminated, 1, "one LISTEN connection terminated");
    wait_for(
        "the worker to LISTEN again",
        Duration::from_secs(20),
        || async { (listeners(&db).await == 1).then_some(()) },
    )
    .await;

    let sent = Instant::now();
    let second = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    wait_state(&store, second, JobState::Completed, Duration::from_secs(10)).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "after the reconnection a NOTIFY wakes the worker again (took {took:?}, the poll is 60 s)"
    );
}
