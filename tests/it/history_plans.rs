//! Cost flat with history: finished rows kept in `hangar_jobs` must not change how a batch
//! of completions finds its rows. With many completed rows and table statistics that show no
//! running row, PostgreSQL's planner picked the rescuer's partial index (`state =
//! 'running'`, estimated one row) for the completer's `UPDATE … FROM UNNEST`, and so walked
//! every entry that index had collected since its last vacuum on each batch: draining 20 000
//! jobs beside 200 000 kept rows took 5–8× as long as on an empty table (BENCHMARKS.md,
//! "Cost flat with history"). The leases index is now keyed by the lease's presence, which a
//! completion's `WHERE` does not imply, so the completer always goes by primary key.

use std::time::Duration;

use hangar_workers::db::Pool;
use hangar_workers::job::NewJob;
use hangar_workers::store::{Completion, Store};

use crate::support::{Backend, TestDb, stdout_ok};

/// Index scans of `index` as the statistics show them now.
async fn index_scans(db: &TestDb, index: &str) -> i64 {
    db.query_i64(&format!(
        "SELECT COALESCE(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes \
         WHERE indexrelname = '{index}'"
    ))
    .await
}

/// Makes every connection of the store's pool (two on PostgreSQL: `Store::connect` keeps at
/// least two, so one flush could land on the connection that did not complete) publish its
/// pending statistics now.
pub async fn flush_stats(store: &Store) {
    let Pool::Postgres(pg) = store.database().pool() else {
        unreachable!("PostgreSQL only")
    };
    // Held at once, so each statement runs on another connection.
    let mut held = Vec::new();
    for _ in 0..pg.options().get_max_connections() {
        let mut conn = pg.acquire().await.expect("connection");
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut *conn)
            .await
            .expect("flush");
        // The flush happens as the backend goes idle after that statement; a second one
        // makes sure it has.
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("select");
        held.push(conn);
    }
}

#[tokio::test]
async fn history_completions_go_by_primary_key_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    stdout_ok(&db.run(&["migrate"]));
    // A pool of its own, so the statistics flushed below are the completer's.
    let store = Store::connect(&db.url, 1).await.expect("connect");
    db.sql(
        "INSERT INTO hangar_jobs (kind, queue, args, state, attempt, max_attempts, run_at, \
             attempted_at, finalized_at) \
         SELECT 'noop', 'history', '{}', 'completed', 1, 6, now(), now(), now() \
         FROM generate_series(1, 20000); \
         ANALYZE hangar_jobs;",
    )
    .await;
    let jobs: Vec<NewJob> = (0..200)
        .map(|_| NewJob::new("noop", serde_json::json!({})))
        .collect();
    store.enqueue_many(&jobs).await.expect("enqueue");
    let claimed = store
        .claim("default", "w", 200, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 200);
    flush_stats(&store).await;
    let before = index_scans(&db, "hangar_jobs_leases").await;

    // Two batches, as the completer sends them.
    for chunk in claimed.chunks(100) {
        let done: Vec<Completion> = chunk
            .iter()
            .map(|job| Completion {
                id: job.id,
                lease_token: job.lease_token,
                attempt: job.attempt,
                finished_at: chrono::Utc::now(),
            })
            .collect();
        assert!(store.complete(&done).await.expect("complete").is_empty());
    }
    flush_stats(&store).await;
    let after = index_scans(&db, "hangar_jobs_leases").await;
    assert_eq!(
        after - before,
        0,
        "completing two batches beside 20 000 finished rows scanned the leases index: the \
         planner went by the rescuer's index instead of the primary key"
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM hangar_jobs WHERE queue = 'default' AND state = 'completed'"
        )
        .await,
        200
    );
}

/// Sequential scans of `table` as the statistics show them now.
async fn seq_scans(db: &TestDb, table: &str) -> i64 {
    db.query_i64(&format!(
        "SELECT COALESCE(sum(seq_scan), 0)::bigint FROM pg_stat_user_tables \
         WHERE relname = '{table}'"
    ))
    .await
}

/// Every sync run's start closes the runs its job left `running` (`WHERE job_id = …`): with
/// a month of runs kept, that read every run once per start until the runs got an index by
/// job (integrations migration 3505).
#[tokio::test]
async fn a_sync_run_start_finds_its_jobs_runs_by_index_postgres() {
    use hangar_integrations::store::SyncStore;
    use hangar_integrations::store::sync_runs::NewRun;

    let db = TestDb::new(Backend::Postgres).await;
    stdout_ok(&db.run(&["migrate"]));
    let store = Store::connect(&db.url, 1).await.expect("connect");
    db.sql(
        "INSERT INTO hangar_sync_runs (id, integration_id, workspace_id, provider, data_type, \
             direction, trigger, status, job_id, started_at, finished_at) \
         SELECT 'run_' || n, 'int_' || (n % 50), 'ws_' || (n % 50), 'quickbooks', 'customers', \
             'in', 'schedule', 'succeeded', n, now(), now() \
         FROM generate_series(1, 20000) AS n; \
         ANALYZE hangar_sync_runs;",
    )
    .await;
    let runs = SyncStore::new(store.database().clone());
    flush_stats(&store).await;
    let before = seq_scans(&db, "hangar_sync_runs").await;
    for n in 0..3 {
        runs.start_run(&NewRun {
            id: format!("run_new_{n}"),
            integration_id: "int_1".into(),
            workspace_id: "ws_1".into(),
            provider: "quickbooks".into(),
            data_type: "customers".into(),
            direction: "in".into(),
            trigger: "schedule".into(),
            job_id: Some(30_000 + n),
            credential_version: None,
            cursor_before: None,
        })
        .await
        .expect("start");
    }
    flush_stats(&store).await;
    assert_eq!(
        seq_scans(&db, "hangar_sync_runs").await - before,
        0,
        "starting 3 runs beside 20 000 kept ones read the whole table"
    );
}
