//! Every dashboard page in a real headless Chromium at a laptop (1280×800) and a phone
//! (390×844) width, with long values in the tables (an error without spaces, a 255-byte
//! workspace id, a long alert message, a long queue's chart): the page itself never scrolls
//! sideways, and at laptop width no table needs its own scroll bar either. Screenshots go to
//! `target/dashboard-screenshots/`.

use std::time::Duration;

use hangar_workers::job::NewJob;
use serde_json::json;

use crate::cdp::Browser;
use crate::dashboard::{Dash, screenshots};
use crate::support::{Backend, TestDb};

async fn exec(db: &TestDb, sql: &str) {
    db.sql(sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_page_overflows_at_laptop_or_phone_width() {
    let dash = Dash::start_on(Backend::Sqlite, false).await;
    let store = dash.db.store().await;
    let token = dash.token(&["--role", "owner"]);

    let workspace = format!("ws_{}", "w".repeat(251));
    let error = format!("HTTP 500: {}", "x".repeat(600));
    let mut job = NewJob::new("noop", json!({"note": "y".repeat(300)}));
    job.workspace_id = Some(workspace.clone());
    job.queue = "reconciliation-of-long-running-accounts".to_owned();
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    let id = store.enqueue(&job).await.expect("enqueue").id;
    exec(
        &dash.db,
        &format!("UPDATE hangar_jobs SET last_error = '{error}' WHERE id = {id}"),
    )
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    for (n, acknowledged) in [(1, "NULL"), (2, &now.to_string()[..])] {
        exec(
            &dash.db,
            &format!(
                "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, job_id, \
                 incident_key, created_at, last_seen_at, occurrences, acknowledged_at) \
                 VALUES ('{workspace}', 'job_failed_after_retries', 'critical', \
                 'job {id} failed: {error}', {id}, 'layout:{n}', {now}, {now}, 12, {acknowledged})"
            ),
        )
        .await;
    }

    // A long queue's chart on the overview, with a bar in the last hour and the last day.
    let minute = now / 60_000 * 60_000;
    exec(
        &dash.db,
        &format!(
            "INSERT INTO hangar_queue_minutes (queue, minute, completed, failed, retried) \
             VALUES ('{}', {minute}, 120, 4, 9), ('default', {}, 30, 0, 0)",
            job.queue,
            minute - 20 * 60_000
        ),
    )
    .await;

    let shots = screenshots();
    let mut browser = Browser::start().await;
    browser.viewport(1280, 800, false).await;
    browser.goto(&format!("{}/login", dash.base)).await;
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

    let pages = [
        ("overview", "/".to_owned()),
        ("overview-day", "/?window=day".to_owned()),
        ("jobs", "/jobs".to_owned()),
        ("job", format!("/jobs/{id}")),
        ("alerts", "/alerts?all=1".to_owned()),
        ("dead-letters", "/dead-letters".to_owned()),
        ("schedules", "/schedules".to_owned()),
        ("workers", "/workers".to_owned()),
        ("inbound", format!("/workspaces/{workspace}/inbound")),
        ("not-found", "/queues/default".to_owned()),
    ];
    let mut problems = Vec::new();
    for (width, height, mobile) in [(1280, 800, false), (390, 844, true)] {
        browser.viewport(width, height, mobile).await;
        for (name, path) in &pages {
            browser.goto(&format!("{}{path}", dash.base)).await;
            browser
                .screenshot(&shots.join(format!("layout-{name}-{width}.png")))
                .await;
            let page = browser
                .eval(
                    "JSON.stringify([document.documentElement.scrollWidth, \
                     document.documentElement.clientWidth])",
                )
                .await;
            let [scroll, client]: [i64; 2] =
                serde_json::from_str(page.as_str().expect("text")).expect("widths");
            if scroll > client {
                problems.push(format!(
                    "{path} at {width} px: the page is {scroll} px wide in {client} px"
                ));
            }
            if width >= 1280 {
                let boxes = browser
                    .eval(
                        "JSON.stringify([...document.querySelectorAll('.scroll')]\
                         .filter(b => b.scrollWidth > b.clientWidth + 1)\
                         .map(b => [b.scrollWidth, b.clientWidth]))",
                    )
                    .await;
                if boxes.as_str() != Some("[]") {
                    problems.push(format!(
                        "{path} at {width} px: a table needs to scroll: {boxes}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
