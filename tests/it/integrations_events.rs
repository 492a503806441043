//! Outbound syncs driven by events, end to end through `hangar serve`, on both backends: a
//! QuickBooks integration with `invoices` enabled subscribes to the invoice events; an
//! `invoice.created` arriving by any entrance (`POST /api/v1/events`, the Redis ingress, the
//! Rust client in the caller's transaction) becomes one invoice in the simulator, written
//! with a `requestid`, its mapping stored and the run on the API as an `event` run; the same
//! event again (by another entrance) makes no second invoice; while the integration needs
//! re-authorisation the invoice waits in the outbox and is pushed once it is re-authorised;
//! `serve` puts back missing
//! subscriptions when it starts; a disabled integration has none left; an `invoice.sent`
//! updates the invoice pushed before (with its `SyncToken`).

use std::sync::Arc;
use std::time::Duration;

use hangar_workers::client::Client;
use hangar_workers::db::Pool;
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use hangar_workers::wire::EventEnvelope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::integrations_e2e::{WS, World};
use crate::integrations_support::DumpOnPanic;
use crate::support::{Backend, wait_for};

fn invoice(id: &str, invoice_id: &str, amount: f64) -> Value {
    json!({
        "id": id,
        "type": "invoice.created",
        "workspace_id": WS,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "data": {"invoice_id": invoice_id, "customer_ref": "58", "currency": "USD",
            "lines": [{"amount": amount, "description": "Charter KTEB-KPBI"}]},
    })
}

/// Waits for the simulator to hold `n` invoices; returns them.
async fn invoices(w: &World, n: usize) -> Vec<Value> {
    wait_for(
        &format!("{n} invoices in QuickBooks"),
        Duration::from_secs(30),
        || {
            let got = w.sim.objects("Invoice");
            async move { (got.len() >= n).then_some(got) }
        },
    )
    .await
}

/// The invoice made for `invoice_id` (its `PrivateNote` names it).
fn made_for<'a>(invoices: &'a [Value], invoice_id: &str) -> Vec<&'a Value> {
    let note = format!("hangar:{invoice_id}");
    invoices
        .iter()
        .filter(|i| i["PrivateNote"] == note.as_str())
        .collect()
}

/// The mappings of `internal`'s invoice, once there is one (it is written in the
/// transaction that ends the push, just after the simulator answered).
async fn mapped(w: &World, internal: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM hangar_sync_mappings WHERE object_type = 'Invoice' \
         AND internal_id = '{internal}'"
    );
    let what = format!("the mapping of {internal}");
    wait_for(&what, Duration::from_secs(10), || async {
        Some(w.db.query_i64(&sql).await).filter(|n| *n > 0)
    })
    .await
}

async fn invoice_events_push_invoices(backend: Backend) {
    let mut w = World::start(backend).await;
    let dump = DumpOnPanic(vec![&w.serve]);
    let integration = w.put_quickbooks(&["invoices", "payments"]).await;
    let id = integration["id"]
        .as_str()
        .expect("integration id")
        .to_owned();
    let subscribed: Vec<String> = w
        .store
        .event_subscriptions(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.event_type)
        .collect();
    assert_eq!(subscribed, ["invoice.created", "invoice.sent"]);

    // By the API.
    let (status, answer) = w
        .call(
            Method::POST,
            "/api/v1/events",
            &w.admin,
            Some(invoice("evt_api", "inv_api", 1250.0)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let all = invoices(&w, 1).await;
    let made = made_for(&all, "inv_api");
    assert_eq!(made.len(), 1, "{all:?}");
    assert_eq!(made[0]["Line"][0]["Amount"], 1250.0, "{}", made[0]);
    assert_eq!(w.sim.request_ids().len(), 1, "written with a requestid");
    assert_eq!(mapped(&w, "inv_api").await, 1, "one mapping");
    let run = wait_for("the event run to end", Duration::from_secs(10), || async {
        w.runs()
            .await
            .into_iter()
            .find(|r| r["trigger"] == "event" && r["status"] != "running")
    })
    .await;
    assert_eq!(
        (&run["direction"], &run["data_type"], &run["status"]),
        (&json!("out"), &json!("invoices"), &json!("succeeded")),
        "{run}"
    );
    assert_eq!(run["records"]["created"], 1, "{run}");

    // By Redis: a new event, and the API's event again.
    for (event_id, invoice_id) in [("evt_redis", "inv_redis"), ("evt_api", "inv_api")] {
        let msg = json!({"kind": "event", "event": invoice(event_id, invoice_id, 300.0)});
        w.redis.xadd(&msg.to_string());
    }
    let all = invoices(&w, 2).await;
    assert_eq!(made_for(&all, "inv_redis").len(), 1, "{all:?}");
    assert_eq!(mapped(&w, "inv_redis").await, 1, "one mapping");

    // By the Rust client, in the caller's transaction: a new event and the Redis one again.
    let pools = hangar_workers::pool_config::parse("pools.toml", crate::integrations_e2e::POOLS)
        .expect("pools");
    let mut registry = Registry::builtin();
    hangar_integrations::reserve_kinds(&mut registry);
    let routes = Routes::new(&pools, &registry);
    let client = Client::new(Arc::new(registry), Arc::new(routes));
    for (event_id, invoice_id) in [("evt_redis", "inv_redis"), ("evt_client", "inv_client")] {
        let event: EventEnvelope = hangar_workers::wire::parse_event(
            invoice(event_id, invoice_id, 75.5)
                .as_object()
                .expect("object"),
        )
        .expect("a valid event");
        macro_rules! publish {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.expect("begin");
                client
                    .publish_event(&mut *tx, &event)
                    .await
                    .expect("publish");
                tx.commit().await.expect("commit");
            }};
        }
        match w.db.database().await.pool() {
            Pool::Postgres(pg) => publish!(pg),
            Pool::Sqlite(lite) => publish!(lite),
        }
    }
    let all = invoices(&w, 3).await;
    assert_eq!(made_for(&all, "inv_client").len(), 1, "{all:?}");
    assert_eq!(mapped(&w, "inv_client").await, 1, "one mapping");
    // Every job has ended: no duplicate is on its way.
    wait_for("the sync jobs to end", Duration::from_secs(30), || async {
        let jobs = crate::integrations_support::jobs_of(&w.store, "sync", WS).await;
        jobs.iter().all(|j| j.state.is_final()).then_some(())
    })
    .await;
    let all = w.sim.objects("Invoice");
    assert_eq!(all.len(), 3, "one invoice per event, none twice: {all:?}");
    for invoice_id in ["inv_api", "inv_redis", "inv_client"] {
        assert_eq!(made_for(&all, invoice_id).len(), 1, "{invoice_id}");
    }
    assert_eq!(w.sim.request_ids().len(), 3);
    let event_jobs = crate::integrations_support::jobs_of(&w.store, "sync", WS)
        .await
        .into_iter()
        .filter(|j| j.args["trigger"] == "event")
        .count();
    assert_eq!(event_jobs, 3, "one job per event");

    // While it needs re-authorisation an event's invoice waits in the outbox; once
    // re-authorised, the next run of `invoices` pushes it.
    w.sim.switch(|s| {
        s.expire_tokens = true;
        s.invalid_grant = true;
    });
    w.sync("payments").await;
    let (_, one) = w
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{WS}/integrations/quickbooks"),
            &w.viewer,
            None,
        )
        .await;
    assert_eq!(one["status"], "needs_reauth", "{one}");
    let (status, _) = w
        .call(
            Method::POST,
            "/api/v1/events",
            &w.admin,
            Some(invoice("evt_reauth", "inv_reauth", 42.0)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = wait_for("the event's job", Duration::from_secs(30), || async {
        crate::integrations_support::jobs_of(&w.store, "sync", WS)
            .await
            .into_iter()
            .find(|j| j.args["event_id"] == "evt_reauth" && j.state.is_final())
    })
    .await;
    assert_eq!(
        job.state,
        hangar_workers::job::JobState::Completed,
        "{job:?}"
    );
    assert_eq!(
        w.db.query_i64("SELECT count(*) FROM hangar_sync_outbox WHERE event_id = 'evt_reauth'")
            .await,
        1,
        "kept in the outbox"
    );
    assert_eq!(
        w.sim.objects("Invoice").len(),
        3,
        "nothing pushed meanwhile"
    );
    w.sim.switch(|s| {
        s.expire_tokens = false;
        s.invalid_grant = false;
    });
    assert_eq!(
        w.put_quickbooks(&["invoices", "payments"]).await["status"],
        "active"
    );
    let job = w.sync("invoices").await;
    assert_eq!(
        job.state,
        hangar_workers::job::JobState::Completed,
        "{job:?}"
    );
    let all = w.sim.objects("Invoice");
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(made_for(&all, "inv_reauth").len(), 1);

    // An integration saved before the subscriptions existed gets them when `serve` starts.
    drop(dump);
    w.store.set_event_subscriptions(&id, WS, &[]).await.unwrap();
    w.restart_after_kill9("serve-2").await;
    assert_eq!(w.store.event_subscriptions(&id).await.unwrap().len(), 2);

    // Disabled: no subscription left.
    let mut body = w.quickbooks(&["invoices"]);
    body["enabled"] = json!(false);
    let (status, answer) = w
        .call(
            Method::PUT,
            &format!("/api/v1/workspaces/{WS}/integrations/quickbooks"),
            &w.admin,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(w.store.event_subscriptions(&id).await.unwrap().is_empty());
}

#[tokio::test]
async fn invoice_events_push_invoices_postgres() {
    invoice_events_push_invoices(Backend::Postgres).await;
}

#[tokio::test]
async fn invoice_events_push_invoices_sqlite() {
    invoice_events_push_invoices(Backend::Sqlite).await;
}

/// The catalog's `invoice.sent` of an invoice pushed before updates it in QuickBooks (with
/// the `SyncToken` it had: the simulator refuses a stale one), no second invoice; the
/// catalog has no `invoice.updated` (the API refuses it).
async fn an_invoice_sent_updates_the_pushed_invoice(backend: Backend) {
    let w = World::start(backend).await;
    let _dump = DumpOnPanic(vec![&w.serve]);
    w.put_quickbooks(&["invoices"]).await;
    let (status, answer) = w
        .call(
            Method::POST,
            "/api/v1/events",
            &w.admin,
            Some(invoice("evt_created", "inv_sent", 1250.0)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let all = invoices(&w, 1).await;
    assert_eq!(all[0]["SyncToken"], "0", "{all:?}");
    assert_eq!(mapped(&w, "inv_sent").await, 1);

    let mut sent = invoice("evt_sent", "inv_sent", 1400.0);
    sent["type"] = json!("invoice.sent");
    sent["data"]["due_date"] = json!("2027-02-01");
    let (status, answer) = w
        .call(Method::POST, "/api/v1/events", &w.admin, Some(sent))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let updated = wait_for("the invoice updated", Duration::from_secs(30), || {
        let got = w.sim.objects("Invoice");
        async move { got.into_iter().find(|i| i["Line"][0]["Amount"] == 1400.0) }
    })
    .await;
    assert_eq!(
        (&updated["SyncToken"], &updated["DueDate"]),
        (&json!("1"), &json!("2027-02-01")),
        "{updated}"
    );
    assert_eq!(w.sim.objects("Invoice").len(), 1, "updated, not made again");
    assert_eq!(
        w.sim.request_ids().len(),
        2,
        "each write with its requestid"
    );

    let mut unknown = invoice("evt_updated", "inv_sent", 1500.0);
    unknown["type"] = json!("invoice.updated");
    let (status, answer) = w
        .call(Method::POST, "/api/v1/events", &w.admin, Some(unknown))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_event", "{answer}");
}

#[tokio::test]
async fn an_invoice_sent_updates_the_pushed_invoice_postgres() {
    an_invoice_sent_updates_the_pushed_invoice(Backend::Postgres).await;
}

#[tokio::test]
async fn an_invoice_sent_updates_the_pushed_invoice_sqlite() {
    an_invoice_sent_updates_the_pushed_invoice(Backend::Sqlite).await;
}
