//! Removals, on both backends: a record is taken as gone only after a complete full
//! reconciliation (here forced by a cursor older than QuickBooks' 30-day CDC window, said in
//! the run's log); a vanished payment is held for review (financial), never dropped; when
//! more than 20 % would vanish in one run, nothing is removed and the run stops with a
//! critical `sync_removals_held` alert naming the integration, the data type and how many
//! would vanish, resolved by the next full reconciliation that completes.

use hangar_workers::alerts::{AlertKind, Severity};
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
    let alerts = w.engine.alerts(false).await.unwrap();
    let held: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::SyncRemovalsHeld)
        .collect();
    assert_eq!(held.len(), 1, "{alerts:?}");
    let alert = held[0];
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.workspace_id.as_deref(), Some(WORKSPACE));
    assert_eq!(alert.integration.as_deref(), Some("quickbooks"));
    for part in [
        INTEGRATION,
        "payments",
        "found 4 of 10 records gone",
        "nothing was removed",
    ] {
        assert!(alert.message.contains(part), "{part}: {}", alert.message);
    }
    // The next run stops the same way: the same incident, seen twice.
    age_the_cursor(&w).await;
    w.sync_payments()
        .await
        .expect_err("still too many removals");
    let again = w.engine.alerts(false).await.unwrap();
    let held: Vec<_> = again
        .iter()
        .filter(|a| a.kind == AlertKind::SyncRemovalsHeld)
        .collect();
    assert_eq!((held.len(), held[0].occurrences), (1, 2), "{again:?}");
    // A complete scan resumes at its removals, held again each run. An admin has the
    // reconciliation start over (the scan forgotten), and meanwhile fifteen new payments came
    // at the source: 4 of 25 is under 20 %, it completes and resolves the alert.
    w.db.sql(&format!(
        "UPDATE hangar_sync_cursors SET scan_position = NULL, scan_started_at = NULL, \
         scan_run_id = NULL WHERE integration_id = '{INTEGRATION}'"
    ))
    .await;
    w.sim.add_payments(15, chrono::Duration::hours(1));
    age_the_cursor(&w).await;
    w.sync_payments().await.expect("a complete reconciliation");
    let open = w.engine.alerts(false).await.unwrap();
    assert!(
        open.iter().all(|a| a.kind != AlertKind::SyncRemovalsHeld),
        "{open:?}"
    );
    let all = w.engine.alerts(true).await.unwrap();
    let resolved = all.iter().find(|a| a.id == alert.id).expect("the alert");
    assert!(resolved.resolved_at.is_some(), "{resolved:?}");
}

#[tokio::test]
async fn removals_after_a_complete_scan_only_postgres() {
    removals_after_a_complete_scan_only(Backend::Postgres).await;
}

#[tokio::test]
async fn removals_after_a_complete_scan_only_sqlite() {
    removals_after_a_complete_scan_only(Backend::Sqlite).await;
}
