//! Planner cost flat with the number of schedules (issue 14, "100 000 schedules: planner lag
//! stays flat"): a planner batch moves its rows on by primary key, whatever the size of
//! `hangar_schedules`. Its `UPDATE … FROM UNNEST(ids, …) d WHERE s.id = d.id` was planned by
//! PostgreSQL as a hash join over a full scan of the table for tables up to ~100 000 rows, so
//! each batch of 1 000 read every schedule (at 10⁵ schedules: ~160 ms a batch against ~50 ms
//! by key on the loaded proof machine; BENCHMARKS.md, "Issue 14: many tenants"). The batch
//! must not scan the table.

use hangar_schedules::{Planner, PlannerConfig, Schedules};
use hangar_workers::db::Pool;
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config;
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;

use crate::support::{Backend, TestDb, stdout_ok};

const SCHEDULES: i64 = 20_000;
const DUE: i64 = 1_000;

/// Rows read by sequential scans of `hangar_schedules`, as the statistics show them now.
async fn rows_read_by_seq_scans(db: &TestDb) -> i64 {
    db.query_i64(
        "SELECT COALESCE(seq_tup_read, 0)::bigint FROM pg_stat_user_tables \
         WHERE relname = 'hangar_schedules'",
    )
    .await
}

/// Makes every connection of the store's pool (two on PostgreSQL: `Store::connect` keeps at
/// least two) publish its pending statistics now.
async fn flush_stats(store: &Store) {
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
async fn schedule_plans_batch_goes_by_primary_key_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    stdout_ok(&db.run(&["migrate"]));
    // A pool of its own, so the statistics flushed below are the planner's.
    let store = Store::connect(&db.url, 1).await.expect("connect");
    // Tenants' schedules as `hangar bench tenants` stores them; DUE of them due now, spread
    // over the table as due times are (every 20th row), the others later in the hour.
    let every = SCHEDULES / DUE;
    db.sql(&format!(
        "INSERT INTO hangar_schedules (name, source, workspace_id, spec, kind, queue, \
             next_run_at) \
         SELECT 'tenant-' || g, 'api', 'ws_' || (g % 10000), (g % 60) || ' * * * * *', 'noop', \
             'default', CASE WHEN g % {every} = 0 THEN now() - interval '1 second' \
                 ELSE now() + interval '10 minutes' END \
         FROM generate_series(1, {SCHEDULES}) g; \
         ANALYZE hangar_schedules;"
    ))
    .await;
    let routes = Routes::new(&pool_config::builtin(), &Registry::builtin());
    let mut planner = Planner::new(
        Schedules::new(store.clone()),
        routes,
        PlannerConfig {
            batch_size: DUE,
            ..PlannerConfig::default()
        },
    );
    flush_stats(&store).await;
    let before = rows_read_by_seq_scans(&db).await;

    let report = planner.run_once().await.expect("a batch");
    assert_eq!(report.claimed as i64, DUE);

    flush_stats(&store).await;
    let read = rows_read_by_seq_scans(&db).await - before;
    assert!(
        read < SCHEDULES / 2,
        "one planner batch of {DUE} read {read} of the {SCHEDULES} schedules by sequential \
         scan: it went through the whole table instead of by primary key"
    );
    // And the batch did its work: one job per due schedule, each moved past now.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_jobs WHERE kind = 'noop'")
            .await,
        DUE
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_schedules WHERE next_run_at <= now()")
            .await,
        0
    );
}
