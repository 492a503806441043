//! Each crate owns its tables and migrations (engine 1–999, planner 1001–1999, app
//! 2001–2999, integrations 3001–3999). A database migrated by a Hangar from before (one migration set, versions 1–11,
//! rebuilt here from today's unchanged files under their old numbers) keeps working: `hangar
//! migrate` takes the planner's and the app's migrations over under their new versions without
//! running them again, runs only the migrations added since, and `serve` then authenticates its
//! tokens, plans its schedules and shows its jobs.

use std::path::Path;
use std::time::Duration;

use hangar_schedules::Schedules;
use hangar_workers::client::Client;
use hangar_workers::db::Pool;
use hangar_workers::store::Store;
use sqlx::migrate::Migrator;

use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};

/// The versions in sqlx's history table, in order.
async fn history(store: &Store) -> Vec<i64> {
    let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
    match store.database().pool() {
        Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("history")
}

/// The database as the Hangar before issue 9 left it: its migration set applied.
async fn legacy_database(db: &TestDb, backend: Backend) -> Store {
    let dialect = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    // The old single set is today's files (unchanged, so their checksums match) under their
    // old numbers: the planner's 1001 was 3, the app's 2001 and 2002 were 4 and 11.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let dir = db.dir.path().join("legacy_migrations");
    std::fs::create_dir_all(&dir).expect("legacy folder");
    for owner in ["engine", "planner", "app"] {
        for entry in std::fs::read_dir(root.join(owner).join(dialect)).expect("migrations") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Only the files of the old set: migrations added since belong to no old database.
            let old = match name.split_once('_') {
                Some(("1001", rest)) => format!("0003_{rest}"),
                Some(("2001", rest)) => format!("0004_{rest}"),
                Some(("2002", rest)) => format!("0011_{rest}"),
                Some(("0001" | "0002" | "0005" | "0006" | "0007" | "0008" | "0010", _)) => name,
                _ => continue,
            };
            std::fs::copy(&path, dir.join(old)).expect("copy a migration");
        }
    }
    let legacy = Migrator::new(dir.as_path()).await.expect("legacy set");
    let store = Store::connect(&db.url, 4).await.expect("connect");
    match store.database().pool() {
        Pool::Postgres(pool) => legacy.run(pool).await,
        Pool::Sqlite(pool) => legacy.run(pool).await,
    }
    .expect("legacy migrations apply");
    assert_eq!(history(&store).await, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
    store
}

/// The migration history after `migrate`: the old set renumbered, then what came after it
/// (9: the idempotency index key first; 12: webhooks — 11 stays unused, the old number of the
/// dashboard sessions; 13: inbound hooks; 14: event subscriptions; 16: webhook limits; 17:
/// webhook replays; 18: inbound retention; 20: the leases index by expiry; 23: queue pauses
/// and processes; 26: per-minute queue counters; 27: operators' job actions; 28: the
/// events' lookups; 29: jobs by workspace; 30: the counters' duration histogram and the
/// depth and lag samples; 31: the webhook slots updated in place; 1002: the schedules' operator columns; 3001: the integrations;
/// 35NN: the sync engine's tables).
const NEW_VERSIONS: [i64; 32] = [
    1, 2, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18, 20, 23, 26, 27, 28, 29, 30, 31, 1001, 1002,
    2001, 2002, 3001, 3501, 3502, 3503, 3504, 3505,
];

/// The migrations that came after the single set (new tables, not renumbered ones).
const LATER: [&str; 22] = [
    "0009_idempotency_key_order",
    "0012_webhooks",
    "0013_inbound_hooks",
    "0014_event_subscriptions",
    "0016_webhook_limits",
    "0017_webhook_replays",
    "0018_inbound_retention",
    "0020_leases_index_by_expiry",
    "0023_queue_pauses_and_processes",
    "0026_queue_minutes",
    "0027_job_actions",
    "0028_events_lookups",
    "0029_jobs_by_workspace",
    "0030_queue_durations_and_samples",
    "0031_webhook_slots",
    "1002_schedule_operator",
    "3001_integrations",
    "3501_sync_engine",
    "3502_sync_outbox",
    "3503_paced_rate_budget",
    "3504_sync_runs_started",
    "3505_sync_runs_by_job",
];

/// Whether `migrate`'s output ran none of the old set's migrations again (only those added
/// since).
fn ran_nothing_old(text: &str) {
    for old in [
        "0001_jobs",
        "0010_alerts_by_workspace",
        "1001_schedules",
        "2001_api_tokens",
        "2002_dashboard_sessions",
    ] {
        assert!(!text.contains(old), "{old} ran again: {text}");
    }
}

async fn legacy_database_keeps_working(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = legacy_database(&db, backend).await;
    // The operator commands refuse an old database until it is migrated: migrations were
    // added since.
    let refused = db.run(&["tokens", "list"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("{} migration(s) pending", LATER.len())),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // What the old Hangar stored, written through the crates' own APIs on the old layout: a
    // token, a job, a schedule due every second.
    let token = format!("hgr_{}", "5e".repeat(32));
    let token_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    hangar::store::api_tokens::insert(store.database(), "legacy", "viewer", None, &token_hash)
        .await
        .expect("old token");
    let job = Client::builtin()
        .job("noop", serde_json::json!({}))
        .expect("noop job");
    let job = store.enqueue(&job).await.expect("enqueue").id;
    // The schedule row as the old layout has it: today's upsert writes columns that later
    // planner migrations added.
    match store.database().pool() {
        Pool::Postgres(pool) => sqlx::query(
            "INSERT INTO hangar_schedules (name, source, spec, kind, next_run_at) \
             VALUES ('legacy-every-second', 'api', '* * * * * *', 'noop', now())",
        )
        .execute(pool)
        .await
        .map(|_| ()),
        Pool::Sqlite(pool) => sqlx::query(
            "INSERT INTO hangar_schedules (name, source, spec, kind, next_run_at, created_at, \
                 updated_at) \
             VALUES ('legacy-every-second', 'api', '* * * * * *', 'noop', ?1, ?1, ?1)",
        )
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .expect("schedule");
    let schedules = Schedules::new(store.clone());

    // The new migrate takes the old rows over (nothing is created again) and applies only
    // what came after the single set.
    let migrated = stdout_ok(&db.run(&["migrate"]));
    ran_nothing_old(&migrated);
    for name in LATER {
        assert!(migrated.contains(name), "{name} applied: {migrated}");
    }
    assert_eq!(history(&store).await, NEW_VERSIONS);

    let (_serve, base) = serve_http(&db).await;
    let http = reqwest::Client::new();
    let shown = http
        .get(format!("{base}/api/v1/jobs/{}", job.0))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET job");
    assert_eq!(shown.status(), 200, "the token authenticates");
    let shown: serde_json::Value = shown.json().await.expect("job JSON");
    assert_eq!(shown["id"], job.0, "the old job is still there: {shown}");
    wait_for(
        "the old schedule to plan",
        Duration::from_secs(30),
        || async {
            let row = schedules
                .get("legacy-every-second")
                .await
                .expect("schedule");
            row.last_job_id.filter(|id| *id != job).map(|_| ())
        },
    )
    .await;

    // A second migrate has nothing to do; the history stays as the new layout numbers it.
    let again = stdout_ok(&db.run(&["migrate"]));
    assert!(again.starts_with("up to date"), "{again}");
    assert_eq!(history(&store).await, NEW_VERSIONS);
}

#[tokio::test]
async fn a_database_of_the_single_migration_set_keeps_working_on_postgres() {
    legacy_database_keeps_working(Backend::Postgres).await;
}

#[tokio::test]
async fn a_database_of_the_single_migration_set_keeps_working_on_sqlite() {
    legacy_database_keeps_working(Backend::Sqlite).await;
}

async fn each_crate_applies_its_own_set(backend: Backend) {
    let db = TestDb::new(backend).await;
    let text = stdout_ok(&db.run(&["migrate"]));
    for name in [
        "0001_jobs",
        "0010_alerts_by_workspace",
        "1001_schedules",
        "2001_api_tokens",
        "2002_dashboard_sessions",
        "3001_integrations",
    ] {
        assert!(text.contains(name), "{name} applied: {text}");
    }
    let store = Store::connect(&db.url, 2).await.expect("connect");
    assert_eq!(history(&store).await, NEW_VERSIONS);
}

#[tokio::test]
async fn each_crate_applies_its_own_migrations_on_postgres() {
    each_crate_applies_its_own_set(Backend::Postgres).await;
}

#[tokio::test]
async fn each_crate_applies_its_own_migrations_on_sqlite() {
    each_crate_applies_its_own_set(Backend::Sqlite).await;
}
