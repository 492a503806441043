//! Issue 15 in the dashboard, on both backends: the jobs list's "Retry N matching" with its
//! count and per-row checkboxes for operators only, the confirmation page, the POST with
//! CSRF (a viewer refused), the recorded action on the job page, Run again through its
//! confirmation; and the whole flow in headless Chromium (filter → count → confirm → states
//! changed), with a screenshot in `target/dashboard-screenshots/`.

use std::time::Duration;

use hangar_workers::job::JobState;
use reqwest::StatusCode;
use serde_json::json;

use crate::cdp::Browser;
use crate::dashboard::{Dash, location, state_of};
use crate::jobs_bulk::{job_in, states};
use crate::support::Backend;

/// The value of the first `<input … name="name" value="…">` of a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name}: {page}"))
        + name.len()
        + 15;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

async fn dashboard_flow(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let viewer = dash.session(&["--role", "viewer"]).await;
    let operator = dash
        .session(&["--role", "operator", "--name", "desk"])
        .await;
    let failed = [
        job_in(&store, "http", "ws_1", JobState::Failed).await,
        job_in(&store, "http", "ws_1", JobState::Failed).await,
    ];
    let done = job_in(&store, "http", "ws_1", JobState::Completed).await;
    let list = "/jobs?kind=http&state=failed,completed";

    // A viewer sees no bulk buttons nor checkboxes, and is refused the pages.
    let (_, _, page) = dash.get(list, Some(&viewer)).await;
    assert!(
        !page.contains("bulk-retry") && !page.contains("name=\"job\""),
        "{page}"
    );
    let (status, _, _) = dash
        .get("/jobs/bulk?action=retry&kind=http", Some(&viewer))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let viewer_csrf = dash.csrf(&viewer).await;
    let (status, _, _) = dash
        .post(
            "/jobs/bulk",
            Some(&viewer),
            &[
                ("csrf", &viewer_csrf),
                ("action", "retry"),
                ("kind", "http"),
            ],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(state_of(&dash, failed[0]).await, JobState::Failed);

    // The operator: the count on the button, the confirmation, the change.
    let (_, _, page) = dash.get(list, Some(&operator)).await;
    assert!(page.contains("Retry 2 matching"), "{page}");
    assert!(
        page.contains(&format!("name=\"job\" value=\"{}\"", done.0)),
        "{page}"
    );
    let (status, _, page) = dash
        .get(
            "/jobs/bulk?action=retry&kind=http&state=failed%2Ccompleted",
            Some(&operator),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Retry 2 job(s)?"), "{page}");
    assert!(
        page.contains("1 <span class=\"mono\">completed</span>"),
        "{page}"
    );
    let csrf = field(&page, "csrf");
    // Without the CSRF token: refused.
    let (status, _, _) = dash
        .post(
            "/jobs/bulk",
            Some(&operator),
            &[("action", "retry"), ("kind", "http")],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, page) = dash
        .post(
            "/jobs/bulk",
            Some(&operator),
            &[
                ("csrf", &csrf),
                ("action", "retry"),
                ("kind", "http"),
                ("state", "failed,completed"),
            ],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<span id=\"changed\">2</span>"), "{page}");
    assert_eq!(states(&store, &failed).await, [JobState::Available; 2]);
    assert_eq!(state_of(&dash, done).await, JobState::Completed);

    // The job page: who did it; Run again (through its confirmation) for the completed one,
    // no Retry there.
    let (_, _, page) = dash
        .get(&format!("/jobs/{}", failed[0]), Some(&operator))
        .await;
    assert!(
        page.contains("Retried by <span class=\"mono\">desk</span> (dashboard)"),
        "{page}"
    );
    let (_, _, page) = dash.get(&format!("/jobs/{done}"), Some(&operator)).await;
    assert!(
        page.contains("id=\"run-again\"") && !page.contains("id=\"retry\""),
        "{page}"
    );
    let (status, _, _) = dash
        .post(
            &format!("/jobs/{done}/retry"),
            Some(&operator),
            &[("csrf", &csrf)],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, page) = dash
        .get(&format!("/jobs/{done}/run-again"), Some(&operator))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, headers, _) = dash
        .post(
            &format!("/jobs/{done}/run-again"),
            Some(&operator),
            &[("csrf", &csrf)],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("/jobs/{done}?done=run_again"));
    assert_eq!(state_of(&dash, done).await, JobState::Available);
}

#[tokio::test]
async fn dashboard_bulk_retry_needs_operator_confirmation_and_csrf_on_postgres() {
    dashboard_flow(Backend::Postgres).await;
}

#[tokio::test]
async fn dashboard_bulk_retry_needs_operator_confirmation_and_csrf_on_sqlite() {
    dashboard_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_operator_filters_sees_the_count_confirms_and_jobs_are_cancelled() {
    let dash = Dash::start_on(Backend::Sqlite, false).await;
    let store = dash.db.store().await;
    let token = dash.token(&["--role", "operator", "--name", "browser-op"]);
    let waiting = [
        job_in(&store, "sync", "ws_1", JobState::Scheduled).await,
        job_in(&store, "sync", "ws_1", JobState::Scheduled).await,
        job_in(&store, "sync", "ws_1", JobState::Scheduled).await,
    ];
    let finished = job_in(&store, "sync", "ws_1", JobState::Completed).await;
    let untouched = job_in(&store, "noop", "ws_1", JobState::Scheduled).await;

    let mut browser = Browser::start().await;
    browser.viewport(1280, 800, false).await;
    browser.goto(&format!("{}/login", dash.base)).await;
    browser
        .wait_until(
            "the sign-in page",
            "document.getElementById('token') !== null",
            Duration::from_secs(10),
        )
        .await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form').submit(); true",
            json!(token)
        ))
        .await;
    browser
        .wait_until(
            "signed in",
            "location.pathname === '/'",
            Duration::from_secs(10),
        )
        .await;
    // Filter by kind in the form.
    browser.goto(&format!("{}/jobs", dash.base)).await;
    browser
        .eval("document.querySelector('form.filters input[name=kind]').value = 'sync'; document.querySelector('form.filters').submit(); true")
        .await;
    browser
        .wait_until(
            "the bulk cancel button",
            "document.getElementById('bulk-cancel') !== null",
            Duration::from_secs(10),
        )
        .await;
    let label = browser
        .eval("document.getElementById('bulk-cancel').textContent")
        .await;
    assert_eq!(label, "Cancel 3 matching");
    browser
        .eval("document.getElementById('bulk-cancel').click(); true")
        .await;
    browser
        .wait_until(
            "the confirmation",
            "document.getElementById('confirm') !== null",
            Duration::from_secs(10),
        )
        .await;
    let text = browser
        .eval("document.querySelector('main').innerText")
        .await;
    let text = text.as_str().unwrap_or("");
    assert!(
        text.contains("Cancel 3 job(s)?") && text.contains("1 completed"),
        "{text}"
    );
    browser
        .screenshot(&crate::dashboard::screenshots().join("jobs-bulk-confirm-1280.png"))
        .await;
    browser
        .eval("document.getElementById('confirm').click(); true")
        .await;
    browser
        .wait_until(
            "the result",
            "document.getElementById('changed') !== null",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('changed').textContent")
            .await,
        "3"
    );
    assert_eq!(states(&store, &waiting).await, [JobState::Cancelled; 3]);
    assert_eq!(
        states(&store, &[finished, untouched]).await,
        [JobState::Completed, JobState::Scheduled]
    );
    // The list again: nothing left to cancel; the job page names who cancelled it.
    browser
        .eval("document.getElementById('back').click(); true")
        .await;
    browser
        .wait_until(
            "the list",
            "location.pathname === '/jobs'",
            Duration::from_secs(10),
        )
        .await;
    let bulk = browser
        .eval("document.getElementById('bulk-cancel') === null")
        .await;
    assert_eq!(bulk, true);
    browser
        .goto(&format!("{}/jobs/{}", dash.base, waiting[0]))
        .await;
    let text = browser
        .eval("document.getElementById('actions').innerText")
        .await;
    assert!(
        text.as_str()
            .unwrap_or("")
            .contains("Cancelled by browser-op (dashboard)"),
        "{text}"
    );
}
