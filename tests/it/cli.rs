//! The binary as a user meets it: `hangar serve` on the SQLite default in an empty folder,
//! the health and metrics endpoints, the operator commands, and bad input (exit status 2,
//! one clear message, nothing written).

use std::process::Command;
use std::time::Duration;

use crate::support::{ANY_PORT, BIN, Backend, TestDb, stdout_ok, wait_for};

/// `hangar ARGS` in `dir` with no Hangar variables at all: the defaults.
fn bare(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") {
            command.env_remove(key);
        }
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_the_sqlite_default_in_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = crate::support::Proc {
        child: bare(dir.path(), &["serve", "--bind", ANY_PORT])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };
    let base = format!("http://{}", serve.address().await);
    wait_for(
        "serve to answer /readyz",
        Duration::from_secs(20),
        || async {
            let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    assert!(
        dir.path().join("hangar.db").exists(),
        "the database file was created"
    );

    let out = bare(dir.path(), &["enqueue", "noop", "--args", "{}"])
        .output()
        .unwrap();
    let id = stdout_ok(&out).trim().to_owned();
    assert!(
        id.parse::<i64>().is_ok(),
        "enqueue prints the job id, got {id:?}"
    );
    let job: serde_json::Value =
        wait_for("the job to complete", Duration::from_secs(20), || async {
            let out = bare(dir.path(), &["jobs", "show", &id, "--json"])
                .output()
                .ok()?;
            let job: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (job["state"] == "completed").then_some(job)
        })
        .await;
    for field in [
        "id",
        "kind",
        "queue",
        "state",
        "attempt",
        "max_attempts",
        "priority",
        "run_at",
        "created_at",
        "updated_at",
        "workspace_id",
        "idempotency_key",
        "args",
        "last_error",
        "attempts",
    ] {
        assert!(job.get(field).is_some(), "job JSON lacks {field}: {job}");
    }
    assert_eq!(job["attempts"][0]["attempt"], 1);

    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hangar_queue_depth{queue=\"default\""),
        "{metrics}"
    );
    assert!(metrics.contains("hangar_jobs_total"), "{metrics}");
    assert!(
        metrics.contains("hangar_attempt_duration_seconds"),
        "{metrics}"
    );

    let list = stdout_ok(
        &bare(dir.path(), &["jobs", "list", "--json"])
            .output()
            .unwrap(),
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let status = serve.terminate();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
}

fn assert_exit2(output: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr:?}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one clear message, got {stderr:?}"
    );
}

#[tokio::test]
async fn bad_input_exits_2_and_writes_nothing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;

    assert_exit2(
        &db.run(&["enqueue", "noop", "--args", "{not json"]),
        "--args: not valid JSON",
    );
    assert_exit2(
        &db.run(&["enqueue", "noop", "--args", "[1]"]),
        "--args: must be a JSON object",
    );
    assert_exit2(
        &db.run(&["enqueue", "teleport"]),
        "unknown job kind 'teleport'",
    );
    assert_exit2(
        &db.run(&["enqueue", "noop", "--queue", "nowhere"]),
        "unknown queue 'nowhere'",
    );
    assert_exit2(
        &db.run(&["enqueue", "http", "--args", r#"{"url":"ftp://x"}"#]),
        "scheme must be http or https",
    );
    assert_exit2(
        &db.run(&[
            "enqueue",
            "http",
            "--args",
            r#"{"url":"http://x","colour":1}"#,
        ]),
        "unknown field `colour`",
    );
    assert_exit2(
        &db.run(&["enqueue", "noop", "--run-at", "tomorrow"]),
        "--run-at",
    );
    assert_exit2(
        &db.run(&["jobs", "list", "--state", "sleeping"]),
        "unknown job state 'sleeping'",
    );
    let all = store
        .jobs(&hangar_workers::job::JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty(), "bad input wrote jobs: {all:?}");

    let unreachable = db
        .command(&["enqueue", "noop"])
        .env(
            "HANGAR_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nothing",
        )
        .output()
        .unwrap();
    assert_exit2(
        &unreachable,
        "cannot connect to postgres://postgres@127.0.0.1:1/nothing: connection refused",
    );
    let wrong = db
        .command(&["migrate"])
        .env("HANGAR_DATABASE_URL", "mysql://root:hunter2@localhost/db")
        .output()
        .unwrap();
    assert_exit2(&wrong, "unsupported database URL");
    assert!(
        !String::from_utf8_lossy(&wrong.stderr).contains("hunter2"),
        "the password was printed"
    );
}

#[tokio::test]
async fn a_bad_pool_file_exits_2_naming_file_and_field() {
    let db = TestDb::new(Backend::Sqlite).await;
    let cases = [
        (
            "[[pool]]\nname = \"p\"\nkinds = [\"noop\"]\nconcurrency = 0\n",
            "pool 'p': concurrency: 0 is out of range",
        ),
        (
            "[[pool]]\nname = \"p\"\nkinds = [\"noop\"]\nconcurency = 5\n",
            "unknown field `concurency`",
        ),
        (
            "[[pool]]\nname = \"p\"\nkinds = [\"teleport\"]\n",
            "unknown job kind 'teleport'",
        ),
        (
            "[[pool]]\nname = \"p\"\nkinds = []\n",
            "kinds: list at least one job kind",
        ),
        (
            "[[pool]]\nname = \"p\"\nkinds = [\"noop\"]\n[pool.retry.server]\nbase_delay_ms = 10\nmax_delay_ms = 5\n",
            "retry.server.max_delay_ms",
        ),
        ("[[pool]\nname = \"p\"", "line 1"),
    ];
    for (toml, needle) in cases {
        let dir = db.pools(toml);
        let out = db.run(&["worker", "--bind", "127.0.0.1:0"]);
        assert_exit2(&out, needle);
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&dir.join("pools.toml").display().to_string()),
            "the message names the file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn only_migrate_and_serve_change_the_schema() {
    // SQLite: a missing file is not created by a worker or an operator command.
    let db = TestDb::new(Backend::Sqlite).await;
    for args in [
        &["worker", "--bind", "127.0.0.1:0"][..],
        &["enqueue", "noop"],
        &["jobs", "list"],
    ] {
        assert_exit2(&db.run(args), "no database at");
    }
    assert!(
        !db.dir.path().join("hangar.db").exists(),
        "a command created the database file"
    );

    // PostgreSQL: an empty database is not migrated behind the operator's back.
    let pg = TestDb::new(Backend::Postgres).await;
    assert_exit2(&pg.run(&["enqueue", "noop"]), "run `hangar migrate` first");
    assert_exit2(
        &pg.run(&["worker", "--bind", "127.0.0.1:0"]),
        "run `hangar migrate` first",
    );
    let migrated = pg.run(&["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let id = stdout_ok(&pg.run(&["enqueue", "noop"]));
    assert!(id.trim().parse::<i64>().is_ok());
}
