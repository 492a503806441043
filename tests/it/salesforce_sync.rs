//! Salesforce against its simulator, on both backends: customers in (a first full
//! reconciliation by a query paged with `nextRecordsUrl`, then `updated` ids and their
//! records, the cursor advancing; a cursor older than the 30-day window falls back to a full
//! reconciliation), an expired session (401 `INVALID_SESSION_ID`) refreshed once and retried
//! once, the daily budget (403 `REQUEST_LIMIT_EXCEEDED` a rate limit waiting for the budget,
//! not a client error; a budget seen spent in `Sforce-Limit-Info` draws no 403 at all), and
//! trips out upserted by external id, a retry after a lost answer making no second record.

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

use crate::salesforce_sim::SalesforceSim;
use crate::support::{Backend, TestDb};
use crate::sync_support::FixedAccess;

pub const INTEGRATION: &str = "int_test_salesforce";
pub const WORKSPACE: &str = "ws_salesforce";

/// One Salesforce test's world (also the deleted-feed and collection tests').
pub struct World {
    pub db: TestDb,
    pub sim: SalesforceSim,
    pub store: SyncStore,
    pub access: Arc<FixedAccess>,
    pub handler: SyncHandler,
}

impl World {
    /// A migrated database, a fresh simulator, a handler.
    pub async fn new(backend: Backend) -> World {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let sim = SalesforceSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        // The sync tests' seam (a fixed integration and a refresh through the token
        // endpoint), made a Salesforce one.
        let mut access =
            FixedAccess::quickbooks_at(&sim.base, &sim.token_url(), &["customers", "trips"]);
        access.info.id = INTEGRATION.into();
        access.info.workspace_id = WORKSPACE.into();
        access.info.provider = Provider::Salesforce;
        access.info.settings = json!({"instance_url": sim.base});
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
            db,
            sim,
            store,
            access,
            handler,
        }
    }

    /// Runs one sync of `data_type` (an event's push with `event_id`).
    pub async fn sync(&self, data_type: &str, event_id: Option<&str>) -> Result<(), JobFailure> {
        let trigger = if event_id.is_some() {
            Trigger::Event
        } else {
            Trigger::Manual
        };
        let args = SyncArgs {
            integration_id: INTEGRATION.into(),
            data_type: data_type.into(),
            trigger,
            event_id: event_id.map(str::to_owned),
        };
        self.handler.sync(&args, None).await
    }

    /// The newest run.
    pub async fn last_run(&self) -> RunRow {
        let runs = self.store.runs(WORKSPACE, None, 1).await.expect("runs");
        runs.into_iter().next().expect("a run")
    }

    async fn age_the_cursor(&self) {
        self.move_the_cursor_back(chrono::Duration::days(31)).await;
    }

    async fn move_the_cursor_back(&self, by: chrono::Duration) {
        let old = Utc::now() - by;
        let sql = if self.db.url.starts_with("sqlite") {
            format!(
                "UPDATE hangar_sync_cursors SET cursor_at = {} WHERE integration_id = '{INTEGRATION}'",
                old.timestamp_millis()
            )
        } else {
            format!(
                "UPDATE hangar_sync_cursors SET cursor_at = '{}' WHERE integration_id = '{INTEGRATION}'",
                old.to_rfc3339()
            )
        };
        self.db.sql(&sql).await;
    }
}

async fn customers_in(backend: Backend) {
    let w = World::new(backend).await;
    let ids = w.sim.add_accounts(5, chrono::Duration::days(1));
    w.sim.switch(|s| s.query_page = 2);

    w.sync("customers", None).await.expect("first sync");
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
    assert_eq!(w.sim.calls("query"), 3, "5 accounts in pages of 2");
    let stored = w
        .store
        .mapped_payload(INTEGRATION, "Account", &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["Name"], "Operator 1");
    assert!(stored.get("attributes").is_none(), "{stored}");

    // Two accounts are edited in Salesforce: their ids from `updated`, then their records.
    w.sim.edit(&ids[1], "Name", json!("Operator Two Renamed"));
    w.sim.edit(&ids[3], "BillingCity", json!("Van Nuys"));
    let records_before = w.sim.calls("records");
    w.sync("customers", None).await.expect("second sync");
    let second = w.last_run().await;
    assert_eq!(
        (
            second.status.as_str(),
            second.records.created,
            second.records.updated
        ),
        ("succeeded", 0, 2),
        "{second:?}"
    );
    assert!(w.sim.calls("updated") >= 1 && w.sim.calls("records") > records_before);
    assert_eq!(w.sim.calls("query"), 3, "no second scan");
    let renamed = w
        .store
        .mapped_payload(INTEGRATION, "Account", &ids[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed["Name"], "Operator Two Renamed");
    let cursor = |r: &RunRow| {
        r.cursor_after.as_ref().unwrap()["cursor"]["at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(cursor(&second) > cursor(&first), "the cursor advanced");

    // Past Salesforce's 30 days: a full reconciliation, nothing new to apply.
    w.age_the_cursor().await;
    w.sync("customers", None).await.expect("after the window");
    let late = w.last_run().await;
    assert!(
        late.log
            .iter()
            .any(|l| l.contains("older than the provider's 29-day changes window")),
        "{:?}",
        late.log
    );
    assert_eq!(w.sim.calls("query"), 6);
    assert_eq!(
        w.sim.calls("400"),
        0,
        "updated was never asked beyond its window"
    );
    assert_eq!(
        (late.records.created, late.records.updated),
        (0, 0),
        "{late:?}"
    );
}

#[tokio::test]
async fn customers_in_postgres() {
    customers_in(Backend::Postgres).await;
}

#[tokio::test]
async fn customers_in_sqlite() {
    customers_in(Backend::Sqlite).await;
}

/// 2 100 accounts changed since the cursor, more than one page's 2 000 ids: the window is
/// narrowed (past a part holding nothing) until a page reads, and every account arrives.
async fn a_busy_window_is_narrowed(backend: Backend) {
    let w = World::new(backend).await;
    w.sync("customers", None).await.expect("first sync");
    w.move_the_cursor_back(chrono::Duration::hours(2)).await;
    w.sim.add_accounts(2100, chrono::Duration::zero());
    w.sync("customers", None).await.expect("narrowed");
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.records.created),
        ("succeeded", 2100),
        "{run:?}"
    );
    assert!(
        w.sim.calls("updated") >= 4,
        "{} updated calls",
        w.sim.calls("updated")
    );
    assert_eq!(w.sim.calls("400"), 0);
}

#[tokio::test]
async fn a_busy_window_is_narrowed_postgres() {
    a_busy_window_is_narrowed(Backend::Postgres).await;
}

#[tokio::test]
async fn a_busy_window_is_narrowed_sqlite() {
    a_busy_window_is_narrowed(Backend::Sqlite).await;
}

async fn an_expired_session_is_refreshed_once(backend: Backend) {
    let w = World::new(backend).await;
    w.sim.add_accounts(3, chrono::Duration::hours(1));
    w.sim.switch(|s| s.expire_tokens = true);
    w.sync("customers", None)
        .await
        .expect("refreshed and retried");
    assert_eq!(*w.access.refreshes.lock().unwrap(), 1);
    assert_eq!((w.sim.calls("401"), w.sim.calls("token")), (1, 1));
    let run = w.last_run().await;
    // The credential version the run used last: the refreshed one.
    assert_eq!(
        (run.records.created, run.credential_version),
        (3, Some(2)),
        "{run:?}"
    );

    // A second expiry within the run is not refreshed again: an auth failure.
    w.sim.switch(|s| {
        s.expire_tokens = true;
        s.invalid_grant = true;
    });
    let failure = w.sync("customers", None).await.expect_err("refused");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_postgres() {
    an_expired_session_is_refreshed_once(Backend::Postgres).await;
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_sqlite() {
    an_expired_session_is_refreshed_once(Backend::Sqlite).await;
}

async fn the_daily_budget(backend: Backend) {
    // Spent before the run: the 403 is a rate limit that waits for the budget, and the org
    // is paused (the next attempt makes no call).
    let w = World::new(backend).await;
    w.sim.add_accounts(3, chrono::Duration::hours(1));
    w.sim.set_usage(1000, 1000);
    let failure = w.sync("customers", None).await.expect_err("over budget");
    assert_eq!(failure.class, ErrorClass::RateLimit, "{failure:?}");
    assert_eq!(failure.retry_after.as_deref(), Some("3600"));
    let run = w.last_run().await;
    assert_eq!(run.status, "rate_limited");
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("REQUEST_LIMIT_EXCEEDED"),
        "{run:?}"
    );
    assert_eq!(w.sim.calls("403"), 1);
    w.sim.set_usage(0, 1000);
    let again = w.sync("customers", None).await.expect_err("paused");
    assert_eq!(again.class, ErrorClass::RateLimit);
    assert_eq!(
        w.sim.calls("403") + w.sim.calls("query"),
        1,
        "no call while paused"
    );

    // One request left: the answer says the budget is now spent, and the connector stops
    // there instead of drawing a 403.
    let w = World::new(backend).await;
    w.sim.add_accounts(3, chrono::Duration::hours(1));
    w.sim.switch(|s| s.query_page = 1);
    w.sim.set_usage(499, 500);
    let failure = w
        .sync("customers", None)
        .await
        .expect_err("budget seen spent");
    assert_eq!(failure.class, ErrorClass::RateLimit, "{failure:?}");
    assert!(failure.message.contains("500/500"), "{failure:?}");
    assert_eq!((w.sim.calls("query"), w.sim.calls("403")), (1, 0));
    assert_eq!(
        w.last_run().await.records.created,
        1,
        "the page read was kept"
    );
}

#[tokio::test]
async fn the_daily_budget_postgres() {
    the_daily_budget(Backend::Postgres).await;
}

#[tokio::test]
async fn the_daily_budget_sqlite() {
    the_daily_budget(Backend::Sqlite).await;
}

/// A trip event of trip `trp_900`.
pub fn trip_event(id: &str, kind: &str) -> EventEnvelope {
    trip_event_of(id, kind, "trp_900")
}

/// A trip event of `trip`.
pub fn trip_event_of(id: &str, kind: &str, trip: &str) -> EventEnvelope {
    let data = json!({"trip_id": trip, "origin": "KTEB", "destination": "KPBI",
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
    let jobs = accept_event(
        &w.store,
        &connectors,
        &integrations,
        &trip_event("evt_t1", "trip.created"),
    )
    .await
    .unwrap();
    assert_eq!((jobs.len(), jobs[0].args.data_type.as_str()), (1, "trips"));

    // Made, answer lost: the retry upserts the same external id, still one record.
    w.sim.switch(|s| s.lose_next_answers = 1);
    let failure = w
        .sync("trips", Some("evt_t1"))
        .await
        .expect_err("answer lost");
    assert_eq!(failure.class, ErrorClass::Server);
    w.sync("trips", Some("evt_t1")).await.expect("retry");
    let trips = w.sim.upserted("Hangar_Trip__c");
    assert_eq!(trips.len(), 1, "{trips:?}");
    let trip = &trips["trp_900"];
    assert_eq!(
        (
            &trip["Status__c"],
            &trip["Origin__c"],
            &trip["Departure__c"]
        ),
        (
            &json!("created"),
            &json!("KTEB"),
            &json!("2026-12-05T14:00:00Z")
        )
    );
    assert_eq!(w.last_run().await.status, "succeeded");

    // Cancelled: the same record, updated.
    accept_event(
        &w.store,
        &connectors,
        &integrations,
        &trip_event("evt_t2", "trip.cancelled"),
    )
    .await
    .unwrap();
    w.sync("trips", Some("evt_t2")).await.expect("update");
    let trips = w.sim.upserted("Hangar_Trip__c");
    assert_eq!(
        (trips.len(), &trips["trp_900"]["Status__c"]),
        (1, &json!("cancelled"))
    );
    assert_eq!(w.sim.calls("upsert"), 2);
}

#[tokio::test]
async fn trips_out_postgres() {
    trips_out(Backend::Postgres).await;
}

#[tokio::test]
async fn trips_out_sqlite() {
    trips_out(Backend::Sqlite).await;
}
