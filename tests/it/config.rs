//! Configuration as a user meets it: one layered configuration (flag > environment >
//! `hangar.toml` > default) whose errors name the source and the field and exit with status 2,
//! and subcommands that show and accept only the options they use.

use std::process::{Command, Output};

use hangar_workers::job::NewJob;

use crate::support::{BIN, Backend, TestDb, stdout_ok};

/// An unreachable PostgreSQL URL whose database name says which layer it was given in.
fn unreachable(layer: &str) -> String {
    format!("postgres://postgres@127.0.0.1:1/from_{layer}")
}

/// `hangar ARGS` in the test's folder with no database in the environment.
fn hangar(db: &TestDb, args: &[&str]) -> Command {
    let mut command = db.command(args);
    command.env_remove("HANGAR_DATABASE_URL");
    command
}

fn write_config(db: &TestDb, text: &str) {
    std::fs::write(db.dir.path().join("hangar.toml"), text).expect("write hangar.toml");
}

/// Exit status 2 and one line on stderr that contains `needle`.
fn assert_config_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr:?}");
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr:?}");
}

/// The ids `hangar jobs list --json` prints.
fn listed_ids(output: &Output) -> Vec<i64> {
    let list: serde_json::Value = serde_json::from_str(&stdout_ok(output)).expect("JSON list");
    list.as_array()
        .expect("an array")
        .iter()
        .filter_map(|job| job["id"].as_i64())
        .collect()
}

async fn precedence_on(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .expect("enqueue")
        .id
        .0;
    let good = db.url.as_str();
    let toml = |url: &str| format!("database_url = \"{url}\"\n");

    // hangar.toml over the default.
    write_config(&db, &toml(&unreachable("file")));
    let out = hangar(&db, &["jobs", "list", "--json"]).output().unwrap();
    assert_config_error(&out, "from_file");
    write_config(&db, &toml(good));
    let out = hangar(&db, &["jobs", "list", "--json"]).output().unwrap();
    assert_eq!(listed_ids(&out), vec![id]);

    // The environment over hangar.toml.
    let out = hangar(&db, &["jobs", "list", "--json"])
        .env("HANGAR_DATABASE_URL", unreachable("env"))
        .output()
        .unwrap();
    assert_config_error(&out, "from_env");

    // The flag over the environment (and the file).
    let out = hangar(&db, &["jobs", "list", "--json", "--database-url", good])
        .env("HANGAR_DATABASE_URL", unreachable("env"))
        .output()
        .unwrap();
    assert_eq!(listed_ids(&out), vec![id]);
    write_config(&db, &toml(&unreachable("file")));
    let flag = unreachable("flag");
    let out = hangar(&db, &["jobs", "list", "--database-url", &flag])
        .env("HANGAR_DATABASE_URL", good)
        .output()
        .unwrap();
    assert_config_error(&out, "from_flag");
}

#[tokio::test]
async fn precedence_flag_over_environment_over_file_over_default_on_postgres() {
    precedence_on(Backend::Postgres).await;
}

#[tokio::test]
async fn precedence_flag_over_environment_over_file_over_default_on_sqlite() {
    precedence_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn without_any_layer_the_default_database_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command.args(["migrate"]).current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") {
            command.env_remove(key);
        }
    }
    stdout_ok(&command.output().unwrap());
    assert!(
        dir.path().join("hangar.db").exists(),
        "the default sqlite://hangar.db was created"
    );
}

async fn bad_values_name_their_source_on(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    let list = ["jobs", "list"];

    // hangar.toml: the file and the key.
    write_config(&db, "bind = \"nope\"\n");
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(
        &out.unwrap(),
        "hangar.toml: bind: invalid socket address \"nope\"",
    );
    write_config(
        &db,
        "redis_url = \"redis://127.0.0.1:6379\"\ningress_batch = 0\n",
    );
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(
        &out.unwrap(),
        "hangar.toml: ingress_batch: 0 is out of range",
    );
    write_config(&db, "alert_tick_ms = \"soon\"\n");
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(
        &out.unwrap(),
        "hangar.toml: alert_tick_ms: expected a whole number, found string \"soon\"",
    );
    write_config(&db, "bnid = \"127.0.0.1:8080\"\n");
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(&out.unwrap(), "hangar.toml: bnid: unknown setting");
    // --config names the file it was given.
    let other = db.dir.path().join("other.toml");
    std::fs::write(&other, "public_url = \"ftp://hangar\"\n").unwrap();
    let out = hangar(&db, &["--config", other.to_str().unwrap(), "jobs", "list"])
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(
        &out.unwrap(),
        &format!("{}: public_url: 'ftp://hangar' is not", other.display()),
    );
    std::fs::remove_file(db.dir.path().join("hangar.toml")).unwrap();

    // The environment: the variable.
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .env("HANGAR_BIND", "nope")
        .output();
    assert_config_error(
        &out.unwrap(),
        "HANGAR_BIND: invalid socket address \"nope\"",
    );
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", &db.url)
        .env("HANGAR_REDIS_URL", "redis://127.0.0.1:6379")
        .env("HANGAR_INGRESS_BATCH", "many")
        .output();
    assert_config_error(
        &out.unwrap(),
        "HANGAR_INGRESS_BATCH: expected a whole number, found string \"many\"",
    );
    let out = hangar(&db, &list)
        .env("HANGAR_DATABASE_URL", "mysql://root@localhost/db")
        .output();
    assert_config_error(
        &out.unwrap(),
        "HANGAR_DATABASE_URL: unsupported database URL",
    );

    // The command line: the flag.
    let out = hangar(&db, &["serve", "--bind", "nope"])
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(&out.unwrap(), "--bind: invalid socket address \"nope\"");
    let out = hangar(&db, &["serve", "--alert-tick-ms", "5"])
        .env("HANGAR_DATABASE_URL", &db.url)
        .output();
    assert_config_error(&out.unwrap(), "--alert-tick-ms: 5 is out of range");
    let out = hangar(&db, &["jobs", "list", "--database-url", "mysql://x"]).output();
    assert_config_error(&out.unwrap(), "--database-url: unsupported database URL");
}

#[tokio::test]
async fn a_bad_value_names_its_source_and_field_on_postgres() {
    bad_values_name_their_source_on(Backend::Postgres).await;
}

#[tokio::test]
async fn a_bad_value_names_its_source_and_field_on_sqlite() {
    bad_values_name_their_source_on(Backend::Sqlite).await;
}

/// `hangar ARGS --help`, its output.
fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    stdout_ok(&out)
}

#[test]
fn each_subcommand_shows_only_the_options_it_uses() {
    let bench = help(&["bench", "throughput"]);
    for shown in ["--database-url", "--jobs", "--concurrency", "--config"] {
        assert!(bench.contains(shown), "{shown} in {bench}");
    }
    for hidden in [
        "redis",
        "Redis",
        "master",
        "alert",
        "--bind",
        "--public-url",
    ] {
        assert!(!bench.contains(hidden), "{hidden} in {bench}");
    }

    let worker = help(&["worker"]);
    for shown in [
        "--pool",
        "--bind",
        "--database-url",
        "--workers-dir",
        "--master-key",
    ] {
        assert!(worker.contains(shown), "{shown} in {worker}");
    }
    assert!(!worker.contains("--schedules-dir"), "{worker}");

    let serve = help(&["serve"]);
    for shown in [
        "--bind",
        "--database-url",
        "--workers-dir",
        "--schedules-dir",
        "--redis-url",
        "--allow-private-targets",
        "--master-key",
        "--public-url",
        "--alert-tick-ms",
    ] {
        assert!(serve.contains(shown), "{shown} in {serve}");
    }

    let tokens = help(&["tokens", "create"]);
    assert!(tokens.contains("--database-url"), "{tokens}");
    assert!(!tokens.contains("--master-key"), "{tokens}");
    assert!(!tokens.contains("--redis-url"), "{tokens}");
}

#[test]
fn a_subcommand_refuses_an_option_it_does_not_use() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "throughput",
            "--redis-url",
            "redis://127.0.0.1:6379",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--redis-url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn setting_flags_are_taken_before_the_subcommand_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("before.db").display());
    for args in [
        vec!["--database-url", url.as_str(), "migrate"],
        vec!["--database-url", url.as_str(), "jobs", "list"],
        vec!["jobs", "list", "--database-url", url.as_str()],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("HANGAR_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("before.db").exists());
    assert!(!dir.path().join("hangar.db").exists());
}
