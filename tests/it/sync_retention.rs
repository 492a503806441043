//! The retention of applied inbound changes, on both backends: changes of runs older than the
//! retention are deleted (the runs stay, with their counts), newer ones are kept, one process
//! at a time prunes (the maintenance lease); and `hangar serve` does it by itself with the
//! `sync_changes_retain_ms` setting (an out-of-range value is refused, naming the setting).

use std::time::Duration;

use hangar_integrations::sync::changes_retention::ChangesPruner;
use hangar_workers::db::Pool;
use hangar_workers::job::JobState;

use crate::integrations_e2e::World;
use crate::support::{ANY_PORT, Backend, TestDb, wait_for};
use crate::sync_support::SyncWorld;

/// Moves every run's start `hours` back, as if the runs were that old.
async fn age_runs(db: &TestDb, hours: i64) {
    let database = db.database().await;
    match database.pool() {
        Pool::Postgres(pg) => sqlx::query(
            "UPDATE hangar_sync_runs SET started_at = started_at - make_interval(hours => $1::int)",
        )
        .bind(hours)
        .execute(pg)
        .await
        .map(drop),
        Pool::Sqlite(lite) => {
            sqlx::query("UPDATE hangar_sync_runs SET started_at = started_at - ?1")
                .bind(hours * 3_600_000)
                .execute(lite)
                .await
                .map(drop)
        }
    }
    .expect("age the runs");
    database.close().await;
}

async fn old_changes_are_pruned(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(3, chrono::Duration::hours(1));
    w.sync_payments().await.expect("first sync");
    let old_run = w.last_run().await;
    assert_eq!(old_run.records.created, 3);
    age_runs(&w.db, 31 * 24).await;
    w.sim.add_payments(1, chrono::Duration::minutes(1));
    w.sync_payments().await.expect("second sync");
    let new_run = w.last_run().await;
    assert_eq!(new_run.records.created, 1, "{new_run:?}");
    assert_eq!(w.count("SELECT count(*) FROM hangar_sync_changes").await, 4);

    let store = w.db.store().await;
    let pruner = ChangesPruner::new(store.clone(), "holder-a")
        .retention(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(pruner.run_once().await.expect("prune"), 3);
    assert!(
        w.store
            .changes(&old_run.id, 0, 100)
            .await
            .expect("old run's changes")
            .is_empty()
    );
    let kept = w.store.changes(&new_run.id, 0, 100).await.expect("kept");
    assert_eq!(kept.len(), 1, "a change inside the retention stays");
    assert_eq!(w.count("SELECT count(*) FROM hangar_sync_runs").await, 2);
    assert_eq!(
        w.store
            .run(None, &old_run.id)
            .await
            .expect("run")
            .records
            .created,
        3,
        "the audit keeps its counts"
    );

    // One process at a time: while holder-a's lease lasts, another pruner does nothing.
    age_runs(&w.db, 31 * 24).await;
    let other = ChangesPruner::new(store, "holder-b");
    assert_eq!(other.run_once().await.expect("other"), 0);
    assert_eq!(pruner.run_once().await.expect("prune again"), 1);
    assert_eq!(w.count("SELECT count(*) FROM hangar_sync_changes").await, 0);
}

#[tokio::test]
async fn old_changes_are_pruned_postgres() {
    old_changes_are_pruned(Backend::Postgres).await;
}

#[tokio::test]
async fn old_changes_are_pruned_sqlite() {
    old_changes_are_pruned(Backend::Sqlite).await;
}

async fn serve_prunes_with_the_setting(backend: Backend) {
    let mut w = World::start(backend).await;
    w.put_quickbooks(&["payments"]).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    assert_eq!(w.sync("payments").await.state, JobState::Completed);
    assert_eq!(
        w.db.query_i64("SELECT count(*) FROM hangar_sync_changes")
            .await,
        2
    );
    let runs =
        w.db.query_i64("SELECT count(*) FROM hangar_sync_runs")
            .await;
    // Two hours old: inside the default 30 days (the running serve keeps them).
    age_runs(&w.db, 2).await;
    w.serve.terminate();
    // Its lease would keep another process from pruning for two minutes: let it lapse.
    w.db.sql("DELETE FROM hangar_maintenance_leases WHERE name = 'prune:sync_changes'")
        .await;

    let refused =
        w.db.command(&["serve", "--bind", ANY_PORT])
            .env("HANGAR_SYNC_CHANGES_RETAIN_MS", "5")
            .output()
            .expect("hangar runs");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HANGAR_SYNC_CHANGES_RETAIN_MS: 5 is out of range"),
        "{stderr}"
    );

    let mut command = w.db.command(&["serve", "--bind", ANY_PORT]);
    w.redis.env(&mut command);
    command.env("HANGAR_SYNC_CHANGES_RETAIN_MS", "3600000");
    let serve = w.db.spawn_command("serve-retain", command);
    wait_for(
        "serve to prune the changes",
        Duration::from_secs(30),
        || async {
            // The line is written once the delete has committed: wait for both.
            (w.db
                .query_i64("SELECT count(*) FROM hangar_sync_changes")
                .await
                == 0
                && serve.log().contains("pruned sync changes past retention"))
            .then_some(())
        },
    )
    .await;
    assert!(
        serve.log().contains("pruned sync changes past retention"),
        "{}",
        serve.log()
    );
    assert_eq!(
        w.db.query_i64("SELECT count(*) FROM hangar_sync_runs")
            .await,
        runs,
        "the runs stay"
    );
}

#[tokio::test]
async fn serve_prunes_with_the_setting_postgres() {
    serve_prunes_with_the_setting(Backend::Postgres).await;
}

#[tokio::test]
async fn serve_prunes_with_the_setting_sqlite() {
    serve_prunes_with_the_setting(Backend::Sqlite).await;
}
