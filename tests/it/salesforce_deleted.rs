//! Salesforce's deleted feed and collection upserts against the simulator, on both
//! backends. An account deleted in Salesforce is removed at the next changes-feed run (read
//! from `deleted` after `updated`), not left for a full reconciliation; a second run does
//! not remove it again. Many trips waiting are upserted in collections of 200 (one call for
//! 200, one for the rest), a record the collection refuses fails the run after the others
//! were kept, and the refused one is pushed again on the retry.

use hangar_integrations::connectors::salesforce::trip::EVENT_TYPES;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::outbound::accept_event;
use hangar_workers::error_class::ErrorClass;

use crate::salesforce_sync::{INTEGRATION, World, trip_event_of};
use crate::support::Backend;

async fn a_deleted_account_is_removed_at_once(backend: Backend) {
    let w = World::new(backend).await;
    let ids = w.sim.add_accounts(6, chrono::Duration::hours(2));
    w.sync("customers", None).await.expect("first sync");
    assert_eq!(w.last_run().await.records.created, 6);

    w.sim.delete(&ids[1]);
    w.sync("customers", None).await.expect("changes feed");
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.records.removed),
        ("succeeded", 1),
        "{run:?}"
    );
    assert!(
        run.log.iter().any(|l| l.contains("1 deletions reported")),
        "{:?}",
        run.log
    );
    assert!(!run.log.iter().any(|l| l.contains("full reconciliation")));
    let removed =
        w.db.query_i64(&format!(
            "SELECT count(*) FROM hangar_sync_mappings WHERE integration_id = '{INTEGRATION}' \
             AND external_id = '{}' AND removed_at IS NOT NULL",
            ids[1]
        ))
        .await;
    assert_eq!(removed, 1);
    assert!(w.sim.calls("deleted") >= 2);

    // Reported again by the next run's window: already removed, nothing more.
    w.sync("customers", None).await.expect("again");
    let again = w.last_run().await;
    assert_eq!(again.records.removed, 0, "{again:?}");
    assert_eq!(
        w.db.query_i64("SELECT count(*) FROM hangar_sync_mappings WHERE removed_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn salesforce_a_deleted_account_is_removed_at_once_postgres() {
    a_deleted_account_is_removed_at_once(Backend::Postgres).await;
}

#[tokio::test]
async fn salesforce_a_deleted_account_is_removed_at_once_sqlite() {
    a_deleted_account_is_removed_at_once(Backend::Sqlite).await;
}

async fn many_trips_go_in_collections_of_200(backend: Backend) {
    let w = World::new(backend).await;
    let integrations = vec![w.access.info.clone()];
    let connectors = Connectors::builtin();
    for n in 0..250 {
        let event = trip_event_of(&format!("evt_c{n}"), EVENT_TYPES[0], &format!("trp_{n}"));
        accept_event(&w.store, &connectors, &integrations, &event)
            .await
            .expect("accepted");
    }
    w.sync("trips", None).await.expect("pushed");
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.records.created),
        ("succeeded", 250),
        "{run:?}"
    );
    assert_eq!(
        (w.sim.calls("collection"), w.sim.calls("upsert")),
        (2, 0),
        "200 then 50 in one call each"
    );
    assert_eq!(w.sim.upserted("Hangar_Trip__c").len(), 250);

    // An update of trp_3 with its status missing (the event says nothing) is refused in the
    // collection; trp_4's update is kept; the run fails on trp_3, which waits for the retry.
    let mut bad = trip_event_of("evt_bad", "trip.updated", "trp_3");
    bad.data.insert("status".into(), serde_json::Value::Null);
    accept_event(&w.store, &connectors, &integrations, &bad)
        .await
        .expect("accepted");
    let good = trip_event_of("evt_good", "trip.completed", "trp_4");
    accept_event(&w.store, &connectors, &integrations, &good)
        .await
        .expect("accepted");
    let failure = w.sync("trips", None).await.expect_err("one refused");
    assert_eq!(failure.class, ErrorClass::Client, "{failure:?}");
    assert!(
        failure.message.contains("REQUIRED_FIELD_MISSING"),
        "{failure:?}"
    );
    let run = w.last_run().await;
    assert_eq!(run.records.updated, 1, "{run:?}");
    assert_eq!(
        w.sim.upserted("Hangar_Trip__c")["trp_4"]["Status__c"],
        "completed"
    );
    assert_eq!(
        w.db.query_i64(&format!(
            "SELECT count(*) FROM hangar_sync_outbox WHERE integration_id = '{INTEGRATION}' \
                 AND pushed_at IS NULL"
        ))
        .await,
        1,
        "trp_3's update waits"
    );
}

#[tokio::test]
async fn salesforce_many_trips_go_in_collections_of_200_postgres() {
    many_trips_go_in_collections_of_200(Backend::Postgres).await;
}

#[tokio::test]
async fn salesforce_many_trips_go_in_collections_of_200_sqlite() {
    many_trips_go_in_collections_of_200(Backend::Sqlite).await;
}
