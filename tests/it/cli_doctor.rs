//! `hangar doctor` as an operator meets it, on both backends: a database not yet migrated
//! fails with the pending migrations named and the fix, a migrated one passes, a schema
//! migrated by a newer Hangar warns, and unreachable services, a missing key or bad
//! configuration fail with the right exit status.

use std::process::Output;

use serde_json::Value;

use crate::support::{Backend, TestDb, TestRedis};

/// The `--json` report and the exit status of `hangar doctor` with `extra` arguments.
fn doctor(db: &TestDb, extra: &[&str]) -> (Value, Option<i32>) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    report(&db.run(&args))
}

fn report(out: &Output) -> (Value, Option<i32>) {
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json prints JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.code())
}

/// The check named `name` in a report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

async fn from_unmigrated_to_ready(backend: Backend) {
    let db = TestDb::new(backend).await;
    if backend == Backend::Sqlite {
        // The SQLite file does not exist yet: doctor says so and creates nothing.
        let (report, status) = doctor(&db, &[]);
        assert_eq!(status, Some(1), "{report}");
        assert_eq!(check(&report, "database")["status"], "fail", "{report}");
        assert!(
            check(&report, "database")["fix"]
                .as_str()
                .unwrap()
                .contains("hangar migrate"),
            "{report}"
        );
        assert!(
            !db.dir.path().join("hangar.db").exists(),
            "doctor created the database"
        );
        // An empty file: reachable, nothing migrated.
        std::fs::File::create(db.dir.path().join("hangar.db")).unwrap();
    }
    let (report, status) = doctor(&db, &[]);
    assert_eq!(status, Some(1), "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(check(&report, "database")["status"], "ok", "{report}");
    let schema = check(&report, "schema");
    assert_eq!(schema["status"], "fail", "{report}");
    let message = schema["message"].as_str().unwrap();
    assert!(
        message.contains("0001_jobs") && message.contains("2001_api_tokens"),
        "the pending migrations are named: {message}"
    );
    assert!(schema["fix"].as_str().unwrap().contains("hangar migrate"));

    crate::support::stdout_ok(&db.run(&["migrate"]));
    let (report, status) = doctor(&db, &[]);
    assert_eq!(status, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    for name in ["configuration", "database", "schema", "master key", "pools"] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }
    let version = check(&report, "database")["message"].as_str().unwrap();
    let expected = match backend {
        Backend::Postgres => "postgres ",
        Backend::Sqlite => "sqlite 3.",
    };
    assert!(
        version.starts_with(expected),
        "the server version: {version}"
    );
    // The tests' processes may reach loopback: production should not.
    assert_eq!(check(&report, "private targets")["status"], "warn");

    // The text report: one line per check, the fix under a warning, a count at the end.
    let out = db.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("ok    schema")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("warn  private targets")),
        "{text}"
    );
    assert!(text.contains("fix: unset it in production"), "{text}");
    assert!(text.trim_end().ends_with("0 failure(s)"), "{text}");

    // A newer Hangar migrated this database: this binary still works but is behind.
    let future = match backend {
        Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'from a newer hangar', true, '\\x00'::bytea, 0)"
        }
        Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'from a newer hangar', 1, X'00', 0)"
        }
    };
    db.sql(future).await;
    let (report, status) = doctor(&db, &[]);
    assert_eq!(status, Some(0), "a warning is not a failure: {report}");
    let schema = check(&report, "schema");
    assert_eq!(schema["status"], "warn", "{report}");
    assert!(
        schema["message"].as_str().unwrap().contains("999"),
        "{schema}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_from_unmigrated_to_ready_postgres() {
    from_unmigrated_to_ready(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_from_unmigrated_to_ready_sqlite() {
    from_unmigrated_to_ready(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_redis_reachable_and_not() {
    let db = TestDb::new(Backend::Sqlite).await;
    crate::support::stdout_ok(&db.run(&["migrate"]));
    let redis = TestRedis::new();
    let mut command = db.command(&["doctor", "--json"]);
    redis.env(&mut command);
    let (report, status) = report(&command.output().unwrap());
    assert_eq!(status, Some(0), "{report}");
    let found = check(&report, "redis");
    assert_eq!(found["status"], "ok", "{report}");
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains(&redis.dead_stream()),
        "{found}"
    );

    // Nothing listens on port 1.
    let (report, status) = doctor(&db, &["--redis-url", "redis://127.0.0.1:1"]);
    assert_eq!(status, Some(1), "{report}");
    let found = check(&report, "redis");
    assert_eq!(found["status"], "fail", "{report}");
    assert!(found["fix"].as_str().unwrap().contains("HANGAR_REDIS_URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_without_database_or_key_on_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut command = db.command(&[
        "doctor",
        "--json",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/nowhere",
    ]);
    command.env_remove("HANGAR_MASTER_KEY");
    let (report, status) = report(&command.output().unwrap());
    assert_eq!(status, Some(1), "{report}");
    let database = check(&report, "database");
    assert_eq!(database["status"], "fail");
    assert!(
        database["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{database}"
    );
    let key = check(&report, "master key");
    assert_eq!(key["status"], "fail", "{report}");
    assert!(
        key["fix"]
            .as_str()
            .unwrap()
            .contains("hangar keys generate")
    );
    // Without a database, the schema is not checked at all.
    assert!(
        !report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "schema")
    );

    // A key that is not a key.
    let (report, status) = doctor(&db, &["--master-key", "not-a-key"]);
    assert_eq!(status, Some(1));
    assert_eq!(check(&report, "master key")["status"], "fail", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_configuration_that_does_not_load_with_status_2() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (report, status) = doctor(&db, &["--workers-dir", "/no/such/folder"]);
    assert_eq!(status, Some(2), "{report}");
    let config = check(&report, "configuration");
    assert_eq!(config["status"], "fail");
    assert!(
        config["message"]
            .as_str()
            .unwrap()
            .contains("--workers-dir"),
        "the message names the source and field: {config}"
    );

    // A pool file with a kind this binary has no handler for.
    db.pools("[[pool]]\nname = \"p\"\nqueue = \"default\"\nkinds = [\"noop\", \"no_such_kind\"]\n");
    let (report, status) = doctor(&db, &[]);
    assert_ne!(status, Some(0), "{report}");
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(
        failed
            .iter()
            .any(|c| c["message"].as_str().unwrap().contains("no_such_kind")),
        "{report}"
    );
}
