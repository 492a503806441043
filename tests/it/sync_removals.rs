//! Removals, on both backends: a record is taken as gone only after a complete full
//! reconciliation (here forced by a cursor older than QuickBooks' 30-day CDC window, said in
//! the run's log); a vanished payment is held for review (financial), never dropped; when
//! more than 20 % would vanish in one run, nothing is removed and the run stops.

use hangar_workers::error_class::ErrorClass;

use crate::support::Backend;
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

/// Moves the stored cursor 31 days back: the next run must reconcile in full.
async fn age_the_cursor(w: &SyncWorld) {
    let old = chrono::Utc::now() - chrono::Duration::days(31);
    let sql = match w.db.url.starts_with("sqlite") {
        true => format!(
            "UPDATE hangar_sync_cursors SET cursor_at = {} WHERE integration_id = '{INTEGRATION}'",
            old.timestamp_millis()
        ),
        false => format!(
            "UPDATE hangar_sync_cursors SET cursor_at = '{}' WHERE integration_id = '{INTEGRATION}'",
            old.to_rfc3339()
        ),
    };
    w.db.sql(&sql).await;
}

async fn removals_after_a_complete_scan_only(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(10, chrono::Duration::days(2));
    w.sync_payments().await.expect("first sync");

    // Payment 4 is deleted in QuickBooks. The changes feed reports it: a financial record,
    // so it goes to review.
    w.sim.delete("Payment", "4");
    w.sync_payments().await.expect("cdc");
    let run = w.last_run().await;
    assert_eq!(run.records.conflicted, 1, "{run:?}");
    let open = w.store.conflicts(Some(WORKSPACE), true, 10).await.unwrap();
    assert_eq!(
        (
            open.len(),
            open[0].reason.as_str(),
            open[0].external_id.as_str()
        ),
        (1, "removed_at_source", "4")
    );

    // A full reconciliation (the cursor is older than the CDC window) finds payment 4 gone:
    // 1 of 10 is under 20 %, it stays held (one open conflict, not two).
    age_the_cursor(&w).await;
    w.sync_payments().await.expect("full reconciliation");
    let run = w.last_run().await;
    assert!(
        run.log
            .iter()
            .any(|l| l.contains("older than the provider's 30-day changes window")),
        "{:?}",
        run.log
    );
    assert_eq!(run.status, "succeeded");
    assert_eq!(
        w.store
            .conflicts(Some(WORKSPACE), true, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Three more vanish (4 of 10 = 40 %): nothing is removed, the run stops.
    for id in ["5", "6", "7"] {
        w.sim.delete("Payment", id);
    }
    age_the_cursor(&w).await;
    let before = w.count("SELECT count(*) FROM hangar_sync_conflicts").await;
    let failure = w.sync_payments().await.expect_err("too many removals");
    assert_eq!(failure.class, ErrorClass::Client);
    assert!(failure.message.contains("4 of 10"), "{failure:?}");
    let run = w.last_run().await;
    assert_eq!(run.status, "failed");
    assert!(
        run.error.as_deref().unwrap().contains("more than 20 %"),
        "{run:?}"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_conflicts").await,
        before
    );
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_mappings WHERE removed_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn removals_after_a_complete_scan_only_postgres() {
    removals_after_a_complete_scan_only(Backend::Postgres).await;
}

#[tokio::test]
async fn removals_after_a_complete_scan_only_sqlite() {
    removals_after_a_complete_scan_only(Backend::Sqlite).await;
}
