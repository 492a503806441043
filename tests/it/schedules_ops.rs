//! Schedules as an operator meets them (issue 15), on both backends: `hangar schedules list`
//! on a fresh database shows the files' schedules before any planner ran; each schedule's
//! source, last slot and its outcome; an operator's disable stops a running planner and
//! holds across re-syncs of the files until the file changes that schedule; enabling does
//! not run the slots missed meanwhile; run now enqueues one job outside the slots; the API
//! routes with their roles and workspaces; the dashboard page's buttons. (A workspace
//! token's overview: `workspace_overview.rs`.)

use std::time::Duration;

use chrono::Utc;
use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::clock::ManualClock;
use hangar_workers::job::{JobFilter, JobId, JobState};
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::{Dash, location};
use crate::planner::{list_json, schedule_file};
use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};

const EVERY_SECOND: &str = "[[schedule]]\nname = \"tick\"\ncron = \"* * * * * *\"\nkind = \"noop\"\nargs = { from = \"file\" }\n";

/// The row of `name` in `hangar schedules list --json`.
fn listed(db: &TestDb, name: &str) -> Value {
    list_json(db)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed"))
}

async fn jobs_of_kind(store: &Store, kind: &str) -> Vec<hangar_workers::job::Job> {
    store
        .jobs(&JobFilter {
            kind: Some(kind.to_owned()),
            limit: 10_000,
            ..JobFilter::default()
        })
        .await
        .expect("jobs")
}

async fn list_before_any_planner(backend: Backend) {
    let db = TestDb::new(backend).await;
    schedule_file(&db, "nightly.toml", EVERY_SECOND);
    db.store().await;
    // Migrated, and no planner ever ran: the file's schedule is listed, marked unsynced.
    let out = db.run(&["schedules", "list"]);
    let table = stdout_ok(&out);
    let line = table
        .lines()
        .find(|l| l.starts_with("tick "))
        .unwrap_or_else(|| panic!("tick is listed before any planner ran: {table}"));
    assert!(line.contains("not yet synced"), "{line}");
    assert!(line.contains("nightly.toml"), "{line}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 file schedule(s) not yet synced"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = listed(&db, "tick");
    assert_eq!(row["synced"], false, "{row}");
    assert_eq!(row["source"], "file");
    assert!(
        row["source_file"]
            .as_str()
            .unwrap()
            .ends_with("nightly.toml"),
        "{row}"
    );
    assert_eq!(row["spec"], "* * * * * *");
    assert_eq!(row["next_run_at"], Value::Null);

    // Stored by `schedules sync`: the same schedule, synced, with its file and next run.
    stdout_ok(&db.run(&["schedules", "sync"]));
    let rows = list_json(&db);
    assert_eq!(rows.len(), 1, "listed once: {rows:?}");
    assert_eq!(rows[0]["synced"], true);
    assert!(
        rows[0]["source_file"]
            .as_str()
            .unwrap()
            .ends_with("nightly.toml")
    );
    assert!(rows[0]["next_run_at"].is_string(), "{}", rows[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_list_shows_file_schedules_before_any_planner_postgres() {
    list_before_any_planner(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_list_shows_file_schedules_before_any_planner_sqlite() {
    list_before_any_planner(Backend::Sqlite).await;
}

/// A planner on a clock the test sets.
fn planner_at(store: &Store, at: chrono::DateTime<Utc>) -> Planner {
    Planner::new(
        Schedules::new(store.clone()),
        Routes::builtin(),
        PlannerConfig {
            clock: ManualClock::new(at).clock(),
            ..PlannerConfig::default()
        },
    )
}

async fn operator_choice_and_resync(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    schedule_file(&db, "a.toml", EVERY_SECOND);
    stdout_ok(&db.run(&["schedules", "sync"]));

    // Disabled by an operator: no planner enqueues it, whatever the time.
    let out = stdout_ok(&db.run(&["schedules", "disable", "tick"]));
    assert!(out.contains("disabled schedule tick"), "{out}");
    let row = listed(&db, "tick");
    assert_eq!(row["enabled"], false);
    assert_eq!(row["operator_enabled"], false);
    assert!(row["operator_changed_at"].is_string());
    let report = planner_at(&store, Utc::now() + chrono::Duration::hours(1))
        .run_once()
        .await
        .expect("plan");
    assert_eq!(report.claimed, 0);
    assert!(jobs_of_kind(&store, "noop").await.is_empty());

    // A re-sync of the unchanged file keeps the operator's choice.
    stdout_ok(&db.run(&["schedules", "sync"]));
    let row = listed(&db, "tick");
    assert_eq!(row["enabled"], false, "the disable holds: {row}");
    assert!(
        stdout_ok(&db.run(&["schedules", "list"]))
            .lines()
            .any(|l| l.starts_with("tick ") && l.contains("no (operator)"))
    );

    // Enabled again: it runs from the next slot; the seconds missed meanwhile are not run.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    stdout_ok(&db.run(&["schedules", "enable", "tick"]));
    let now = Utc::now();
    let report = planner_at(&store, now - chrono::Duration::milliseconds(500))
        .run_once()
        .await
        .expect("plan");
    assert_eq!(report.enqueued, 0, "no missed slot is backfilled");
    // A planner later than the next slot runs one catch-up job, not one per second.
    let report = planner_at(&store, now + chrono::Duration::seconds(10))
        .run_once()
        .await
        .expect("plan");
    assert_eq!(report.enqueued, 1);
    let jobs = jobs_of_kind(&store, "noop").await;
    assert_eq!(jobs.len(), 1);
    let key = jobs[0].idempotency_key.clone().unwrap();
    assert!(key.starts_with("schedule:tick:"), "{key}");
    let row = listed(&db, "tick");
    assert_eq!(row["last_job_id"], jobs[0].id.0);
    assert_eq!(row["last_job_state"], "scheduled", "due at its slot: {row}");
    assert!(row["last_slot_at"].is_string());

    // Disabled again; then the file changes that schedule: the file's setting applies.
    stdout_ok(&db.run(&["schedules", "disable", "tick"]));
    schedule_file(
        &db,
        "a.toml",
        &EVERY_SECOND.replace("* * * * * *", "0 0 3 * * *"),
    );
    stdout_ok(&db.run(&["schedules", "sync"]));
    let row = listed(&db, "tick");
    assert_eq!(row["enabled"], true, "the changed file wins: {row}");
    assert_eq!(row["operator_enabled"], Value::Null);
    assert_eq!(row["spec"], "0 0 3 * * *");

    // An unknown name: exit 1, naming it.
    let out = db.run(&["schedules", "disable", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schedule 'nope' not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_disable_holds_across_resync_until_the_file_changes_postgres() {
    operator_choice_and_resync(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_disable_holds_across_resync_until_the_file_changes_sqlite() {
    operator_choice_and_resync(Backend::Sqlite).await;
}

async fn run_now(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    schedule_file(&db, "a.toml", EVERY_SECOND);
    stdout_ok(&db.run(&["schedules", "sync"]));
    let out = stdout_ok(&db.run(&["schedules", "run", "tick", "--json"]));
    let ran: Value = serde_json::from_str(&out).expect("JSON");
    let id = JobId(ran["job_id"].as_i64().expect("job id"));
    let job = store.job(id).await.expect("the job");
    assert_eq!(job.kind, "noop");
    assert_eq!(job.args, json!({"from": "file"}));
    let key = job.idempotency_key.clone().unwrap();
    assert!(
        key.starts_with("hangar:run-now:"),
        "never a slot's key: {key}"
    );
    assert_eq!(ran["schedule"]["run_now_job_id"], id.0);
    assert_eq!(
        ran["schedule"]["last_slot_at"],
        Value::Null,
        "no slot taken"
    );

    // One run at a time: refused while it is active, and the planner skips the slot.
    let again = db.run(&["schedules", "run", "tick"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("a run is still active"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let report = planner_at(&store, Utc::now() + chrono::Duration::seconds(5))
        .run_once()
        .await
        .expect("plan");
    assert_eq!(report.enqueued, 0);
    assert_eq!(
        report.skipped.len(),
        1,
        "{report:?} {}",
        listed(&db, "tick")
    );

    // Finished, it may run again, and the slots go on beside it.
    store
        .cancel_job(id, &crate::support::test_actor())
        .await
        .expect("cancel");
    let second: i64 = stdout_ok(&db.run(&["schedules", "run", "tick"]))
        .trim()
        .parse()
        .expect("the job id");
    assert_ne!(second, id.0);
    store
        .cancel_job(JobId(second), &crate::support::test_actor())
        .await
        .expect("cancel");
    let report = planner_at(&store, Utc::now() + chrono::Duration::seconds(10))
        .run_once()
        .await
        .expect("plan");
    assert_eq!(report.enqueued, 1);
    let row = listed(&db, "tick");
    assert_eq!(row["run_now_job_id"], second);
    assert_eq!(row["run_now_job_state"], "cancelled");
    assert_eq!(row["last_job_state"], "scheduled", "due at its slot: {row}");
    assert_eq!(jobs_of_kind(&store, "noop").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_enqueues_one_job_outside_the_slots_postgres() {
    run_now(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_enqueues_one_job_outside_the_slots_sqlite() {
    run_now(Backend::Sqlite).await;
}

fn token(db: &TestDb, args: &[&str]) -> String {
    let mut all = vec!["tokens", "create"];
    all.extend_from_slice(args);
    stdout_ok(&db.run(&all)).trim().to_owned()
}

async fn api_schedule(store: &Store, name: &str, workspace: &str) -> i64 {
    let mut s = NewSchedule::new(name, "hourly", "noop");
    s.workspace_id = Some(workspace.to_owned());
    s.args = json!({"secret_ish": "operator-only"});
    Schedules::new(store.clone())
        .upsert(&s)
        .await
        .expect("upsert")
        .id
}

async fn api_routes_and_a_running_planner(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    db.pools(&crate::support::fast_pools("", ""));
    schedule_file(&db, "a.toml", EVERY_SECOND);
    let a = api_schedule(&store, "ws_a:hourly", "ws_a").await;
    let b = api_schedule(&store, "ws_b:hourly", "ws_b").await;
    let (mut serve, base) = serve_http(&db).await;
    let http = reqwest::Client::new();
    let everyone = token(&db, &["--role", "operator"]);
    let viewer_a = token(&db, &["--role", "viewer", "--workspace", "ws_a"]);
    let operator_a = token(&db, &["--role", "operator", "--workspace", "ws_a"]);
    let get = |path: String, token: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).bearer_auth(token).send().await.expect("GET");
            let status = r.status();
            (status, r.json::<Value>().await.expect("JSON"))
        }
    };
    let post = |path: String, token: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(path)
                .bearer_auth(token)
                .send()
                .await
                .expect("POST");
            let status = r.status();
            (status, r.json::<Value>().await.expect("JSON"))
        }
    };

    // Every workspace: the file schedule (with its file) and both API ones.
    let (status, all) = get(format!("{base}/api/v1/schedules"), everyone.clone()).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tick", "ws_a:hourly", "ws_b:hourly"]);
    assert!(all[0]["source_file"].as_str().unwrap().ends_with("a.toml"));
    assert_eq!(all[1]["source"], "api");
    // A workspace token: its own only; another's is a 404, another workspace a 403; a
    // viewer gets no args.
    let (_, own) = get(format!("{base}/api/v1/schedules"), viewer_a.clone()).await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own[0]["name"], "ws_a:hourly");
    assert_eq!(own[0]["args"], Value::Null);
    let (status, _) = get(format!("{base}/api/v1/schedules/{b}"), viewer_a.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(
        format!("{base}/api/v1/schedules?workspace_id=ws_b"),
        viewer_a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, one) = get(format!("{base}/api/v1/schedules/{a}"), operator_a.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["args"], json!({"secret_ish": "operator-only"}));
    // Actions: operator and up, in the token's workspace.
    let (status, _) = post(
        format!("{base}/api/v1/schedules/{a}/disable"),
        viewer_a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        format!("{base}/api/v1/schedules/{b}/disable"),
        operator_a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ran) = post(
        format!("{base}/api/v1/schedules/{a}/run"),
        operator_a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    let job = store
        .job(JobId(ran["job_id"].as_i64().unwrap()))
        .await
        .unwrap();
    assert_eq!(job.workspace_id.as_deref(), Some("ws_a"));

    // The running planner of `serve` plans the file's schedule every second; disabled from
    // the API, it stops, and a re-sync of the files keeps it stopped.
    let tick = all[0]["id"].as_i64().unwrap();
    wait_for("two completed slots", Duration::from_secs(30), || async {
        let jobs = jobs_of_kind(&store, "noop").await;
        let done = jobs
            .iter()
            .filter(|j| j.state == JobState::Completed && j.workspace_id.is_none())
            .count();
        (done >= 2).then_some(())
    })
    .await;
    let (status, row) = post(
        format!("{base}/api/v1/schedules/{tick}/disable"),
        everyone.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["enabled"], false);
    assert!(row["last_slot_at"].is_string());
    assert!(row["last_job_id"].is_i64());
    // A batch that claimed the row before the disable may still commit its slot.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stdout_ok(&db.run(&["schedules", "sync"]));
    let slots = |jobs: &[hangar_workers::job::Job]| {
        jobs.iter()
            .filter(|j| {
                j.idempotency_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with("schedule:tick:"))
            })
            .count()
    };
    let before = slots(&jobs_of_kind(&store, "noop").await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        slots(&jobs_of_kind(&store, "noop").await),
        before,
        "a disabled schedule enqueues nothing"
    );
    let (_, row) = get(format!("{base}/api/v1/schedules/{tick}"), everyone.clone()).await;
    assert_eq!(row["enabled"], false, "the re-sync kept the disable: {row}");
    assert_eq!(row["last_job_state"], "completed");
    assert!(serve.terminate().success(), "{}", serve.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_routes_keep_to_roles_and_workspaces_and_a_disable_stops_the_planner_postgres() {
    api_routes_and_a_running_planner(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_routes_keep_to_roles_and_workspaces_and_a_disable_stops_the_planner_sqlite() {
    api_routes_and_a_running_planner(Backend::Sqlite).await;
}

async fn schedules_page_actions(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let id = api_schedule(&store, "ws_a:hourly", "ws_a").await;
    let operator = dash.session(&["--role", "operator"]).await;
    let viewer = dash.session(&["--role", "viewer"]).await;
    let same_origin = [
        ("origin", dash.base.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let (status, _, page) = dash.get("/schedules", Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("/schedules/{id}/disable")), "{page}");
    assert!(page.contains(&format!("/schedules/{id}/run")), "{page}");
    assert!(page.contains(">API<"), "the source: {page}");
    let (_, _, shown) = dash.get("/schedules", Some(&viewer)).await;
    assert!(shown.contains("ws_a:hourly"));
    assert!(
        !shown.contains("/schedules/"),
        "no buttons for a viewer: {shown}"
    );
    let viewer_csrf = dash.csrf(&viewer).await;
    let (status, _, _) = dash
        .post(
            &format!("/schedules/{id}/disable"),
            Some(&viewer),
            &[("csrf", &viewer_csrf)],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = dash.csrf(&operator).await;
    let (status, _, _) = dash
        .post(
            &format!("/schedules/{id}/disable"),
            Some(&operator),
            &[("csrf", "0123")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let (status, headers, _) = dash
        .post(
            &format!("/schedules/{id}/disable"),
            Some(&operator),
            &[("csrf", &csrf)],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/schedules?done=disabled");
    let (_, _, page) = dash.get("/schedules?done=disabled", Some(&operator)).await;
    assert!(page.contains("(operator)"), "{page}");
    assert!(page.contains(&format!("/schedules/{id}/enable")), "{page}");
    let (status, headers, _) = dash
        .post(
            &format!("/schedules/{id}/run"),
            Some(&operator),
            &[("csrf", &csrf)],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).starts_with("/schedules?done=run:"));
    let row = Schedules::new(store.clone())
        .get("ws_a:hourly")
        .await
        .unwrap();
    assert!(!row.enabled);
    assert!(row.run_now_job_id.is_some());
    // Another workspace's session: 404, as if it did not exist.
    let other = dash
        .session(&["--role", "operator", "--workspace", "ws_b"])
        .await;
    let other_csrf = dash.csrf(&other).await;
    let (status, _, _) = dash
        .post(
            &format!("/schedules/{id}/enable"),
            Some(&other),
            &[("csrf", &other_csrf)],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_page_buttons_are_for_operators_postgres() {
    schedules_page_actions(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_page_buttons_are_for_operators_sqlite() {
    schedules_page_actions(Backend::Sqlite).await;
}

/// Signs `browser` in with `token` and opens the schedules page.
async fn open_schedules(browser: &mut crate::cdp::Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form').submit(); true",
            json!(token)
        ))
        .await;
    browser
        .wait_until(
            "the overview",
            "document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'",
            Duration::from_secs(10),
        )
        .await;
    browser.goto(&format!("{base}/schedules")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_operator_disables_a_schedule_and_a_viewer_sees_no_buttons() {
    let dash = Dash::start_on(Backend::Sqlite, false).await;
    let store = dash.db.store().await;
    api_schedule(&store, "ws_a:quickbooks:payments", "ws_a").await;
    let operator = dash.token(&["--role", "operator"]);
    let viewer = dash.token(&["--role", "viewer"]);
    let shots = crate::dashboard::screenshots();

    let mut browser = crate::cdp::Browser::start().await;
    browser.viewport(1280, 800, false).await;
    open_schedules(&mut browser, &dash.base, &operator).await;
    let buttons = browser
        .eval("[...document.querySelectorAll('main button')].map(b => b.textContent).join(',')")
        .await;
    assert_eq!(buttons, "Disable,Run now", "the operator's buttons");
    let scrolls = browser
        .eval("[...document.querySelectorAll('.scroll')].filter(b => b.scrollWidth > b.clientWidth + 1).length")
        .await;
    assert_eq!(scrolls, 0, "the table fits at 1280 px");
    browser
        .screenshot(&shots.join("schedules-operator-1280.png"))
        .await;
    browser
        .eval("[...document.querySelectorAll('main button')].find(b => b.textContent === 'Disable').click(); true")
        .await;
    browser
        .wait_until(
            "the disabled note",
            "location.search === '?done=disabled'",
            Duration::from_secs(10),
        )
        .await;
    let text = browser
        .eval("document.querySelector('main').innerText")
        .await;
    let text = text.as_str().unwrap();
    assert!(text.contains("Disabled: no planner enqueues it"), "{text}");
    assert!(text.contains("(operator)"), "{text}");
    let row = Schedules::new(store.clone())
        .get("ws_a:quickbooks:payments")
        .await
        .unwrap();
    assert!(!row.enabled && row.operator_enabled == Some(false));

    let mut as_viewer = crate::cdp::Browser::start().await;
    as_viewer.viewport(1280, 800, false).await;
    open_schedules(&mut as_viewer, &dash.base, &viewer).await;
    as_viewer
        .wait_until(
            "the schedules page",
            "document.querySelector('h1') && document.querySelector('h1').textContent === 'Schedules'",
            Duration::from_secs(10),
        )
        .await;
    let text = as_viewer
        .eval("document.querySelector('main').innerText")
        .await;
    assert!(
        text.as_str().unwrap().contains("ws_a:quickbooks:payments"),
        "{text}"
    );
    let buttons = as_viewer
        .eval("document.querySelectorAll('main button, main form').length")
        .await;
    assert_eq!(buttons, 0, "no buttons for a viewer");
    as_viewer
        .screenshot(&shots.join("schedules-viewer-1280.png"))
        .await;
}
