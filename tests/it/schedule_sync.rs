//! File schedules are upserted by every process that starts a planner and deleted only on an
//! operator's explicit `hangar schedules sync --prune`: two planners with different files
//! started at the same moment both keep running and both sets of schedules stay; a process
//! without schedule files deletes nothing; API schedules are never touched.

use std::time::Duration;

use hangar_schedules::{NewSchedule, Schedules};

use crate::planner::{fleet, list_json, schedule_file, sync_with_a_planner};
use crate::support::{Backend, TestDb, stdout_ok, wait_for};

/// `n` hourly schedules named `<prefix>-<i>`.
fn named(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[schedule]]\nname = \"{prefix}-{i}\"\nfrequency = \"hourly\"\nkind = \"noop\"\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of the stored schedules whose name starts with `prefix`.
fn names_with(rows: &[serde_json::Value], prefix: &str) -> usize {
    rows.iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with(prefix))
        .count()
}

async fn concurrent_starts(backend: Backend) {
    const N: usize = 300;
    let db = TestDb::new(backend).await;
    db.store().await;
    let mut planners = Vec::new();
    for team in ["alpha", "bravo"] {
        let dir = db.dir.path().join(format!("schedules-{team}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("team.toml"), named(team, N)).unwrap();
        let mut command = db.command(&["planner", "--bind", "127.0.0.1:0"]);
        command.env("HANGAR_SCHEDULES_DIR", &dir);
        planners.push(command);
    }
    // Both at the same moment.
    let mut planners: Vec<_> = planners
        .into_iter()
        .enumerate()
        .map(|(i, command)| db.spawn_command(&format!("planner{i}"), command))
        .collect();
    for planner in &planners {
        wait_for("the planner's sync", Duration::from_secs(30), || async {
            planner
                .log()
                .contains("file schedules synced")
                .then_some(())
        })
        .await;
    }
    // Let a wrongly deleting planner finish its delete.
    let rows = wait_for(
        "both sets of schedules",
        Duration::from_secs(10),
        || async {
            let rows = list_json(&db);
            (names_with(&rows, "alpha-") == N && names_with(&rows, "bravo-") == N).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 2 * N);
    for planner in &mut planners {
        assert!(
            planner.child.try_wait().unwrap().is_none(),
            "a planner exited: {}",
            planner.log()
        );
        let log = planner.log();
        assert!(!log.contains("deadlock"), "{log}");
        assert!(planner.terminate().success(), "{log}");
    }
    // Still both after they stopped.
    assert_eq!(list_json(&db).len(), 2 * N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_planners_with_different_files_started_at_once_keep_both_postgres() {
    concurrent_starts(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_planners_with_different_files_started_at_once_keep_both_sqlite() {
    concurrent_starts(Backend::Sqlite).await;
}

async fn removal_is_explicit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let schedules = Schedules::new(store);
    let mut api = NewSchedule::new("ws_1:quickbooks:payments", "hourly", "noop");
    api.workspace_id = Some("ws_1".into());
    api.integration = Some("quickbooks".into());
    api.data_type = Some("payments".into());
    schedules.upsert(&api).await.unwrap();
    schedule_file(&db, "a.toml", &fleet(3));
    let rows = sync_with_a_planner(&db, 4).await;
    assert_eq!(
        rows.iter().filter(|r| r["source"] == "file").count(),
        3,
        "{rows:?}"
    );

    // Two schedules leave the files: a restart keeps them and says so.
    schedule_file(&db, "a.toml", &fleet(1));
    let mut planner = db.spawn("planner", &["planner", "--bind", "127.0.0.1:0"]);
    wait_for("the sync", Duration::from_secs(30), || async {
        planner
            .log()
            .contains("file schedules synced")
            .then_some(())
    })
    .await;
    assert!(planner.terminate().success(), "{}", planner.log());
    assert!(
        planner.log().contains("hangar schedules sync --prune"),
        "{}",
        planner.log()
    );
    assert_eq!(list_json(&db).len(), 4);

    // A process started in a folder without schedule files deletes nothing either.
    let empty = tempfile::tempdir().unwrap();
    let mut command = db.command(&["planner", "--bind", "127.0.0.1:0"]);
    command.current_dir(empty.path());
    let mut elsewhere = db.spawn_command("elsewhere", command);
    wait_for("the sync", Duration::from_secs(30), || async {
        elsewhere
            .log()
            .contains("file schedules synced")
            .then_some(())
    })
    .await;
    assert!(elsewhere.terminate().success(), "{}", elsewhere.log());
    assert_eq!(list_json(&db).len(), 4);

    // Without --prune, `schedules sync` only reports them.
    let out = db.run(&["schedules", "sync"]);
    assert!(stdout_ok(&out).contains("deleted 0"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 file schedule(s)"));
    assert_eq!(list_json(&db).len(), 4);

    // --prune deletes the file schedules the files do not declare, and only those.
    let out = db.run(&["schedules", "sync", "--prune", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(report["deleted"], 2, "{report}");
    let rows = list_json(&db);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fleet-0", "ws_1:quickbooks:payments"]);
    assert_eq!(rows[1]["source"], "api");
    assert_eq!(rows[1]["workspace_id"], "ws_1");

    // A file may not take over an API schedule's name.
    schedule_file(
        &db,
        "a.toml",
        "[[schedule]]\nname = \"ws_1:quickbooks:payments\"\nfrequency = \"daily\"\nkind = \"noop\"\n",
    );
    let out = db.run(&["planner", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "schedule 'ws_1:quickbooks:payments': name: already used by a schedule from the API"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_schedules_leave_only_by_schedules_sync_prune_postgres() {
    removal_is_explicit(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_schedules_leave_only_by_schedules_sync_prune_sqlite() {
    removal_is_explicit(Backend::Sqlite).await;
}
