//! Avinode against its simulator, on both backends. Schedules out: trip events become the
//! aircraft's activities with `PUT /schedules`, every call carrying the `X-Avinode-*`
//! headers the simulator insists on; Avinode's own signals — a soft error (HTTP 200 with
//! `meta.errors[]`), 429 with `Retry-After`, a refused token — end the run in their classes.
//! RFQs in, end to end in `hangar serve`: an admin enables Avinode and registers its webhook's
//! Basic credentials, Avinode pushes a `TripRequest`, and the `rfqs` sync it starts reads the
//! RFQ the push names; a scheduled (here manual) run of `rfqs` reads nothing.

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
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::avinode_sim::{self, AvinodeSim};
use crate::inbound_support::basic;
use crate::stripe_serve::{SYNC_POOLS, call, finished_run};
use crate::support::{Backend, TestDb, serve_http, stdout_ok};
use crate::sync_support::FixedAccess;

const INTEGRATION: &str = "int_test_avinode";
const WORKSPACE: &str = "ws_charter";

struct World {
    sim: AvinodeSim,
    store: SyncStore,
    access: Arc<FixedAccess>,
    handler: SyncHandler,
    _db: TestDb,
}

impl World {
    async fn new(backend: Backend) -> World {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let sim = AvinodeSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        // The sync tests' seam made an Avinode one; a refused token "refreshes" against a
        // path the simulator does not have (an API key cannot be refreshed).
        let mut access = FixedAccess::quickbooks_at(
            &sim.base,
            &format!("{}/no-token-endpoint", sim.base),
            &["rfqs", "schedules"],
        );
        access.info.id = INTEGRATION.into();
        access.info.workspace_id = WORKSPACE.into();
        access.info.provider = Provider::Avinode;
        access.info.settings = json!({"base_url": sim.base, "product": "Hangar-test/1.0"});
        access.set_token(&avinode_sim::credential());
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

    /// Takes `event` into the outbox and runs the `schedules` push it enqueues.
    async fn push_trip(&self, id: &str, kind: &str, aircraft: &str) -> Result<(), JobFailure> {
        let data = json!({"trip_id": "trp_500", "origin": "KTEB", "destination": "KPBI",
            "departure_time": "2026-12-05T14:00:00Z", "arrival_time": "2026-12-05T16:40:00Z",
            "aircraft": aircraft});
        let event = EventEnvelope {
            id: id.to_owned(),
            event_type: kind.to_owned(),
            workspace_id: WORKSPACE.to_owned(),
            timestamp: Utc::now(),
            data: data.as_object().unwrap().clone(),
        };
        let jobs = accept_event(
            &self.store,
            &Connectors::builtin(),
            std::slice::from_ref(&self.access.info),
            &event,
        )
        .await
        .expect("accepted");
        assert_eq!(jobs.len(), 1);
        self.sync(Some(id)).await
    }

    async fn sync(&self, event_id: Option<&str>) -> Result<(), JobFailure> {
        let args = SyncArgs {
            integration_id: INTEGRATION.into(),
            data_type: "schedules".into(),
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

async fn schedules_out_and_avinode_signals(backend: Backend) {
    let w = World::new(backend).await;

    // Without X-Avinode-SentTimestamp the simulator refuses, as Avinode does.
    let refused = reqwest::Client::new()
        .put(format!("{}/schedules", w.sim.base))
        .bearer_auth(avinode_sim::AUTH_TOKEN)
        .header("X-Avinode-ApiToken", avinode_sim::API_TOKEN)
        .header("X-Avinode-Product", "curl")
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["meta"]["errors"][0]["title"]
            .as_str()
            .unwrap()
            .contains("x-avinode-senttimestamp"),
        "{body}"
    );

    // A confirmed trip becomes N123AB's activity.
    w.push_trip("evt_a1", "trip.confirmed", "N123AB")
        .await
        .expect("uploaded");
    let run = w.last_run().await;
    assert_eq!(
        (
            run.status.as_str(),
            run.direction.as_str(),
            run.records.created
        ),
        ("succeeded", "out", 1),
        "{run:?}"
    );
    let activity = &w.sim.schedule("N123AB")["trp_500"];
    assert_eq!(
        (
            &activity["status"],
            &activity["start"]["airport"],
            &activity["end"]["time"]
        ),
        (
            &json!("confirmed"),
            &json!("KTEB"),
            &json!("2026-12-05T16:40:00Z")
        )
    );
    assert_eq!((w.sim.calls("schedules"), w.sim.calls("400")), (1, 1));

    // A tail Avinode does not know: HTTP 200 with meta.errors, a client failure naming it.
    let failure = w
        .push_trip("evt_a2", "trip.updated", "N999ZZ")
        .await
        .expect_err("soft error");
    assert_eq!(failure.class, ErrorClass::Client, "{failure:?}");
    assert!(
        failure.message.contains("ERR_INPUT_GENERIC_INVALID") && failure.message.contains("N999ZZ"),
        "{failure:?}"
    );
    let run = w.last_run().await;
    assert_eq!(run.status, "failed");
    assert!(
        run.error.as_deref().unwrap().contains("HTTP 200"),
        "{run:?}"
    );
    assert_eq!(run.error_class.as_deref(), Some("client"));

    // Throttled with Retry-After: the run waits that long, the record stays pending.
    let w = World::new(backend).await;
    w.sim.switch(|s| {
        s.throttle_next = 1;
        s.retry_after = Some("7".into());
    });
    let failure = w
        .push_trip("evt_b1", "trip.created", "N456CD")
        .await
        .expect_err("throttled");
    assert_eq!(
        (failure.class, failure.retry_after.as_deref()),
        (ErrorClass::RateLimit, Some("7"))
    );
    assert_eq!(w.last_run().await.status, "rate_limited");
    assert!(w.sim.schedule("N456CD").is_empty());

    // A soft error naming the request limit is a rate limit too (Avinode's wait: 60 s).
    let w = World::new(backend).await;
    w.sim.switch(|s| {
        s.soft_error_next = 1;
        s.soft_error = ("ERR_RATE_LIMIT".into(), "Request limit exceeded".into());
    });
    let failure = w
        .push_trip("evt_c1", "trip.created", "N456CD")
        .await
        .expect_err("soft throttle");
    assert_eq!(
        (failure.class, failure.retry_after.as_deref()),
        (ErrorClass::RateLimit, Some("60"))
    );

    // The connection's token refused: one refresh is tried (an API key has none), then an
    // authentication failure.
    let w = World::new(backend).await;
    w.sim.switch(|s| s.refuse_tokens = true);
    let failure = w
        .push_trip("evt_d1", "trip.created", "N456CD")
        .await
        .expect_err("refused");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
    assert_eq!(w.sim.calls("401"), 1);
    let run = w.last_run().await;
    assert!(
        !format!("{run:?}").contains(avinode_sim::AUTH_TOKEN),
        "no token in the run"
    );
}

#[tokio::test]
async fn avinode_schedules_out_and_avinode_signals_postgres() {
    schedules_out_and_avinode_signals(Backend::Postgres).await;
}

#[tokio::test]
async fn avinode_schedules_out_and_avinode_signals_sqlite() {
    schedules_out_and_avinode_signals(Backend::Sqlite).await;
}

/// The `inbound` pool beside the integrations' pool.
const INBOUND_POOL: &str = r#"
[[pool]]
name = "inbound"
queue = "inbound"
kinds = ["inbound_event"]
poll_interval_ms = 100
lease_ms = 2000
"#;

async fn a_trip_request_push_syncs_its_rfq(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(&format!("{SYNC_POOLS}{INBOUND_POOL}"));
    let _ = db.store().await;
    let sim = AvinodeSim::start().await;
    let rfq = sim.add_rfq("KTEB", "KPBI");
    let (_serve, base) = serve_http(&db).await;
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    let ws = "ws_avinode";
    let path = format!("{base}/api/v1/workspaces/{ws}/integrations/avinode");
    let body = json!({"enabled": true, "data_types": ["rfqs", "schedules"],
        "frequency": "manual", "settings": {"base_url": sim.base},
        "credentials": {"api_key": avinode_sim::credential()}});
    let (status, saved, text) = call(Method::PUT, &path, &admin, Some(body)).await;
    assert_eq!(
        (status, &saved["status"]),
        (StatusCode::OK, &json!("active")),
        "{text}"
    );
    let hook = format!("{base}/api/v1/workspaces/{ws}/inbound-hooks/avinode");
    let (status, material, text) = call(Method::PUT, &hook, &admin, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let user = material["credentials"]["username"].as_str().expect("user");
    let password = material["credentials"]["password"]
        .as_str()
        .expect("password");

    // Avinode pushes the new RFQ with the Basic credentials registered with it.
    let mut push = reqwest::Client::new()
        .post(format!("{base}/hooks/avinode/{ws}"))
        .header("content-type", "application/json")
        .body(sim.push_of(&rfq));
    for (name, value) in basic(user, password) {
        push = push.header(name, value);
    }
    let answer = push.send().await.expect("the hook answers");
    assert_eq!(answer.status(), 200);

    let run = finished_run(&base, ws, &admin, "avinode").await;
    assert_eq!(
        (
            &run["status"],
            &run["trigger"],
            &run["data_type"],
            &run["direction"]
        ),
        (
            &json!("succeeded"),
            &json!("webhook"),
            &json!("rfqs"),
            &json!("in")
        ),
        "{run}"
    );
    assert_eq!(run["records"]["created"], 1, "{run}");
    assert_eq!(sim.calls("rfq"), 1);
    let changes = format!(
        "{base}/api/v1/workspaces/{ws}/sync-runs/{}/changes",
        run["id"].as_str().unwrap()
    );
    let (status, changes, text) = call(Method::GET, &changes, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let change = &changes.as_array().expect("changes")[0];
    assert_eq!(
        (
            &change["action"],
            &change["external_id"],
            &change["object_type"]
        ),
        (&json!("created"), &json!(rfq), &json!("Rfq")),
        "{change}"
    );
    assert_eq!(
        change["record"]["segments"][0]["startAirport"]["icao"],
        "KTEB"
    );

    // A manual sync of rfqs has nothing to read: Avinode publishes no list of RFQs.
    let (status, _, text) = call(
        Method::POST,
        &format!("{path}/sync"),
        &admin,
        Some(json!({"data_type": "rfqs"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let runs_url = format!("{base}/api/v1/workspaces/{ws}/sync-runs");
    crate::support::wait_for(
        "the manual run",
        std::time::Duration::from_secs(30),
        || async {
            let (_, runs, _) = call(Method::GET, &runs_url, &admin, None).await;
            runs.as_array()?
                .iter()
                .find(|r| r["trigger"] == "manual" && r["status"] == "succeeded")
                .cloned()
        },
    )
    .await;
    assert_eq!(sim.calls("rfq"), 1, "no call from a run without a push");
}

#[tokio::test]
async fn avinode_a_trip_request_push_syncs_its_rfq_postgres() {
    a_trip_request_push_syncs_its_rfq(Backend::Postgres).await;
}

#[tokio::test]
async fn avinode_a_trip_request_push_syncs_its_rfq_sqlite() {
    a_trip_request_push_syncs_its_rfq(Backend::Sqlite).await;
}
