//! Secrets in job arguments: an `http` job's header values (`Authorization: Bearer …`) are
//! sealed with the master key at enqueue (API and CLI alike), sent as they were given, and
//! never shown: not in the database row, not in the API's job JSON for any role, not on the
//! dashboard, not by `hangar jobs show`. Args at all are for `operator` and up.

use std::time::Duration;

use hangar_workers::db::Pool;
use serde_json::{Value, json};

use crate::support::{
    Backend, Receiver, TestDb, dashboard_session, fast_pools, serve_http, stdout_ok, wait_for,
};

const SECRET: &str = "s3cret";

/// Every job's `args` as stored, as text.
async fn stored_args(db: &TestDb) -> Vec<String> {
    match db.database().await.pool() {
        Pool::Postgres(s) => sqlx::query_scalar("SELECT args::text FROM hangar_jobs")
            .fetch_all(s)
            .await
            .unwrap(),
        Pool::Sqlite(s) => sqlx::query_scalar("SELECT CAST(args AS TEXT) FROM hangar_jobs")
            .fetch_all(s)
            .await
            .unwrap(),
    }
}

async fn header_secrets(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    db.pools(&fast_pools("", ""));
    let receiver = Receiver::start().await;
    let (_serve, base) = serve_http(&db).await;
    let http = reqwest::Client::new();
    let token = |role: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let roles = ["owner", "admin", "safety_manager", "operator", "viewer"];
    let tokens: Vec<(&str, String)> = roles.iter().map(|r| (*r, token(r))).collect();
    let operator = &tokens[3].1;

    // Over the API.
    let response = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(operator)
        .json(
            &json!({"kind": "http", "workspace_id": "ws_1", "idempotency_key": "api-1",
            "args": {"url": receiver.url("/from-api"),
                     "headers": {"Authorization": format!("Bearer {SECRET}"), "X-Trace": "t-1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let api_id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // Over the CLI.
    let args = json!({"url": receiver.url("/from-cli"),
        "headers": {"Authorization": format!("Bearer {SECRET}")}})
    .to_string();
    let out = db.run(&["enqueue", "http", "--args", &args, "--workspace", "ws_1"]);
    let cli_id: i64 = stdout_ok(&out).trim().parse().unwrap();

    // The receiver gets the header as it was given.
    for path in ["/from-api", "/from-cli"] {
        let hit = wait_for(path, Duration::from_secs(20), || async {
            receiver.hits_on(path).into_iter().next()
        })
        .await;
        assert_eq!(hit.headers["authorization"], format!("Bearer {SECRET}"));
    }
    assert_eq!(receiver.hits_on("/from-api")[0].headers["x-trace"], "t-1");

    // The rows hold sealed values only.
    let rows = stored_args(&db).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(!row.contains(SECRET), "stored in the clear: {row}");
        assert!(row.contains("hk1:"), "not sealed: {row}");
    }

    // The API: header names with "<redacted>" for operator and up; no args for a viewer.
    for (role, token) in &tokens {
        for id in [api_id, cli_id] {
            let one = http
                .get(format!("{base}/api/v1/jobs/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(!one.contains(SECRET), "{role} sees the secret: {one}");
            let job: Value = serde_json::from_str(&one).unwrap();
            if *role == "viewer" {
                assert_eq!(job["args"], Value::Null, "{one}");
            } else {
                assert_eq!(
                    job["args"]["headers"]["Authorization"], "<redacted>",
                    "{one}"
                );
                assert!(job["args"]["url"].as_str().unwrap().contains("/from-"));
            }
        }
        let list = http
            .get(format!("{base}/api/v1/jobs"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !list.contains(SECRET),
            "{role} sees the secret in the list: {list}"
        );
        let list: Vec<Value> = serde_json::from_str(&list).unwrap();
        assert_eq!(list.len(), 2);
        assert!(
            list.iter()
                .all(|j| (*role == "viewer") == j["args"].is_null()),
            "{role}: {list:?}"
        );
        // The dashboard's job page.
        let session = dashboard_session(&base, token).await;
        let page = http
            .get(format!("{base}/jobs/{api_id}"))
            .header("cookie", format!("hangar_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{role}");
        let page = page.text().await.unwrap();
        assert!(!page.contains(SECRET), "{role} sees the secret on the page");
        assert_eq!(
            page.contains("&lt;redacted&gt;"),
            *role != "viewer",
            "{role}"
        );
    }
    let retried = http
        .post(format!("{base}/api/v1/jobs/{api_id}/retry"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!retried.contains(SECRET), "{retried}");

    // The CLI.
    for args in [
        vec!["jobs", "show", &api_id.to_string()],
        vec!["jobs", "show", &cli_id.to_string(), "--json"],
        vec!["jobs", "list", "--json"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = stdout_ok(&db.run(&args));
        assert!(!out.contains(SECRET), "{args:?}: {out}");
        assert!(out.contains("<redacted>"), "{args:?}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_values_are_sealed_and_never_shown_postgres() {
    header_secrets(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_values_are_sealed_and_never_shown_sqlite() {
    header_secrets(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_a_job_with_headers_is_refused_not_stored_in_the_clear() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await;
    let args = json!({"url": "https://example.com/hook",
        "headers": {"Authorization": format!("Bearer {SECRET}")}})
    .to_string();
    let mut command = db.command(&["enqueue", "http", "--args", &args]);
    command.env_remove("HANGAR_MASTER_KEY");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("headers") && stderr.contains("HANGAR_MASTER_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(stored_args(&db).await.is_empty());
    // Without headers nothing needs the key.
    let mut command = db.command(&[
        "enqueue",
        "http",
        "--args",
        r#"{"url":"https://example.com/x"}"#,
    ]);
    command.env_remove("HANGAR_MASTER_KEY");
    stdout_ok(&command.output().unwrap());
}
