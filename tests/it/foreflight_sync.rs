//! ForeFlight Dispatch against its simulator (of third-party shapes), on both backends:
//! flights in (a first full reconciliation read from the modified feed page by page, then the
//! feed from the cursor), trips out (created with `POST /Flights`, updated in place with `PUT
//! /Flights/{flightId}`, Hangar's own write not read back as a change), a 429 with
//! `Retry-After` a rate limit, a refused key (403 `Forbidden`) an authentication failure.

use std::sync::Arc;

use chrono::Utc;
use hangar_integrations::provider::Provider;
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::RunRow;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::outbound::accept_event;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::db::Database;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::targets::TargetPolicy;
use hangar_workers::wire::EventEnvelope;
use serde_json::json;

use crate::foreflight_sim::{API_KEY, ForeFlightSim};
use crate::support::{Backend, TestDb};
use crate::sync_support::FixedAccess;

const INTEGRATION: &str = "int_test_foreflight";
const WORKSPACE: &str = "ws_dispatch";

struct World {
    sim: ForeFlightSim,
    store: SyncStore,
    access: Arc<FixedAccess>,
    handler: SyncHandler,
    _db: TestDb,
}

impl World {
    async fn new(backend: Backend) -> World {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let sim = ForeFlightSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        let mut access = FixedAccess::quickbooks_at(
            &sim.base,
            &format!("{}/no-token-endpoint", sim.base),
            &["flights", "trips"],
        );
        access.info.id = INTEGRATION.into();
        access.info.workspace_id = WORKSPACE.into();
        access.info.provider = Provider::Foreflight;
        access.info.settings = json!({"base_url": sim.base});
        access.set_token(API_KEY);
        let access = Arc::new(access);
        let handler = SyncHandler::new(
            store.clone(),
            access.clone(),
            Connectors::builtin(),
            &TargetPolicy::allow_all(),
            Changes::api_only(),
        )
        .expect("handler");
        World {
            sim,
            store,
            access,
            handler,
            _db: db,
        }
    }

    async fn sync(&self, data_type: &str, event_id: Option<&str>) -> Result<(), JobFailure> {
        let args = SyncArgs {
            integration_id: INTEGRATION.into(),
            data_type: data_type.into(),
            trigger: if event_id.is_some() {
                Trigger::Event
            } else {
                Trigger::Manual
            },
            event_id: event_id.map(str::to_owned),
        };
        self.handler.sync(&args, None).await
    }

    async fn last_run(&self) -> RunRow {
        let runs = self.store.runs(WORKSPACE, None, 1).await.expect("runs");
        runs.into_iter().next().expect("a run")
    }
}

async fn flights_in(backend: Backend) {
    let w = World::new(backend).await;
    let ids = w.sim.add_flights(5, chrono::Duration::days(2));
    w.sim.switch(|s| s.page = 2);
    w.sync("flights", None).await.expect("first sync");
    let first = w.last_run().await;
    assert_eq!(
        (first.status.as_str(), first.records.created),
        ("succeeded", 5),
        "{first:?}"
    );
    assert!(
        first.log.iter().any(|l| l.contains("no cursor yet")),
        "{:?}",
        first.log
    );
    assert!(w.sim.calls("modified") >= 3, "5 flights in pages of 2");

    // A dispatcher changes the planned fuel of one flight: the feed from the cursor brings it.
    w.sim.edit(&ids[2], "plannedFuel", json!(6100));
    w.sync("flights", None).await.expect("second sync");
    let second = w.last_run().await;
    assert_eq!(
        (
            second.status.as_str(),
            second.records.created,
            second.records.updated
        ),
        ("succeeded", 0, 1),
        "{second:?}"
    );
    let stored = w
        .store
        .mapped_payload(INTEGRATION, "Flight", &ids[2])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["plannedFuel"], 6100);

    // Throttled: the wait is ForeFlight's Retry-After.
    w.sim.switch(|s| {
        s.throttle_next = 1;
        s.retry_after = Some("9".into());
    });
    let failure = w.sync("flights", None).await.expect_err("throttled");
    assert_eq!(
        (failure.class, failure.retry_after.as_deref()),
        (ErrorClass::RateLimit, Some("9"))
    );
    assert_eq!(w.last_run().await.status, "rate_limited");

    // A key ForeFlight refuses: 403 Forbidden, the integration needs a new key.
    let w = World::new(backend).await;
    w.access.set_token("ff-revoked-key");
    let failure = w.sync("flights", None).await.expect_err("refused");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
    assert_eq!(w.sim.calls("403"), 1);
    let run = w.last_run().await;
    assert!(!format!("{run:?}").contains("ff-revoked-key"), "{run:?}");
}

#[tokio::test]
async fn foreflight_flights_in_postgres() {
    flights_in(Backend::Postgres).await;
}

#[tokio::test]
async fn foreflight_flights_in_sqlite() {
    flights_in(Backend::Sqlite).await;
}

fn trip_event(id: &str, kind: &str) -> EventEnvelope {
    let data = json!({"trip_id": "trp_700", "origin": "KTEB", "destination": "KPBI",
        "departure_time": "2026-12-05T14:00:00Z", "aircraft": "N123AB"});
    EventEnvelope {
        id: id.to_owned(),
        event_type: kind.to_owned(),
        workspace_id: WORKSPACE.to_owned(),
        timestamp: Utc::now(),
        data: data.as_object().unwrap().clone(),
    }
}

async fn trips_out(backend: Backend) {
    let w = World::new(backend).await;
    let integrations = vec![w.access.info.clone()];
    let connectors = Connectors::builtin();
    for (id, kind) in [("evt_f1", "trip.created"), ("evt_f2", "trip.cancelled")] {
        accept_event(&w.store, &connectors, &integrations, &trip_event(id, kind))
            .await
            .expect("accepted");
        w.sync("trips", Some(id)).await.expect("pushed");
    }
    let flights = w.sim.flights();
    assert_eq!(
        flights.len(),
        1,
        "one flight, updated in place: {flights:?}"
    );
    let flight = flights.values().next().unwrap();
    assert_eq!(
        (
            &flight["externalId"],
            &flight["status"],
            &flight["departure"]
        ),
        (&json!("trp_700"), &json!("cancelled"), &json!("KTEB"))
    );
    assert_eq!((w.sim.calls("create"), w.sim.calls("update")), (1, 1));
    let run = w.last_run().await;
    assert_eq!((run.status.as_str(), run.records.updated), ("succeeded", 1));

    // Reading flights back finds Hangar's own write unchanged: nothing created or updated.
    w.sync("flights", None).await.expect("read back");
    let back = w.last_run().await;
    assert_eq!(
        (back.records.created, back.records.updated),
        (0, 0),
        "{back:?}"
    );
    assert!(back.records.skipped >= 1, "{back:?}");
}

#[tokio::test]
async fn foreflight_trips_out_postgres() {
    trips_out(Backend::Postgres).await;
}

#[tokio::test]
async fn foreflight_trips_out_sqlite() {
    trips_out(Backend::Sqlite).await;
}
