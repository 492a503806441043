//! Escaping by construction on every dashboard page that shows text a user, a job or a
//! remote server chose, on both backends: job kinds, queues, workspaces, idempotency keys,
//! args and errors, the queue of a chart, alert messages and workspaces (alert kinds and severities are typed: a
//! stored one that is none of them is a corrupt row), schedule names, kinds and queues, and dead
//! letters. Each value is a `<script>` tag (with quotes, to break out of an attribute); every
//! page must show it as text, escaped, and carry no script but its own live refresh.

use std::time::Duration;

use hangar_schedules::{NewSchedule, Schedules};
use hangar_workers::alerts::model::{AlertKind, Severity};
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::store::NewAlert;
use serde_json::json;

use crate::support::{
    ANY_PORT, Backend, TestDb, TestRedis, dashboard_session, enqueue_http, fast_pools, stdout_ok,
    wait_final, wait_for,
};

/// The hostile value of one field.
fn payload(field: &str) -> String {
    format!("<script>alert(\"{field}\")</script>")
}

/// `text` as HTML shows it: `&`, `<`, `>` and `"` as entities.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Runs one statement on the test's database through a connection of its own.
async fn exec(db: &TestDb, backend: Backend, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.map(drop)
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.map(drop)
        }
    }
    .expect("statement");
}

async fn user_text_is_escaped_on_every_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    db.pools(&fast_pools("", ""));
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    redis.env(&mut command);
    let _serve = db.spawn_command("serve", command);
    let base = format!("http://{}", _serve.address().await);
    let health = format!("{base}/healthz");
    wait_for("the server", Duration::from_secs(30), || async {
        reqwest::get(&health).await.ok().map(|_| ())
    })
    .await;
    let store = db.store().await;

    // A job whose identifiers are all hostile, parked a day ahead.
    let mut job = NewJob::new("noop", json!({"note": payload("args")}));
    job.kind = payload("kind");
    job.queue = payload("queue");
    job.workspace_id = Some(payload("workspace"));
    job.idempotency_key = Some(payload("key"));
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    let parked = store.enqueue(&job).await.expect("enqueue").id;
    // A job that really fails: its handler's error quotes the URL it could not parse.
    let url = "<script>alert(url)</script>";
    let failed = enqueue_http(&store, url, json!({})).await;
    let failed_job = wait_final(&store, failed, Duration::from_secs(30)).await;
    assert_eq!(failed_job.state, JobState::Failed, "{failed_job:?}");
    assert!(
        failed_job.last_error.as_deref().unwrap_or("").contains(url),
        "{failed_job:?}"
    );
    store
        .raise_alerts(&[NewAlert {
            workspace_id: Some(payload("alert workspace")),
            kind: AlertKind::JobFailed,
            severity: Severity::Critical,
            message: payload("alert message"),
            incident_key: "escaping".to_owned(),
            integration: None,
        }])
        .await
        .expect("alert");
    let mut schedule = NewSchedule::new("escaping", "hourly", payload("schedule kind"));
    schedule.queue = Some(payload("schedule queue"));
    schedule.workspace_id = Some(payload("schedule workspace"));
    schedule.enabled = false;
    Schedules::new(store.clone())
        .upsert(&schedule)
        .await
        .expect("schedule");
    // Names are checked where schedules come in; a row written some other way is shown too.
    let name = payload("schedule name");
    exec(
        &db,
        backend,
        &format!("UPDATE hangar_schedules SET name = '{name}' WHERE name = 'escaping'"),
    )
    .await;
    // Per-minute counters of a hostile queue: the overview's chart of it, in the last hour
    // and the last day.
    let minute = match backend {
        Backend::Postgres => "date_trunc('minute', now())".to_owned(),
        Backend::Sqlite => (chrono::Utc::now().timestamp_millis() / 60_000 * 60_000).to_string(),
    };
    exec(
        &db,
        backend,
        &format!(
            "INSERT INTO hangar_queue_minutes (queue, minute, completed, failed) \
             VALUES ('{}', {minute}, 3, 1)",
            payload("chart queue")
        ),
    )
    .await;
    redis.cli(&[
        "XADD",
        &redis.dead_stream(),
        "*",
        "source_id",
        &payload("source id"),
        "error",
        &payload("dead error"),
        "msg",
        &payload("dead msg"),
    ]);

    let token = stdout_ok(&db.run(&["tokens", "create", "--role", "owner"]))
        .trim()
        .to_owned();
    let session = dashboard_session(&base, &token).await;
    let http = reqwest::Client::new();
    let pages: [(String, Vec<String>); 9] = [
        (
            "/".to_owned(),
            vec![payload("queue"), payload("chart queue")],
        ),
        ("/?window=day".to_owned(), vec![payload("chart queue")]),
        (
            "/jobs".to_owned(),
            vec![payload("kind"), payload("queue"), payload("workspace")],
        ),
        (
            format!("/jobs/{parked}"),
            vec![
                payload("kind"),
                payload("queue"),
                payload("workspace"),
                payload("key"),
                payload("args").replace('"', "\\\""),
            ],
        ),
        (format!("/jobs/{failed}"), vec![url.to_owned()]),
        (
            format!("/jobs?kind={}", "%3Cscript%3E%22"),
            vec!["<script>\"".to_owned()],
        ),
        // The parked job's queue, in the queue table and its pause button's form.
        ("/workers".to_owned(), vec![payload("queue")]),
        (
            "/alerts?all=1".to_owned(),
            vec![payload("alert message"), payload("alert workspace")],
        ),
        (
            "/dead-letters".to_owned(),
            vec![
                payload("source id"),
                payload("dead error"),
                payload("dead msg"),
            ],
        ),
    ];
    let schedules = (
        "/schedules".to_owned(),
        vec![
            payload("schedule name"),
            payload("schedule kind"),
            payload("schedule queue"),
            payload("schedule workspace"),
        ],
    );
    for (path, shown) in pages.iter().chain([&schedules]) {
        let response = http
            .get(format!("{base}{path}"))
            .header("cookie", format!("hangar_session={session}"))
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), 200, "{path}");
        let page = response.text().await.expect("body");
        assert!(
            !page.contains("<script>alert("),
            "{path} renders a value as markup: {page}"
        );
        assert_eq!(
            page.matches("<script").count(),
            1,
            "{path}: only the live script"
        );
        for text in shown {
            assert!(
                page.contains(&escaped(text)),
                "{path} does not show {text:?} escaped: {page}"
            );
        }
    }
}

#[tokio::test]
async fn dashboard_pages_escape_user_text_on_postgres() {
    user_text_is_escaped_on_every_page(Backend::Postgres).await;
}

#[tokio::test]
async fn dashboard_pages_escape_user_text_on_sqlite() {
    user_text_is_escaped_on_every_page(Backend::Sqlite).await;
}
