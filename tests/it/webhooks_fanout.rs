//! The fan-out in the engine, on both backends: the Rust `Client` in the caller's own
//! transaction (rolled back: no event, no delivery, no job; committed: all of them), the Redis
//! ingress's batch (`Store::ingest`) deduplicating a repeated event, held deliveries for a
//! paused endpoint, and the "all" filter's safety rule in SQL.

use hangar_workers::client::Client;
use hangar_workers::db::Pool;
use hangar_workers::webhooks::{NewEndpoint, endpoint};
use hangar_workers::wire::{EventEnvelope, parse_event_body};
use serde_json::json;

use crate::support::{Backend, TestDb};
use crate::webhooks_support::webhook_context;

fn envelope(id: &str, event_type: &str) -> EventEnvelope {
    parse_event_body(
        json!({"id": id, "type": event_type, "workspace_id": "ws_1",
            "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_9"}})
        .to_string()
        .as_bytes(),
    )
    .expect("event")
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.query_i64(sql).await
}

async fn fan_out(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let client = Client::builtin();
    let context = webhook_context(&store);
    let new = |url: &str, types: &[&str], safety: bool, others: bool| NewEndpoint {
        workspace_id: "ws_1".to_owned(),
        url: url.to_owned(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        description: String::new(),
        safety_allowed: safety,
        others_allowed: others,
        limits: Default::default(),
    };
    let (admin_all, _) = endpoint::create(&context, &new("http://127.0.0.1:9/a", &[], false, true))
        .await
        .expect("admin's all");
    let (owner_all, _) = endpoint::create(&context, &new("http://127.0.0.1:9/o", &[], true, true))
        .await
        .expect("owner's all");
    let (paused, _) = endpoint::create(
        &context,
        &new("http://127.0.0.1:9/p", &["trip.created"], false, true),
    )
    .await
    .expect("paused");
    assert!(
        store
            .set_webhook_endpoint_paused(&paused.id, true)
            .await
            .expect("pause")
    );

    // The Client in the caller's transaction: a rollback leaves nothing.
    let event = envelope("evt_tx", "trip.created");
    macro_rules! in_transaction {
        ($pool:expr, $commit:expr) => {{
            let mut tx = $pool.begin().await.expect("begin");
            assert!(
                client
                    .publish_event(&mut *tx, &event)
                    .await
                    .expect("publish")
            );
            if $commit {
                tx.commit().await.expect("commit");
            } else {
                tx.rollback().await.expect("rollback");
            }
        }};
    }
    match db.database().await.pool() {
        Pool::Postgres(pg) => in_transaction!(pg, false),
        Pool::Sqlite(lite) => in_transaction!(lite, false),
    };
    assert_eq!(
        count(&db, "SELECT count(*) FROM hangar_webhook_deliveries").await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM hangar_jobs").await, 0);
    match db.database().await.pool() {
        Pool::Postgres(pg) => in_transaction!(pg, true),
        Pool::Sqlite(lite) => in_transaction!(lite, true),
    };
    // Three endpoints take trip.created; the paused one's is held, without a job.
    assert_eq!(
        count(&db, "SELECT count(*) FROM hangar_webhook_deliveries").await,
        3
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hangar_webhook_deliveries WHERE state = 'held'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hangar_jobs j JOIN hangar_webhook_deliveries d ON d.job_id = j.id \
             WHERE j.kind = 'webhook_delivery' AND j.queue = 'webhooks' AND j.state = 'available'"
        )
        .await,
        2,
        "one job per delivery of an active endpoint, linked to it"
    );

    // The ingress batch: a repeated event creates nothing; a safety event reaches only the
    // owner's "all" endpoint.
    let route = client.webhook_route();
    let batch = [
        envelope("evt_tx", "trip.created"),
        envelope("evt_s", "hazard.identified"),
        envelope("evt_i", "invoice.paid"),
    ];
    let ingested = store.ingest(&batch, &[], &route).await.expect("ingest");
    assert_eq!((ingested.events_new, ingested.events_duplicate), (2, 1));
    let safety = |id: &str| {
        format!(
            "SELECT count(*) FROM hangar_webhook_deliveries WHERE event_id = 'evt_s' \
             AND endpoint_id = '{id}'"
        )
    };
    assert_eq!(count(&db, &safety(&owner_all.id)).await, 1);
    assert_eq!(count(&db, &safety(&admin_all.id)).await, 0);
    assert_eq!(count(&db, &safety(&paused.id)).await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hangar_webhook_deliveries WHERE event_id = 'evt_i'"
        )
        .await,
        2,
        "invoice.paid: both 'all' endpoints"
    );
    let again = store
        .ingest(&batch, &[], &route)
        .await
        .expect("ingest again");
    assert_eq!(again.events_new, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM hangar_webhook_deliveries").await,
        6
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM hangar_jobs").await,
        5,
        "every delivery but the held one has its job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entrance_fans_out_in_the_events_transaction_postgres() {
    fan_out(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entrance_fans_out_in_the_events_transaction_sqlite() {
    fan_out(Backend::Sqlite).await;
}
