//! The cron planner as a user meets it: `hangar planner` processes (several at once) and
//! `hangar serve` planning schedule files and database schedules on PostgreSQL and SQLite;
//! one job per slot, one catch-up run after downtime, skips while a run is still active,
//! offsets that spread a fleet, bad schedule files, and `hangar schedules list`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::clock::ManualClock;
use hangar_workers::db::Pool;
use hangar_workers::job::{Job, JobFilter};
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;

use crate::support::{ANY_PORT, Backend, TestDb, stdout_ok, wait_final, wait_for};

/// Writes `schedules/NAME` in the test's folder (the processes run there and read
/// `./schedules` by default).
pub(crate) fn schedule_file(db: &TestDb, name: &str, toml: &str) {
    let dir = db.dir.path().join("schedules");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), toml).unwrap();
}

async fn jobs(store: &Store) -> Vec<Job> {
    store
        .jobs(&JobFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list jobs")
}

/// The slot named by a planner job's idempotency key `schedule:<name>:<slot>`.
fn slot_of(key: &str, name: &str) -> DateTime<Utc> {
    let slot = key
        .strip_prefix(&format!("schedule:{name}:"))
        .unwrap_or_else(|| panic!("key {key:?} is not a planner key of {name}"));
    DateTime::parse_from_rfc3339(slot)
        .expect("RFC 3339 slot")
        .with_timezone(&Utc)
}

/// `hangar schedules list --json`.
pub(crate) fn list_json(db: &TestDb) -> Vec<serde_json::Value> {
    let out = db.run(&["schedules", "list", "--json"]);
    serde_json::from_str(&stdout_ok(&out)).expect("schedules list --json is JSON")
}

/// Sets a schedule's next due time directly, as if the planners had been down since then.
async fn set_next_run_at(db: &TestDb, name: &str, at: DateTime<Utc>) {
    let updated = match db.database().await.pool() {
        Pool::Postgres(s) => {
            sqlx::query("UPDATE hangar_schedules SET next_run_at = $2 WHERE name = $1")
                .bind(name)
                .bind(at)
                .execute(s)
                .await
                .map(|r| r.rows_affected())
        }
        Pool::Sqlite(s) => {
            sqlx::query("UPDATE hangar_schedules SET next_run_at = ?2 WHERE name = ?1")
                .bind(name)
                .bind(at.timestamp_millis())
                .execute(s)
                .await
                .map(|r| r.rows_affected())
        }
    };
    assert_eq!(updated.expect("update"), 1);
}

/// Two planners on one clock that the test moves, two seconds a step, through a minute of
/// `*/2`: each step both plan at once, then the worker runs the slot's job before the next.
async fn two_planners_and_a_worker(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let schedules = Schedules::new(store.clone());
    schedules
        .upsert(&NewSchedule::new("tick", "*/2 * * * * *", "noop"))
        .await
        .unwrap();
    // The minute ends in the past of the worker's clock, so it runs each job at once.
    let start = Utc::now() - chrono::Duration::seconds(90);
    let start = DateTime::from_timestamp(start.timestamp() - start.timestamp() % 2, 0).unwrap();
    set_next_run_at(&db, "tick", start).await;
    let manual = ManualClock::new(start);
    let config = || PlannerConfig {
        clock: manual.clock(),
        ..PlannerConfig::default()
    };
    let routes = Routes::builtin();
    let mut planners = [
        Planner::new(schedules.clone(), routes.clone(), config()),
        Planner::new(schedules.clone(), routes.clone(), config()),
    ];
    let _worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);

    // What each planner says it did.
    let mut enqueued = 0;
    let mut deduplicated = 0;
    for step in 0..30 {
        if step > 0 {
            manual.advance(Duration::from_secs(2));
        }
        let [first, second] = &mut planners;
        let (a, b) = tokio::join!(first.run_once(), second.run_once());
        for report in [a.expect("plan"), b.expect("plan")] {
            enqueued += report.enqueued;
            deduplicated += report.deduplicated;
        }
        let row = schedules.get("tick").await.unwrap();
        let job = row.last_job_id.expect("a slot was planned");
        wait_final(&store, job, Duration::from_secs(20)).await;
    }

    let jobs = jobs(&store).await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        let key = job
            .idempotency_key
            .clone()
            .expect("planner jobs have a key");
        *per_key.entry(key).or_default() += 1;
    }
    assert!(
        per_key.values().all(|n| *n == 1),
        "a slot got several jobs: {per_key:?}"
    );
    // The claim, not only the unique key, kept the planners apart: every insert they made is
    // a job, and neither ever found its slot's job already there.
    assert_eq!(enqueued as usize, jobs.len(), "enqueued vs jobs");
    assert_eq!(
        deduplicated, 0,
        "planners raced for a slot (the unique key caught it)"
    );
    let mut slots: Vec<DateTime<Utc>> = per_key.keys().map(|k| slot_of(k, "tick")).collect();
    slots.sort();
    for pair in slots.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            2_000,
            "a gap or a doubled slot between {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        (28..=31).contains(&slots.len()),
        "{} slots in 60 s of */2",
        slots.len()
    );
    let finished = jobs.iter().filter(|j| j.state.is_final()).count();
    assert!(
        finished >= slots.len() - 1,
        "the worker ran them: {finished} of {} finished",
        slots.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_planners_and_a_worker_enqueue_exactly_one_job_per_slot_postgres() {
    two_planners_and_a_worker(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_planners_and_a_worker_enqueue_exactly_one_job_per_slot_sqlite() {
    two_planners_and_a_worker(Backend::Sqlite).await;
}

async fn catch_up_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let schedules = Schedules::new(store.clone());
    schedules
        .upsert(&NewSchedule::new("hourly-at-zero", "0 0 * * * *", "noop"))
        .await
        .unwrap();
    // The planners were down for ten hours: ten slots passed.
    set_next_run_at(
        &db,
        "hourly-at-zero",
        Utc::now() - chrono::Duration::hours(10),
    )
    .await;

    // The latest slot is the hour the planner ran in: bracket it by the hours before and
    // after, so a run across an hour boundary accepts either.
    let hour_of = |t: DateTime<Utc>| t.timestamp() - t.timestamp().rem_euclid(3600);
    let hour_before = hour_of(Utc::now());
    let mut planner = db.spawn("planner", &["planner", "--bind", "127.0.0.1:0"]);
    let row = wait_for(
        "the planner to catch up",
        Duration::from_secs(20),
        || async {
            let row = schedules.get("hourly-at-zero").await.ok()?;
            row.last_slot_at.is_some().then_some(row)
        },
    )
    .await;
    assert!(planner.terminate().success(), "{}", planner.log());
    // Nothing more is due until the next slot: a planner a moment before it plans nothing.
    let next = row.next_run_at.expect("still planned");
    let manual = ManualClock::new(next - chrono::Duration::milliseconds(1));
    let mut later = Planner::new(
        schedules.clone(),
        Routes::builtin(),
        PlannerConfig {
            clock: manual.clock(),
            ..PlannerConfig::default()
        },
    );
    assert_eq!(later.run_once().await.expect("plan").claimed, 0);

    let jobs = jobs(&store).await;
    assert_eq!(jobs.len(), 1, "one catch-up run, not one per missed slot");
    let now = Utc::now();
    let hour_after = hour_of(now);
    let slot = slot_of(
        jobs[0].idempotency_key.as_deref().unwrap(),
        "hourly-at-zero",
    );
    assert!(
        [hour_before, hour_after].contains(&slot.timestamp()),
        "the latest slot is the one run: {slot}"
    );
    assert_eq!(row.last_job_id, Some(jobs[0].id));
    let next = row.next_run_at.expect("still planned");
    assert!(
        next > row.last_slot_at.expect("planned"),
        "next_run_at moved past the slot: {next}"
    );
    assert_eq!(next.timestamp(), slot.timestamp() + 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_that_was_down_catches_up_once_postgres() {
    catch_up_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_that_was_down_catches_up_once_sqlite() {
    catch_up_once(Backend::Sqlite).await;
}

async fn overlap_is_skipped(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    schedule_file(
        &db,
        "every-second.toml",
        "[[schedule]]\nname = \"busy\"\ncron = \"* * * * * *\"\nkind = \"noop\"\n",
    );
    // No worker: the first job stays available, so every later slot overlaps it.
    let mut planner = db.spawn("planner", &["planner", "--bind", "127.0.0.1:0"]);
    let skipped = wait_for("three skipped slots", Duration::from_secs(20), || async {
        let rows = list_json(&db);
        let skipped = rows.first()?["skipped_count"].as_i64()?;
        (skipped >= 3).then_some(skipped)
    })
    .await;
    assert!(planner.terminate().success(), "{}", planner.log());

    let jobs = jobs(&store).await;
    assert_eq!(jobs.len(), 1, "later slots were enqueued: {jobs:?}");
    let rows = list_json(&db);
    assert!(rows[0]["skipped_count"].as_i64().unwrap() >= skipped);
    assert!(rows[0]["last_skipped_at"].is_string());
    assert_eq!(rows[0]["last_job_state"], "available");
    assert_eq!(rows[0]["last_job_id"], jobs[0].id.0);
    assert!(
        planner
            .log()
            .contains("slot skipped: the previous run is still active"),
        "each skip is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_active_skips_later_slots_postgres() {
    overlap_is_skipped(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_active_skips_later_slots_sqlite() {
    overlap_is_skipped(Backend::Sqlite).await;
}

/// `n` hourly schedules named `fleet-<i>`.
pub(crate) fn fleet(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("[[schedule]]\nname = \"fleet-{i}\"\nfrequency = \"hourly\"\nkind = \"noop\"\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Syncs the files into `db` by starting a planner until the rows are there.
pub(crate) async fn sync_with_a_planner(db: &TestDb, expected: usize) -> Vec<serde_json::Value> {
    let mut planner = db.spawn("planner", &["planner", "--bind", "127.0.0.1:0"]);
    let rows = wait_for("the file schedules", Duration::from_secs(20), || async {
        let rows = list_json(db);
        // Until the planner has stored them, the files' schedules are listed unsynced.
        (rows.len() == expected && rows.iter().all(|r| r["synced"] == true)).then_some(rows)
    })
    .await;
    assert!(planner.terminate().success(), "{}", planner.log());
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_schedules_are_spread_by_stable_offsets() {
    let offsets = |rows: &[serde_json::Value]| -> BTreeMap<String, i64> {
        rows.iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["offset_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let pg = TestDb::new(Backend::Postgres).await;
    pg.store().await;
    schedule_file(&pg, "fleet.toml", &fleet(60));
    let first = sync_with_a_planner(&pg, 60).await;
    let by_name = offsets(&first);

    let distinct: HashSet<i64> = by_name.values().copied().collect();
    assert_eq!(distinct.len(), 60, "offsets collide: {by_name:?}");
    assert!(by_name.values().all(|o| (0..3_600_000).contains(o)));
    let (min, max) = (
        *distinct.iter().min().unwrap(),
        *distinct.iter().max().unwrap(),
    );
    assert!(
        max - min > 40 * 60_000,
        "60 hourly schedules bunch up within {} s",
        (max - min) / 1000
    );
    for row in &first {
        // Due time = the hour + the offset, the first one after now.
        let next = DateTime::parse_from_rfc3339(row["next_run_at"].as_str().unwrap()).unwrap();
        let offset = row["offset_ms"].as_i64().unwrap();
        assert_eq!(next.timestamp_millis().rem_euclid(3_600_000), offset);
        assert!(next.with_timezone(&Utc) > Utc::now());
        assert!(next.with_timezone(&Utc) <= Utc::now() + chrono::Duration::hours(1));
    }

    // Same names, another process (a restart), another database: the same offsets.
    let again = sync_with_a_planner(&pg, 60).await;
    assert_eq!(offsets(&again), by_name, "offsets moved across a restart");
    let sqlite = TestDb::new(Backend::Sqlite).await;
    sqlite.store().await;
    schedule_file(&sqlite, "fleet.toml", &fleet(60));
    let elsewhere = sync_with_a_planner(&sqlite, 60).await;
    assert_eq!(
        offsets(&elsewhere),
        by_name,
        "offsets differ between processes"
    );
}

async fn api_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let schedules = Schedules::new(db.store().await);
    let mut new = NewSchedule::new("ws_9:foreflight:trips", "every_6_hours", "noop");
    new.workspace_id = Some("ws_9".into());
    new.args = serde_json::json!({"data_type": "trips"});
    let created = schedules.upsert(&new).await.unwrap();
    let next = created.next_run_at.expect("planned");
    assert!(next > Utc::now() && next <= Utc::now() + chrono::Duration::hours(6));

    // Re-upserting the same spec keeps the due time; changing other fields keeps it too.
    new.priority = 5;
    let again = schedules.upsert(&new).await.unwrap();
    assert_eq!(
        (again.next_run_at, again.priority, again.id),
        (Some(next), 5, created.id)
    );

    let off = schedules
        .set_enabled("ws_9:foreflight:trips", false)
        .await
        .unwrap();
    assert!(!off.enabled && off.next_run_at.is_none());
    let on = schedules
        .set_enabled("ws_9:foreflight:trips", true)
        .await
        .unwrap();
    assert!(on.enabled && on.next_run_at.is_some());

    let manual = schedules
        .set_spec("ws_9:foreflight:trips", "manual")
        .await
        .unwrap();
    assert_eq!(
        (manual.spec.as_str(), manual.next_run_at),
        ("manual", None),
        "manual is stored, never planned"
    );
    let cron = schedules
        .set_spec("ws_9:foreflight:trips", "0 30 2 * * *")
        .await
        .unwrap();
    assert_eq!(cron.offset_ms, 0, "cron fires at its exact time");
    assert!(
        schedules
            .set_spec("ws_9:foreflight:trips", "every minute")
            .await
            .is_err()
    );

    let listed = schedules
        .list(&hangar_schedules::ScheduleFilter {
            workspace_id: Some("ws_9".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        schedules.delete("ws_9:foreflight:trips").await.unwrap(),
        "deleted"
    );
    assert!(!schedules.delete("ws_9:foreflight:trips").await.unwrap());
    assert!(schedules.get("ws_9:foreflight:trips").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_api_upserts_by_name_postgres() {
    api_round_trip(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_api_upserts_by_name_sqlite() {
    api_round_trip(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedule_files_exit_2_naming_file_schedule_and_field() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ok = "[[schedule]]\nname = \"fine\"\nfrequency = \"daily\"\nkind = \"noop\"\n";
    let cases: [(&str, String, &str); 7] = [
        (
            "unknown field",
            format!("{ok}colour = \"red\"\n"),
            "line 5: schedule 'fine': unknown field `colour`",
        ),
        (
            "bad cron",
            "[[schedule]]\nname = \"x\"\ncron = \"0 61 * * * *\"\nkind = \"noop\"\n".into(),
            "schedule 'x': cron: '0 61 * * * *' is not a valid cron expression",
        ),
        (
            "five fields",
            "[[schedule]]\nname = \"x\"\ncron = \"0 3 * * *\"\nkind = \"noop\"\n".into(),
            "schedule 'x': cron: '0 3 * * *' has 5 field(s)",
        ),
        (
            "cron and frequency",
            format!("{ok}cron = \"0 0 3 * * *\"\n"),
            "schedule 'fine': cron: give either cron or frequency, not both",
        ),
        (
            "duplicate name",
            format!("{ok}\n{ok}"),
            "schedule 'fine': name: declared twice",
        ),
        (
            "unknown kind",
            ok.replace("noop", "reconcile"),
            "schedule 'fine': kind: unknown job kind 'reconcile'",
        ),
        (
            "queue without a pool",
            format!("{ok}queue = \"nowhere\"\n"),
            "schedule 'fine': queue: no pool serves queue 'nowhere'",
        ),
    ];
    let file = db.dir.path().join("schedules").join("bad.toml");
    for (what, toml, expected) in cases {
        schedule_file(&db, "bad.toml", &toml);
        let out = db.run(&["planner", "--bind", "127.0.0.1:0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        let message = format!("hangar: schedules/bad.toml: {expected}");
        assert!(
            stderr.trim().starts_with(&message),
            "{what}: {stderr:?} should start with {message:?}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{what}: one message");
    }
    // Neither cron nor frequency; and a duplicate across two files names the second file.
    schedule_file(
        &db,
        "bad.toml",
        "[[schedule]]\nname = \"x\"\nkind = \"noop\"\n",
    );
    let out = db.run(&["schedules", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("schedules/bad.toml: schedule 'x': cron: missing")
    );
    schedule_file(&db, "bad.toml", ok);
    schedule_file(&db, "other.toml", ok);
    let explicit = db.dir.path().join("schedules");
    let out = db.run(&[
        "planner",
        "--schedules-dir",
        explicit.to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: schedule 'fine': name: already declared in another file",
            explicit.join("other.toml").display()
        )),
        "{stderr}"
    );
    assert!(file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_plans_and_schedules_list_shows_next_run_and_last_outcome() {
    let db = TestDb::new(Backend::Sqlite).await;
    schedule_file(
        &db,
        "ticks.toml",
        "[[schedule]]\nname = \"tick\"\ncron = \"*/2 * * * * *\"\nkind = \"noop\"\nargs = { from = \"file\" }\n",
    );
    let mut serve = db.spawn("serve", &["serve", "--bind", ANY_PORT]);
    let row = wait_for(
        "a planned job to complete",
        Duration::from_secs(30),
        || async {
            let out = db.run(&["schedules", "list", "--json"]);
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
            let row = rows.into_iter().next()?;
            (row["last_job_state"] == "completed").then_some(row)
        },
    )
    .await;
    for field in [
        "name",
        "source",
        "workspace_id",
        "spec",
        "kind",
        "queue",
        "enabled",
        "next_run_at",
        "last_slot_at",
        "last_job_id",
        "last_job_state",
        "skipped_count",
    ] {
        assert!(row.get(field).is_some(), "{field} missing from {row}");
    }
    assert_eq!(
        (&row["name"], &row["source"], &row["spec"], &row["queue"]),
        (
            &serde_json::json!("tick"),
            &serde_json::json!("file"),
            &serde_json::json!("*/2 * * * * *"),
            &serde_json::json!("default")
        )
    );
    let next = DateTime::parse_from_rfc3339(row["next_run_at"].as_str().unwrap()).unwrap();
    let last = DateTime::parse_from_rfc3339(row["last_slot_at"].as_str().unwrap()).unwrap();
    assert!(next > last, "next run {next} after the last slot {last}");
    let job = db.run(&[
        "jobs",
        "show",
        &row["last_job_id"].as_i64().unwrap().to_string(),
        "--json",
    ]);
    let job: serde_json::Value = serde_json::from_str(&stdout_ok(&job)).unwrap();
    assert_eq!(job["args"], serde_json::json!({"from": "file"}));
    assert_eq!(job["state"], "completed");

    let table = stdout_ok(&db.run(&["schedules", "list"]));
    let line = table
        .lines()
        .find(|l| l.starts_with("tick "))
        .expect("a row for tick");
    assert!(line.contains("completed") || line.contains("available") || line.contains("running"));
    assert!(serve.terminate().success(), "{}", serve.log());
}
