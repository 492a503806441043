//! The logs as a journal or a collector receives them: off a terminal, with no
//! `HANGAR_LOG_FORMAT`, every line of `hangar serve` is one JSON object, and the lines an
//! attempt logs carry its job (id, kind, queue, attempt, workspace), on both backends.

use std::time::Duration;

use serde_json::Value;

use crate::support::{ANY_PORT, Backend, TestDb, stdout_ok, wait_for};

async fn json_lines_with_the_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(&crate::support::fast_pools("", ""));
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env_remove("HANGAR_LOG_FORMAT");
    let serve = db.spawn_command("serve", command);
    serve.address().await;
    // Nothing listens on port 1: the attempt fails and is retried, which is logged.
    let id = stdout_ok(&db.run(&[
        "enqueue",
        "http",
        "--args",
        r#"{"url":"http://127.0.0.1:1/"}"#,
        "--workspace",
        "ws_logs",
    ]))
    .trim()
    .parse::<i64>()
    .unwrap();
    let line = wait_for("the retry's log line", Duration::from_secs(30), || async {
        serve
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "attempt failed; retrying")
    })
    .await;
    let span = &line["span"];
    assert_eq!(span["name"], "job", "{line}");
    assert_eq!(span["job_id"], id, "{line}");
    assert_eq!(span["kind"], "http", "{line}");
    assert_eq!(span["queue"], "default", "{line}");
    assert_eq!(span["attempt"], 1, "{line}");
    assert_eq!(span["workspace"], "ws_logs", "{line}");
    assert_eq!(line["level"], "INFO");
    assert!(
        line["class"].is_string(),
        "the decision's own fields stay: {line}"
    );
    assert!(line["timestamp"].is_string());

    // Every line is JSON, the start-up lines included.
    let log = serve.log();
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(parsed["message"].is_string(), "{l}");
    }
    assert!(log.contains("listening on"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_with_the_job_postgres() {
    json_lines_with_the_job(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_with_the_job_sqlite() {
    json_lines_with_the_job(Backend::Sqlite).await;
}
