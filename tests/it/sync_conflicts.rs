//! The conflict rules on real databases: a payment changed in QuickBooks while the platform
//! changed it too becomes a conflict row and is not applied; resolving it takes theirs (the
//! change is applied and handed on) or ours; a safety record changed externally is appended
//! beside the held one, never overwritten.

use chrono::Utc;
use hangar_integrations::store::sync_conflicts::Take;
use hangar_integrations::store::sync_pages::PageTarget;
use hangar_integrations::sync::{Cursor, InboundRecord, Position, RecordClass};
use serde_json::json;

use crate::support::Backend;
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

async fn a_payment_in_conflict_is_held_until_resolved(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(3, chrono::Duration::hours(2));
    w.sync_payments().await.expect("first sync");
    let before = w
        .store
        .mapped_payload(INTEGRATION, "Payment", "2")
        .await
        .unwrap()
        .expect("mapped");

    // The platform changed payment 2 (ours), and so did someone in QuickBooks (theirs).
    let ours = json!({"Id": "2", "TotalAmt": 150.0, "note": "adjusted on the platform"});
    w.store
        .record_ours(INTEGRATION, "Payment", "2", &ours, Utc::now())
        .await
        .unwrap();
    w.sim.edit("Payment", "2", |p| p["TotalAmt"] = json!(175.0));
    w.sync_payments().await.expect("second sync");
    let run = w.last_run().await;
    assert_eq!(
        (run.records.conflicted, run.records.updated),
        (1, 0),
        "{run:?}"
    );
    let conflicts = w.store.conflicts(Some(WORKSPACE), true, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1);
    let conflict = &conflicts[0];
    assert_eq!(
        (conflict.object_type.as_str(), conflict.external_id.as_str()),
        ("Payment", "2")
    );
    assert_eq!(conflict.reason, "changed_on_both_sides");
    assert_eq!(conflict.ours.as_ref(), Some(&ours));
    assert_eq!(conflict.theirs["TotalAmt"], 175.0);
    // Not applied: the mapping still holds what was applied before.
    assert_eq!(
        w.store
            .mapped_payload(INTEGRATION, "Payment", "2")
            .await
            .unwrap(),
        Some(before.clone())
    );
    let changes = w.store.changes(&run.id, 0, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, "conflict");

    // Read again: the same version is already held, no second conflict.
    w.sync_payments().await.expect("third sync");
    let again = w.last_run().await;
    assert_eq!(again.records.conflicted, 0, "{again:?}");
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_conflicts").await,
        1
    );

    // An admin takes theirs: applied and handed on as an update.
    let (resolved, change) = w
        .store
        .resolve_conflict(&conflict.id, Take::Theirs, "tok_admin")
        .await
        .unwrap();
    assert_eq!(resolved.resolution.as_deref(), Some("theirs"));
    assert!(resolved.resolved_at.is_some());
    let change = change.expect("an update handed on");
    assert_eq!(
        (change.action.as_str(), change.record["TotalAmt"].as_f64()),
        ("updated", Some(175.0))
    );
    assert_eq!(
        w.store
            .mapped_payload(INTEGRATION, "Payment", "2")
            .await
            .unwrap()
            .unwrap()["TotalAmt"],
        175.0
    );
    assert!(
        w.store
            .resolve_conflict(&conflict.id, Take::Ours, "tok_admin")
            .await
            .is_err(),
        "a resolved conflict is not resolved twice"
    );
    // The applied version re-read is unchanged.
    w.sync_payments().await.expect("fourth sync");
    let last = w.last_run().await;
    assert_eq!(
        (last.records.conflicted, last.records.updated),
        (0, 0),
        "{last:?}"
    );

    // Taking ours keeps the platform's side and acknowledges theirs.
    w.store
        .record_ours(
            INTEGRATION,
            "Payment",
            "3",
            &json!({"TotalAmt": 1.0}),
            Utc::now(),
        )
        .await
        .unwrap();
    w.sim.edit("Payment", "3", |p| p["TotalAmt"] = json!(2.0));
    w.sync_payments().await.expect("fifth sync");
    let open = w.store.conflicts(Some(WORKSPACE), true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    let (_, change) = w
        .store
        .resolve_conflict(&open[0].id, Take::Ours, "tok_admin")
        .await
        .unwrap();
    assert!(change.is_none(), "taking ours hands nothing on");
    w.sync_payments().await.expect("sixth sync");
    assert_eq!(w.last_run().await.records.conflicted, 0);
    assert!(
        w.store
            .conflicts(Some(WORKSPACE), true, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_payment_in_conflict_is_held_until_resolved_postgres() {
    a_payment_in_conflict_is_held_until_resolved(Backend::Postgres).await;
}

#[tokio::test]
async fn a_payment_in_conflict_is_held_until_resolved_sqlite() {
    a_payment_in_conflict_is_held_until_resolved(Backend::Sqlite).await;
}

/// A safety record (the rules are the same for every connector; applied here through the
/// store as a connector's page would be): an external change is appended beside it.
async fn a_safety_record_is_appended_never_overwritten(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let target = PageTarget {
        run_id: "run_safety".into(),
        integration_id: "int_asap".into(),
        workspace_id: WORKSPACE.into(),
        provider: "asap".into(),
        data_type: "safety_reports".into(),
    };
    let record = |payload: serde_json::Value, deleted: bool| InboundRecord {
        object_type: "SafetyReport".into(),
        external_id: "sr-1".into(),
        modified_at: Utc::now(),
        payload,
        concurrency_token: None,
        deleted,
    };
    let at = |id: &str| Position {
        cursor: Some(Cursor {
            at: Utc::now(),
            id: id.into(),
        }),
        scan: None,
    };
    let original = json!({"narrative": "bird strike on approach", "severity": "minor"});
    let changed = json!({"narrative": "edited elsewhere", "severity": "none"});
    for (payload, deleted, action) in [
        (original.clone(), false, Some("created")),
        (changed.clone(), false, Some("appended")),
        (changed.clone(), false, None),
        (json!({"status": "Deleted"}), true, Some("appended")),
    ] {
        let applied = w
            .store
            .apply_page(
                &target,
                &[(record(payload, deleted), RecordClass::Safety)],
                &at("sr-1"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(applied.changes.first().map(|c| c.action.as_str()), action);
        assert_eq!(
            w.store
                .mapped_payload("int_asap", "SafetyReport", "sr-1")
                .await
                .unwrap(),
            Some(original.clone()),
            "the held safety record is never overwritten"
        );
    }
    let changes = w.store.changes("run_safety", 0, 10).await.unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(
        changes[1].record, changed,
        "the external version is kept beside it"
    );
    assert_eq!(changes[2].record["removed_at_source"], true);
}

#[tokio::test]
async fn a_safety_record_is_appended_never_overwritten_postgres() {
    a_safety_record_is_appended_never_overwritten(Backend::Postgres).await;
}

#[tokio::test]
async fn a_safety_record_is_appended_never_overwritten_sqlite() {
    a_safety_record_is_appended_never_overwritten(Backend::Sqlite).await;
}
