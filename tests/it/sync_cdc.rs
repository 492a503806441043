//! QuickBooks payments in, against the simulator, on both backends: the first run is a full
//! reconciliation, later runs read the CDC feed page by page and advance the cursor; an
//! unchanged re-read is skipped. (A process killed between pages: `sync_kill9.rs`.)

use crate::support::Backend;
use crate::sync_support::{INTEGRATION, SyncWorld};

async fn cdc_pages_advance_the_cursor(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(25, chrono::Duration::days(1));

    // First run: no cursor, so a full reconciliation (the query API), said in the log.
    w.sync_payments().await.expect("first sync");
    let first = w.last_run().await;
    assert_eq!(first.status, "succeeded", "{first:?}");
    assert_eq!(first.trigger, "manual");
    assert_eq!(first.direction, "in");
    assert_eq!((first.records.created, first.records.read), (25, 25));
    assert!(
        first
            .log
            .iter()
            .any(|l| l.contains("full reconciliation: no cursor yet")),
        "{:?}",
        first.log
    );
    assert!(w.sim.calls("query") >= 2, "Payment and Invoice were listed");
    assert_eq!(first.credential_version, Some(1));
    assert_eq!(
        first.provider_calls,
        i64::from(w.sim.calls("query") + w.sim.calls("cdc"))
    );

    // QuickBooks users change 3 payments and record 12 more; CDC pages of 5.
    w.sim.switch(|s| s.page_size = 5);
    for id in ["2", "7", "11"] {
        w.sim
            .edit("Payment", id, |p| p["TotalAmt"] = serde_json::json!(999.0));
    }
    let new_ids = w.sim.add_payments(12, chrono::Duration::zero());
    let cdc_before = w.sim.calls("cdc");
    w.sync_payments().await.expect("second sync");
    let second = w.last_run().await;
    assert_eq!(second.status, "succeeded", "{second:?}");
    assert_eq!(
        (
            second.records.created,
            second.records.updated,
            second.records.conflicted
        ),
        (12, 3, 0),
        "{second:?}"
    );
    assert!(
        w.sim.calls("cdc") - cdc_before >= 4,
        "15 changes in pages of 5 take at least 4 CDC calls"
    );
    let changes = w.store.changes(&second.id, 0, 100).await.unwrap();
    assert_eq!(changes.len(), 15);
    assert_eq!(changes.iter().filter(|c| c.action == "created").count(), 12);
    assert_eq!(changes.iter().filter(|c| c.action == "updated").count(), 3);
    for id in &new_ids {
        assert!(
            changes.iter().any(|c| &c.external_id == id),
            "payment {id} handed on"
        );
    }
    // The cursor is the last change's (time, id).
    // The cursor is the last change's (time, id), unless the first run's scan began later
    // (QuickBooks times are whole seconds; the edits may share the scan's second).
    let cursor = second.cursor_after.as_ref().unwrap()["cursor"].clone();
    let scan_start = first.cursor_after.as_ref().unwrap()["cursor"]["at"].clone();
    let newest = w.sim.object("Payment", "11").unwrap();
    let at =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let newest_at = at(&newest["MetaData"]["LastUpdatedTime"]);
    if newest_at > at(&scan_start) {
        assert_eq!(
            (at(&cursor["at"]), &cursor["id"]),
            (newest_at, &"11".into()),
            "{cursor}"
        );
    } else {
        assert_eq!(cursor["at"], scan_start, "{cursor}");
    }
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM hangar_sync_mappings WHERE integration_id = '{INTEGRATION}'"
        ))
        .await,
        37
    );

    // Nothing changed: the lookback re-reads the latest records, which are skipped.
    w.sync_payments().await.expect("third sync");
    let third = w.last_run().await;
    assert_eq!(
        (third.records.created, third.records.updated),
        (0, 0),
        "{third:?}"
    );
    assert!(third.records.skipped >= 3, "{third:?}");
    assert_eq!(third.records.read, third.records.skipped);
    assert!(w.store.changes(&third.id, 0, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn cdc_pages_advance_the_cursor_postgres() {
    cdc_pages_advance_the_cursor(Backend::Postgres).await;
}

#[tokio::test]
async fn cdc_pages_advance_the_cursor_sqlite() {
    cdc_pages_advance_the_cursor(Backend::Sqlite).await;
}
