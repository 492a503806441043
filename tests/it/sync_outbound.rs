//! Invoices out to the QuickBooks simulator, on both backends: an `invoice.created` event
//! becomes one outbox row and one `sync` job; the push carries a `requestid`, so a retry after
//! a lost answer makes no second invoice; the inbound read of Hangar's own invoice is skipped
//! (echo suppression); an update over a stale `SyncToken` is held as a conflict, and taking
//! ours pushes again over theirs.

use chrono::Utc;
use hangar_integrations::access::IntegrationInfo;
use hangar_integrations::store::sync_conflicts::Take;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::outbound::{OutboundError, accept_event};
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::wire::EventEnvelope;
use serde_json::json;

use crate::support::Backend;
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

fn invoice_event(id: &str, kind: &str, amount: f64) -> EventEnvelope {
    let data = json!({"invoice_id": "inv_42", "customer_ref": "58", "due_date": "2026-12-31",
        "lines": [{"amount": amount, "description": "Charter KTEB-KPBI"}]});
    EventEnvelope {
        id: id.to_owned(),
        event_type: kind.to_owned(),
        workspace_id: WORKSPACE.to_owned(),
        timestamp: Utc::now(),
        data: data.as_object().unwrap().clone(),
    }
}

async fn push(w: &SyncWorld, event_id: &str) -> Result<(), hangar_workers::kinds::JobFailure> {
    w.handler
        .sync(
            &SyncArgs {
                integration_id: INTEGRATION.into(),
                data_type: "invoices".into(),
                trigger: Trigger::Event,
                event_id: Some(event_id.into()),
            },
            None,
        )
        .await
}

async fn invoices_out(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let integrations: Vec<IntegrationInfo> = vec![w.access.info.clone()];
    let connectors = Connectors::builtin();

    // One event, one outbox row, one job (accepting it twice changes nothing).
    let created = invoice_event("evt_1", "invoice.created", 1250.0);
    let jobs = accept_event(&w.store, &connectors, &integrations, &created)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].args.data_type, "invoices");
    assert_eq!(jobs[0].args.trigger, Trigger::Event);
    assert_eq!(
        jobs[0].idempotency_key,
        format!("hangar:sync:{INTEGRATION}:evt_1")
    );
    accept_event(&w.store, &connectors, &integrations, &created)
        .await
        .unwrap();
    assert_eq!(w.count("SELECT count(*) FROM hangar_sync_outbox").await, 1);
    // Events the data type does not take, or bad data naming its field.
    let other = invoice_event("evt_x", "trip.created", 1.0);
    assert!(
        accept_event(&w.store, &connectors, &integrations, &other)
            .await
            .unwrap()
            .is_empty()
    );
    let mut bad = invoice_event("evt_bad", "invoice.created", 1.0);
    bad.data.remove("customer_ref");
    match accept_event(&w.store, &connectors, &integrations, &bad).await {
        Err(OutboundError::InvalidData { message, .. }) => {
            assert!(message.contains("data.customer_ref"), "{message}")
        }
        other => panic!("bad data accepted: {other:?}"),
    }

    // The write is made but its answer lost: the retry (same requestid) gets the first
    // answer, and QuickBooks holds one invoice.
    w.sim.switch(|s| s.lose_next_answers = 1);
    let lost = push(&w, "evt_1").await.expect_err("answer lost");
    assert_eq!(lost.class, ErrorClass::Server);
    assert_eq!(w.sim.count("Invoice"), 1);
    push(&w, "evt_1").await.expect("retry");
    assert_eq!(
        w.sim.count("Invoice"),
        1,
        "the retry made no second invoice"
    );
    let run = w.last_run().await;
    assert_eq!(
        (run.direction.as_str(), run.trigger.as_str()),
        ("out", "event")
    );
    assert_eq!((run.status.as_str(), run.records.created), ("succeeded", 1));
    let invoice = w.sim.object("Invoice", "1").expect("the invoice");
    assert_eq!(invoice["CustomerRef"]["value"], "58");
    assert_eq!(invoice["Line"][0]["Amount"], 1250.0);
    assert_eq!(invoice["PrivateNote"], "hangar:inv_42");
    assert_eq!(
        w.store
            .pushed_before(INTEGRATION, "Invoice", "inv_42")
            .await
            .unwrap(),
        Some(("1".to_owned(), Some("0".to_owned())))
    );
    // Nothing left to push: no call.
    let calls = w.sim.calls("invoice");
    push(&w, "evt_1").await.expect("nothing pending");
    assert_eq!(w.sim.calls("invoice"), calls);

    // The inbound read sees Hangar's own invoice: skipped, not handed back as a change.
    w.sync_payments().await.expect("payments in");
    w.sync_payments().await.expect("payments in, CDC");
    let inbound = w.last_run().await;
    assert_eq!(
        inbound.records.created + inbound.records.updated,
        0,
        "{inbound:?}"
    );
    assert!(inbound.records.skipped >= 1, "{inbound:?}");
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_changes").await,
        0,
        "the echo of our own write is not a change"
    );

    // Someone edits the invoice in QuickBooks; the platform updates it too: stale SyncToken.
    w.sim
        .edit("Invoice", "1", |i| i["DueDate"] = json!("2027-01-15"));
    let updated = invoice_event("evt_2", "invoice.sent", 1300.0);
    accept_event(&w.store, &connectors, &integrations, &updated)
        .await
        .unwrap();
    push(&w, "evt_2")
        .await
        .expect("a conflict is not a failure");
    let run = w.last_run().await;
    assert_eq!(run.records.conflicted, 1, "{run:?}");
    let conflicts = w.store.conflicts(Some(WORKSPACE), true, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1);
    let conflict = &conflicts[0];
    assert_eq!(conflict.reason, "stale_concurrency_token");
    assert_eq!(conflict.ours.as_ref().unwrap()["Line"][0]["Amount"], 1300.0);
    assert_eq!(conflict.theirs["DueDate"], "2027-01-15");
    assert_eq!(
        w.sim.object("Invoice", "1").unwrap()["Line"][0]["Amount"],
        1250.0,
        "not written"
    );

    // Take ours: the next run pushes it over theirs, with theirs' SyncToken.
    w.store
        .resolve_conflict(&conflict.id, Take::Ours, "tok_admin")
        .await
        .unwrap();
    push(&w, "evt_2").await.expect("pushed over theirs");
    let run = w.last_run().await;
    assert_eq!(
        (run.records.updated, run.records.conflicted),
        (1, 0),
        "{run:?}"
    );
    let invoice = w.sim.object("Invoice", "1").unwrap();
    assert_eq!(invoice["Line"][0]["Amount"], 1300.0);
    assert_eq!(invoice["SyncToken"], "2");
    assert_eq!(w.sim.count("Invoice"), 1);
}

#[tokio::test]
async fn invoices_out_postgres() {
    invoices_out(Backend::Postgres).await;
}

#[tokio::test]
async fn invoices_out_sqlite() {
    invoices_out(Backend::Sqlite).await;
}

/// The platform changes an invoice Hangar pushed (its `invoice.sent` waits in the outbox)
/// while someone edits the same invoice in QuickBooks, and the inbound read comes first: a
/// change on both sides of a financial record, held as a conflict for review, not applied over
/// the platform's pending change; the push that follows meets the same open conflict.
async fn a_pending_platform_change_meets_a_provider_edit(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let integrations: Vec<IntegrationInfo> = vec![w.access.info.clone()];
    let connectors = Connectors::builtin();
    let created = invoice_event("evt_1", "invoice.created", 1250.0);
    accept_event(&w.store, &connectors, &integrations, &created)
        .await
        .unwrap();
    push(&w, "evt_1").await.expect("pushed");
    w.sync_payments().await.expect("payments in");
    w.sync_payments()
        .await
        .expect("payments in, CDC: the echo skipped");

    w.sim
        .edit("Invoice", "1", |i| i["DueDate"] = json!("2027-01-15"));
    let sent = invoice_event("evt_2", "invoice.sent", 1300.0);
    accept_event(&w.store, &connectors, &integrations, &sent)
        .await
        .unwrap();
    w.sync_payments().await.expect("the read before the push");
    let run = w.last_run().await;
    assert_eq!(
        (run.records.conflicted, run.records.updated),
        (1, 0),
        "{run:?}"
    );
    let conflicts = w.store.conflicts(Some(WORKSPACE), true, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let conflict = &conflicts[0];
    assert_eq!(
        (conflict.object_type.as_str(), conflict.reason.as_str()),
        ("Invoice", "changed_on_both_sides")
    );
    assert_eq!(conflict.ours.as_ref().unwrap()["Line"][0]["Amount"], 1300.0);
    assert_eq!(conflict.theirs["DueDate"], "2027-01-15");

    // The push goes over the token it knew: stale, the same conflict, nothing written.
    push(&w, "evt_2")
        .await
        .expect("a conflict is not a failure");
    assert_eq!(
        w.store
            .conflicts(Some(WORKSPACE), true, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        w.sim.object("Invoice", "1").unwrap()["Line"][0]["Amount"],
        1250.0
    );
}

#[tokio::test]
async fn a_pending_platform_change_meets_a_provider_edit_postgres() {
    a_pending_platform_change_meets_a_provider_edit(Backend::Postgres).await;
}

#[tokio::test]
async fn a_pending_platform_change_meets_a_provider_edit_sqlite() {
    a_pending_platform_change_meets_a_provider_edit(Backend::Sqlite).await;
}
