//! The files of `deploy/` hold against the real binary: the systemd units pass `systemd-analyze
//! verify` (where it is installed) with the commands they start accepted by `hangar`, and
//! every metric the Prometheus rules and the Grafana dashboard name is exported by a running
//! Hangar's `/metrics` once it has done some work (jobs, a retry, ingress entries, a dead
//! letter, planned slots, webhook deliveries).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{BIN, Backend, TestDb, TestRedis, stdout_ok};
use crate::webhooks_support::{Hangar, POOLS, event, token, until};

/// The repository's `deploy/` folder.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The units, as shipped.
const UNITS: [&str; 3] = [
    "hangar.service",
    "hangar-migrate.service",
    "hangar-worker@.service",
];

/// The program the units start.
const INSTALLED_BIN: &str = "/usr/local/bin/hangar";

#[test]
fn systemd_units_verify_and_start_real_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut commands = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            let args = line
                .strip_prefix(INSTALLED_BIN)
                .unwrap_or_else(|| panic!("{unit} starts {INSTALLED_BIN}: {line}"));
            commands.push(args.replace("%i", "default"));
        }
        // The test's binary stands in for the installed one.
        std::fs::write(dir.path().join(unit), text.replace(INSTALLED_BIN, BIN)).unwrap();
    }
    // Each command line the units run is one `hangar` accepts.
    assert_eq!(commands.len(), UNITS.len());
    for args in &commands {
        let mut words: Vec<&str> = args.split_whitespace().collect();
        words.push("--help");
        let out = Command::new(BIN).args(&words).output().unwrap();
        assert!(
            out.status.success(),
            "hangar{args} is refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        println!("skipped systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    // The man pages the units' Documentation= names, where `man` finds them.
    let man = dir.path().join("man");
    stdout_ok(
        &Command::new(BIN)
            .args(["man", "--dir"])
            .arg(man.join("man1"))
            .output()
            .unwrap(),
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("hangar.service"))
        .arg(dir.path().join("hangar-migrate.service"))
        .arg(dir.path().join("hangar-worker@default.service"))
        .env("MANPATH", &man)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned: {stderr}"
    );
}

/// Every `hangar_…` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hangar_") {
        let before = rest[..at].chars().last();
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // Not part of a longer word (`xhangar_…`).
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    names
}

/// The metric names a Prometheus text exposition exports (`# TYPE` lines and samples).
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_and_dashboard_name_only_exported_metrics() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/hangar-rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy().join("grafana/hangar.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(
        !parsed["panels"].as_array().unwrap().is_empty(),
        "the dashboard has panels"
    );
    let mut wanted = metric_names(&rules);
    let in_rules = wanted.len();
    wanted.extend(metric_names(&dashboard));
    assert!(in_rules >= 8, "the rules name Hangar's metrics: {wanted:?}");

    // A Hangar that does some of everything: jobs that complete and retry, Redis entries
    // and a dead letter, a schedule every second, webhook deliveries.
    let db = TestDb::new(Backend::Postgres).await;
    db.pools(POOLS);
    let schedules = db.dir.path().join("schedules");
    std::fs::create_dir_all(&schedules).unwrap();
    std::fs::write(
        schedules.join("tick.toml"),
        "[[schedule]]\nname = \"tick\"\ncron = \"* * * * * *\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let redis = TestRedis::new();
    let mut command = db.command(&["serve", "--bind", crate::support::ANY_PORT]);
    command.env("HANGAR_SCHEDULES_DIR", &schedules);
    redis.env(&mut command);
    let hangar = Hangar::start_with(&db, command).await;
    let owner = token(&db, "owner");

    stdout_ok(&db.run(&["enqueue", "noop"]));
    // Nothing listens on port 1: a refused connection, retried.
    stdout_ok(&db.run(&[
        "enqueue",
        "http",
        "--args",
        r#"{"url":"http://127.0.0.1:1/"}"#,
    ]));
    redis.xadd(r#"{"kind":"job","job":{"kind":"noop","workspace_id":"ws_1","args":{},"idempotency_key":"deploy-1"}}"#);
    redis.xadd("not json");
    let receiver = Receiver::start().await;
    hangar
        .create(&owner, "ws_1", json!({"url": receiver.url("/ok")}))
        .await;
    hangar
        .publish(&owner, &event("evt_deploy", "trip.created", "ws_1"))
        .await;
    until("the delivery", || async {
        !receiver.hits_on("/ok").is_empty()
    })
    .await;

    let url = format!("{}/metrics", hangar.base);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let have = exported(&text);
        let missing: Vec<String> = wanted.difference(&have).cloned().collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported by a running Hangar: {missing:?}"
    );

    // promtool, where installed, also checks the rules' syntax and expressions.
    if Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(deploy().join("prometheus/hangar-rules.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check rules: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        println!("skipped promtool check rules: promtool is not installed");
    }
}
