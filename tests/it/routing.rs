//! One routing rule for every entry point, on both backends: a job on an explicit queue keeps
//! the attempt budget of the pool that runs its kind, whether a caller asked for it (the
//! client behind the API and the Redis ingress) or a schedule did (the planner, which used
//! to take the budget of the queue's pool instead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::client::Client;
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config;
use hangar_workers::routes::Routes;
use hangar_workers::wire::parse_job_body;
use serde_json::json;

use crate::support::{Backend, TestDb};

/// `noop` runs in a pool with 6 attempts; the `slow` queue's pool has 2.
const POOLS: &str = r#"
[[pool]]
name = "default"
kinds = ["noop"]
max_attempts = 6

[[pool]]
name = "slow"
kinds = ["http"]
max_attempts = 2
"#;

async fn an_explicit_queue_keeps_the_kinds_budget(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let registry = Registry::builtin();
    let routes = Routes::new(
        &pool_config::parse("pools.toml", POOLS).expect("pools"),
        &registry,
    );

    // A caller's request (API, Redis ingress).
    let client = Client::new(Arc::new(registry), Arc::new(routes.clone()));
    let request = json!({"kind": "noop", "workspace_id": "ws_1", "args": {},
        "idempotency_key": "k1", "queue": "slow"});
    let job = client
        .resolve(parse_job_body(request.to_string().as_bytes()).expect("request"))
        .expect("resolved");
    let id = store.enqueue(&job).await.expect("enqueue").id;
    let asked = store.job(id).await.expect("job");
    assert_eq!((asked.queue.as_str(), asked.max_attempts), ("slow", 6));

    // A schedule's slot.
    let schedules = Schedules::new(store.clone());
    let mut schedule = NewSchedule::new("every-second", "* * * * * *", "noop");
    schedule.queue = Some("slow".to_owned());
    schedules.upsert(&schedule).await.expect("schedule");
    let mut planner = Planner::new(schedules.clone(), routes, PlannerConfig::default());
    // The planner runs here, in the test: each run plans what is due by then (a slot every
    // second), until the first slot's job exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    let planned = loop {
        planner.run_once().await.expect("plan");
        let row = schedules.get("every-second").await.expect("schedule");
        if let Some(id) = row.last_job_id {
            break id;
        }
        assert!(Instant::now() < deadline, "the planner ran no slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let slot = store.job(planned).await.expect("job");
    assert_eq!((slot.queue.as_str(), slot.max_attempts), ("slow", 6));
}

#[tokio::test]
async fn an_explicit_queue_keeps_the_kinds_budget_postgres() {
    an_explicit_queue_keeps_the_kinds_budget(Backend::Postgres).await;
}

#[tokio::test]
async fn an_explicit_queue_keeps_the_kinds_budget_sqlite() {
    an_explicit_queue_keeps_the_kinds_budget(Backend::Sqlite).await;
}
