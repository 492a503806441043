//! Queue pause and resume, and the workers list, on both backends through the real binary:
//! a paused queue accepts jobs and claims none while other queues run on; resuming (API)
//! runs them at once; who may pause; `hangar workers` and `GET /api/v1/workers` show the
//! serving process with the job it runs now, and it leaves the list when it stops.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};
use crate::webhooks_support::{Hangar, token};

/// The default pool and a second one, both polling fast.
const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
poll_interval_ms = 100
shutdown_grace_ms = 500

[[pool]]
name = "other"
queue = "other"
kinds = ["webhook_delivery"]
poll_interval_ms = 100
"#;

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_ok(out)).expect("JSON")
}

fn job_state(db: &TestDb, id: &str) -> String {
    json_of(&db.run(&["jobs", "show", id, "--json"]))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn queue<'a>(queues: &'a Value, name: &str) -> &'a Value {
    queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
}

async fn pause_and_resume(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let (serve, base) = serve_http(&db).await;
    let hangar = Hangar::attach(serve, base);
    let operator = token(&db, "operator");
    let viewer = token(&db, "viewer");

    let paused = json_of(&db.run(&["queues", "pause", "default", "--json"]));
    assert_eq!(
        paused,
        json!({"queue": "default", "paused": true, "changed": true})
    );
    let again = json_of(&db.run(&["queues", "pause", "default", "--json"]));
    assert_eq!(again["changed"], false);
    let unknown = db.run(&["queues", "pause", "nowhere"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown queue 'nowhere'"));

    // The paused queue accepts the job and claims none, for many poll ticks.
    let id = stdout_ok(&db.run(&["enqueue", "noop"])).trim().to_owned();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        job_state(&db, &id),
        "available",
        "a paused queue claimed a job"
    );
    let queues = json_of(&db.run(&["queues", "list", "--json"]));
    assert_eq!(queue(&queues, "default")["paused"], true, "{queues}");
    assert_eq!(queue(&queues, "default")["waiting"], 1, "{queues}");
    assert_eq!(queue(&queues, "other")["paused"], false, "{queues}");
    let (status, listed) = hangar.call("GET", "/api/v1/queues", &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(queue(&listed, "default")["paused"], true);
    assert_eq!(queue(&listed, "default")["paused_by"], "cli", "{listed}");

    // A viewer may look, not resume; a workspace token neither.
    let (status, _) = hangar
        .call("POST", "/api/v1/queues/default/resume", &viewer, None)
        .await;
    assert_eq!(status, 403);
    let scoped = stdout_ok(&db.run(&[
        "tokens",
        "create",
        "--role",
        "operator",
        "--workspace",
        "ws_1",
    ]))
    .trim()
    .to_owned();
    let (status, body) = hangar.call("GET", "/api/v1/queues", &scoped, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = hangar
        .call("POST", "/api/v1/queues/nowhere/pause", &operator, None)
        .await;
    assert_eq!(status, 404);

    let (status, resumed) = hangar
        .call("POST", "/api/v1/queues/default/resume", &operator, None)
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["paused"], false);
    wait_for(
        "the job to run once resumed",
        Duration::from_secs(10),
        || async { (job_state(&db, &id) == "completed").then_some(()) },
    )
    .await;
    let (_, paused) = hangar
        .call("POST", "/api/v1/queues/other/pause", &operator, None)
        .await;
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["paused_by"], "token 1", "{paused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_pause_and_resume_postgres() {
    pause_and_resume(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_pause_and_resume_sqlite() {
    pause_and_resume(Backend::Sqlite).await;
}

async fn workers_list(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    // Accepts connections and never answers: the job stays running.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let (mut serve, base) = serve_http(&db).await;
    let pid = serve.child.id();
    let viewer = token(&db, "viewer");
    let id: i64 = stdout_ok(&db.run(&[
        "enqueue",
        "http",
        "--args",
        &json!({"url": url, "timeout_ms": 60_000}).to_string(),
    ]))
    .trim()
    .parse()
    .unwrap();

    let view = wait_for(
        "the running job in the list",
        Duration::from_secs(20),
        || async {
            let view = json_of(&db.run(&["workers", "--json"]));
            let runs = view["processes"][0]["running"]
                .as_array()
                .is_some_and(|r| r.iter().any(|j| j["id"] == id));
            runs.then_some(view)
        },
    )
    .await;
    let process = &view["processes"][0];
    assert_eq!(view["processes"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(process["alive"], true);
    assert_eq!(process["pid"], pid, "{view}");
    assert_eq!(process["command"], "serve");
    assert_eq!(process["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(process["pools"], json!(["default", "other"]));
    assert!(
        process["id"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{pid}"))
    );
    let running = &process["running"][0];
    assert_eq!(running["kind"], "http");
    assert_eq!(running["queue"], "default");
    assert_eq!(running["attempt"], 1);

    let text = stdout_ok(&db.run(&["workers"]));
    assert!(
        text.contains("alive") && text.contains(&id.to_string()),
        "{text}"
    );
    let api: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/workers"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["processes"][0]["running"][0]["id"], id, "{api}");

    // A clean stop takes the process off the list.
    assert!(serve.terminate().success(), "{}", serve.log());
    let view = json_of(&db.run(&["workers", "--json"]));
    assert_eq!(view["processes"], json!([]), "{view}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_list_shows_running_jobs_postgres() {
    workers_list(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_list_shows_running_jobs_sqlite() {
    workers_list(Backend::Sqlite).await;
}
