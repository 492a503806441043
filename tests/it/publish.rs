//! Jobs and events that come over HTTP (`POST /api/v1/events`, `/api/v1/jobs`) and from
//! Rust inside the caller's own transaction (`Client`).

use hangar_workers::client::Client;
use hangar_workers::db::Pool;
use hangar_workers::wire::{EventEnvelope, parse_event_body};
use serde_json::{Value, json};

use crate::ingress::{events, jobs_with_keys};
use crate::support::{Backend, TestDb, serve_http, stdout_ok};

#[tokio::test]
async fn http_ingress_answers_202_once_and_refuses_bad_bodies_with_the_error_body() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let http = reqwest::Client::new();
    let token = stdout_ok(&db.run(&["tokens", "create", "--role", "operator"]))
        .trim()
        .to_owned();
    let post = |path: &str, body: String| {
        let request = http
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .body(body);
        async move {
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json body"))
        }
    };

    let job = json!({"kind": "noop", "workspace_id": "ws_1", "args": {}, "idempotency_key": "h-1"});
    let (status, first) = post("/api/v1/jobs", job.to_string()).await;
    assert_eq!(
        (status, &first["duplicate"]),
        (202, &json!(false)),
        "{first}"
    );
    let (status, again) = post("/api/v1/jobs", job.to_string()).await;
    assert_eq!((status, &again["duplicate"]), (202, &json!(true)));
    assert_eq!(first["id"], again["id"], "the same job");
    assert_eq!(jobs_with_keys(&db).await, 1);

    let event = json!({"id": "evt_h", "type": "crew.training_due", "workspace_id": "ws_1",
        "timestamp": "2026-11-22T10:00:00Z", "data": {"crew_member_id": "cm_1"}});
    let (status, body) = post("/api/v1/events", event.to_string()).await;
    assert_eq!((status, &body["id"]), (202, &json!("evt_h")));
    let (_, body) = post("/api/v1/events", event.to_string()).await;
    assert_eq!(body["duplicate"], json!(true));
    assert_eq!(events(&db).await, 1);

    for (path, body, status, code, says) in [
        (
            "/api/v1/jobs",
            "{".to_owned(),
            400,
            "invalid_json",
            "not JSON",
        ),
        (
            "/api/v1/jobs",
            json!({"kind": "teleport", "workspace_id": "ws", "args": {},
            "idempotency_key": "k"})
            .to_string(),
            422,
            "invalid_job",
            "unknown job kind",
        ),
        (
            "/api/v1/events",
            json!({"id": "e", "type": "trip.created", "workspace_id": "ws",
            "timestamp": "2026-11-22T10:00:00Z", "data": {"passenger": {"name": "A B"}}})
            .to_string(),
            422,
            "invalid_event",
            "event.data.passenger.name",
        ),
        (
            "/api/v1/events",
            "x".repeat(300 * 1024),
            413,
            "too_large",
            "over the limit",
        ),
    ] {
        let (got, error) = post(path, body).await;
        assert_eq!(got, status, "{path}: {error}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{error}"
        );
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .contains(r#"hangar_ingress_entries_total{source="http",outcome="job_duplicate"} 1"#),
        "{metrics}"
    );
}

async fn client_writes_with_the_callers_transaction(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let client = Client::builtin();
    let mut job = client.job("noop", json!({})).expect("a noop job");
    job.workspace_id = Some("ws_1".to_owned());
    let event: EventEnvelope = parse_event_body(
        json!({"id": "evt_tx", "type": "trip.created", "workspace_id": "ws_1",
            "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_9"}})
        .to_string()
        .as_bytes(),
    )
    .expect("event");
    macro_rules! in_transaction {
        ($pool:expr, $commit:expr) => {{
            let mut tx = $pool.begin().await.expect("begin");
            let enqueued = client.enqueue(&mut *tx, &job).await.expect("enqueue");
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
            enqueued
        }};
    }
    let rolled_back = match db.database().await.pool() {
        Pool::Postgres(pg) => in_transaction!(pg, false),
        Pool::Sqlite(lite) => in_transaction!(lite, false),
    };
    assert!(
        store.job(rolled_back.id).await.is_err(),
        "a rolled-back enqueue leaves no job"
    );
    assert_eq!(events(&db).await, 0);
    let committed = match db.database().await.pool() {
        Pool::Postgres(pg) => in_transaction!(pg, true),
        Pool::Sqlite(lite) => in_transaction!(lite, true),
    };
    let stored = store.job(committed.id).await.expect("the committed job");
    assert_eq!(stored.kind, "noop");
    assert_eq!(stored.workspace_id.as_deref(), Some("ws_1"));
    assert_eq!(events(&db).await, 1);
}

#[tokio::test]
async fn client_enqueue_and_publish_commit_and_roll_back_with_the_caller_postgres() {
    client_writes_with_the_callers_transaction(Backend::Postgres).await;
}

#[tokio::test]
async fn client_enqueue_and_publish_commit_and_roll_back_with_the_caller_sqlite() {
    client_writes_with_the_callers_transaction(Backend::Sqlite).await;
}
