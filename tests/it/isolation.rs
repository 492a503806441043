//! Workspace isolation at the enqueue surface: idempotency keys are scoped per (workspace,
//! kind) on both backends, so one workspace can neither take another's key nor be answered
//! with another's job, nor stand in for the planner's slot job; the engine's own kinds and
//! key prefixes are refused from callers (API, CLI); an alert notice only ever goes to a
//! channel of the alert's own workspace.

use std::time::Duration;

use chrono::Utc;
use hangar_schedules::spec::idempotency_key;
use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::client::Client;
use hangar_workers::clock::ManualClock;
use hangar_workers::db::Pool;
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::routes::Routes;
use hangar_workers::store::Keyed;
use serde_json::{Value, json};

use crate::support::{
    ANY_PORT, Backend, Receiver, TestDb, serve_http, stdout_ok, wait_final, wait_for,
};

fn noop(client: &Client, workspace: Option<&str>, key: &str) -> NewJob {
    let mut job = client.job("noop", json!({})).expect("noop");
    job.workspace_id = workspace.map(str::to_owned);
    job.idempotency_key = Some(key.to_owned());
    job
}

async fn keys_are_scoped_per_workspace(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let client = Client::builtin();

    // Workspace A takes the key first; B still gets a job of its own, and so does a job
    // without a workspace.
    let a = store
        .enqueue(&noop(&client, Some("ws_a"), "order-1"))
        .await
        .unwrap();
    let b = store
        .enqueue(&noop(&client, Some("ws_b"), "order-1"))
        .await
        .unwrap();
    let none = store
        .enqueue(&noop(&client, None, "order-1"))
        .await
        .unwrap();
    assert!(
        a.created && b.created && none.created,
        "{a:?} {b:?} {none:?}"
    );
    assert!(a.id != b.id && b.id != none.id && a.id != none.id);
    // A duplicate answers with the caller's own job, never another workspace's.
    for (workspace, own) in [(Some("ws_b"), b.id), (Some("ws_a"), a.id), (None, none.id)] {
        let again = store
            .enqueue(&noop(&client, workspace, "order-1"))
            .await
            .unwrap();
        assert_eq!((again.id, again.created), (own, false), "{workspace:?}");
        assert_eq!(
            store.job(own).await.unwrap().workspace_id.as_deref(),
            workspace
        );
    }

    // The batch insert (the planner's) conflicts on the same scope.
    let batch = [
        noop(&client, Some("ws_a"), "batch-1"),
        noop(&client, Some("ws_b"), "batch-1"),
        noop(&client, Some("ws_b"), "order-1"),
    ];
    let keyed = match db.database().await.pool() {
        Pool::Postgres(pg) => {
            let mut conn = pg.acquire().await.unwrap();
            client.enqueue_keyed(&mut *conn, &batch).await.unwrap()
        }
        Pool::Sqlite(lite) => {
            let mut conn = lite.acquire().await.unwrap();
            client.enqueue_keyed(&mut *conn, &batch).await.unwrap()
        }
    };
    assert_eq!(keyed.created, 2, "{keyed:?}");
    assert_eq!(keyed.ids.len(), 3);
    assert_eq!(
        keyed.ids[&Keyed::scope_of(&batch[2])],
        b.id,
        "B's own existing job"
    );
    for job in &batch {
        let id = keyed.ids[&Keyed::scope_of(job)];
        assert_eq!(store.job(id).await.unwrap().workspace_id, job.workspace_id);
    }
}

#[tokio::test]
async fn idempotency_keys_are_unique_per_workspace_postgres() {
    keys_are_scoped_per_workspace(Backend::Postgres).await;
}

#[tokio::test]
async fn idempotency_keys_are_unique_per_workspace_sqlite() {
    keys_are_scoped_per_workspace(Backend::Sqlite).await;
}

/// Workspace A holds jobs with the keys of B's schedule's next slots (as it could before
/// keys were scoped); the planner's run for B is still B's own job.
async fn the_planners_slot_job_is_not_squatted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let client = Client::builtin();
    let name = "ws_b:reports";
    let now = Utc::now().timestamp();
    for second in now - 2..now + 60 {
        let slot = chrono::DateTime::from_timestamp(second, 0).unwrap();
        let squat = noop(&client, Some("ws_a"), &idempotency_key(name, slot));
        assert!(store.enqueue(&squat).await.unwrap().created);
    }
    let schedules = Schedules::new(store.clone());
    let mut schedule = NewSchedule::new(name, "* * * * * *", "noop");
    schedule.workspace_id = Some("ws_b".to_owned());
    schedules.upsert(&schedule).await.unwrap();

    // The planner runs here, in the test, a second ahead: the next slot is due by then.
    let manual = ManualClock::new(Utc::now() + chrono::Duration::seconds(1));
    let mut planner = Planner::new(
        schedules.clone(),
        Routes::builtin(),
        PlannerConfig {
            clock: manual.clock(),
            ..PlannerConfig::default()
        },
    );
    planner.run_once().await.expect("plan");
    let job_id = schedules
        .get(name)
        .await
        .expect("schedule")
        .last_job_id
        .expect("the planner ran a slot");
    let job = store.job(job_id).await.unwrap();
    assert_eq!(job.workspace_id.as_deref(), Some("ws_b"), "{job:?}");
    assert!(
        job.idempotency_key
            .unwrap()
            .starts_with("schedule:ws_b:reports:")
    );
}

#[tokio::test]
async fn the_planners_slot_job_is_not_squatted_postgres() {
    the_planners_slot_job_is_not_squatted(Backend::Postgres).await;
}

#[tokio::test]
async fn the_planners_slot_job_is_not_squatted_sqlite() {
    the_planners_slot_job_is_not_squatted(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_jobs_api_scopes_keys_refuses_what_it_does_not_know_and_honours_priority() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let http = reqwest::Client::new();
    let token = |ws: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", "admin", "--workspace", ws]))
            .trim()
            .to_owned()
    };
    let (token_a, token_b) = (token("ws_a"), token("ws_b"));
    let post = |token: &str, body: Value| {
        let request = http
            .post(format!("{base}/api/v1/jobs"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json body"))
        }
    };
    let job = |ws: &str, key: &str| json!({"kind": "noop", "workspace_id": ws, "args": {}, "idempotency_key": key});

    // A takes the key B will use; B is answered with its own job.
    let (_, of_a) = post(&token_a, job("ws_a", "invoice-7")).await;
    let (status, of_b) = post(&token_b, job("ws_b", "invoice-7")).await;
    assert_eq!((status, &of_b["duplicate"]), (202, &json!(false)), "{of_b}");
    assert_ne!(of_a["id"], of_b["id"]);
    let (_, again) = post(&token_b, job("ws_b", "invoice-7")).await;
    assert_eq!(
        (&again["id"], &again["duplicate"]),
        (&of_b["id"], &json!(true))
    );

    // Priority is stored as asked.
    let mut urgent = job("ws_a", "urgent-1");
    urgent["priority"] = json!(-3);
    let (status, body) = post(&token_a, urgent).await;
    assert_eq!(status, 202, "{body}");
    let id = hangar_workers::job::JobId(body["id"].as_i64().expect("id"));
    assert_eq!(store.job(id).await.unwrap().priority, -3);

    let long_key = "k".repeat(6 * 1024);
    let refused = [
        (
            json!({"bogus_field": 1}),
            r#"unknown field "bogus_field" in job"#,
        ),
        (
            json!({"priority": 40000}),
            "field job.priority: expected an integer",
        ),
        (
            json!({"kind": "alert_webhook", "args": {"alert_id": 1, "channel_id": "ach_1",
            "event": "opened"}}),
            "job kind 'alert_webhook' is internal",
        ),
        (
            json!({"idempotency_key": "schedule:ws_a:x:2026-01-01T00:00:00Z"}),
            "keys starting with 'schedule:' are reserved",
        ),
        (
            json!({"idempotency_key": "alert:1:ach_1:opened"}),
            "keys starting with 'alert:'",
        ),
        (
            json!({"idempotency_key": long_key}),
            "field job.idempotency_key: 6144 bytes, over the limit of 255",
        ),
    ];
    for (change, says) in refused {
        let mut body = job("ws_a", "k-1");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, error) = post(&token_a, body).await;
        assert_eq!(status, 422, "{says}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {error}");
    }

    // The list refuses what it does not support, by name.
    let response = http
        .get(format!("{base}/api/v1/jobs?limit=5&offset=10"))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `offset`")),
        "{error}"
    );
}

#[tokio::test]
async fn the_cli_refuses_internal_kinds_reserved_keys_and_long_identifiers() {
    let db = TestDb::new(Backend::Sqlite).await;
    let _ = db.store().await;
    let long = "w".repeat(256);
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "enqueue",
                "alert_slack",
                "--args",
                r#"{"alert_id":1,"channel_id":"c","event":"opened"}"#,
            ],
            "job kind 'alert_slack' is internal",
        ),
        (
            &["enqueue", "noop", "--idempotency-key", "hangar:mine"],
            "--idempotency-key: keys starting with 'hangar:' are reserved",
        ),
        (
            &["enqueue", "noop", "--workspace", &long],
            "field --workspace: 256 bytes, over the limit of 255",
        ),
        (&["enqueue", "noop", "--priority", "40000"], "--priority"),
    ];
    for (args, says) in cases {
        let out = db.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let id = stdout_ok(&db.run(&["enqueue", "noop", "--priority", "-3", "--workspace", "ws_1"]));
    assert!(id.trim().parse::<i64>().is_ok(), "{id}");
}

/// An `alert_webhook` job of workspace A that names B's alert and A's own channel (what a
/// caller could enqueue before kinds were internal) fails as a client error; nothing is sent.
async fn a_notice_never_crosses_workspaces(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    db.pools(
        r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
poll_interval_ms = 100
max_attempts = 1

[[pool]]
name = "alerts"
queue = "alerts"
kinds = ["alert_slack", "alert_email", "alert_webhook"]
poll_interval_ms = 100
"#,
    );
    let receiver = Receiver::start().await;
    let channel = stdout_ok(&db.run(&[
        "alerts",
        "channels",
        "add",
        "webhook",
        "--url",
        &receiver.url("/hook-a"),
        "--secret",
        "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy1sb25nIQ==",
        "--workspace",
        "ws_a",
    ]))
    .trim()
    .to_owned();
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_ALERT_TICK_MS", "100");
    let _serve = db.spawn_command("serve", command);

    // B's failing job opens an alert of B.
    let mut failing = NewJob::new("http", json!({"url": receiver.url("/flaky/b/9/400")}));
    failing.workspace_id = Some("ws_b".into());
    failing.max_attempts = 1;
    store.enqueue(&failing).await.unwrap();
    let alert = wait_for("B's alert", Duration::from_secs(20), || async {
        let alerts = store.alerts(false).await.ok()?;
        alerts
            .into_iter()
            .find(|a| a.workspace_id.as_deref() == Some("ws_b"))
    })
    .await;

    let mut notice = NewJob::new(
        "alert_webhook",
        json!({"alert_id": alert.id, "channel_id": channel, "event": "opened"}),
    );
    notice.queue = "alerts".into();
    notice.workspace_id = Some("ws_a".into());
    let id = store.enqueue(&notice).await.unwrap().id;
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let attempt = job.attempts.last().expect("an attempt");
    assert_eq!(
        attempt.error_class.map(|c| c.as_str()),
        Some("client"),
        "{attempt:?}"
    );
    assert!(
        attempt
            .error
            .as_deref()
            .is_some_and(|e| e.contains("the alert belongs to workspace 'ws_b'")),
        "{attempt:?}"
    );
    assert!(
        receiver.hits_on("/hook-a").is_empty(),
        "B's alert reached A's channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_notice_never_crosses_workspaces_postgres() {
    a_notice_never_crosses_workspaces(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_notice_never_crosses_workspaces_sqlite() {
    a_notice_never_crosses_workspaces(Backend::Sqlite).await;
}
