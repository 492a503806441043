//! A failure of the database underneath the API, on both backends: the caller gets the
//! contract's error body with a generic message (500, code `internal`), never the database's
//! own words (SQL, table names), which go to the server's log; the dashboard shows the same
//! status and message on its error page.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Backend, TestDb, dashboard_session, serve_http, stdout_ok, wait_for};

/// What neither the API nor the dashboard may show of a database error.
fn leaks(text: &str) -> bool {
    [
        "hangar_jobs",
        "SELECT",
        "relation",
        "no such table",
        "database error",
    ]
    .iter()
    .any(|word| text.contains(word))
}

async fn a_database_failure_is_a_generic_500(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    let token = stdout_ok(&db.run(&["tokens", "create", "--role", "owner"]))
        .trim()
        .to_owned();
    let (serve, base) = serve_http(&db).await;
    let cookie = dashboard_session(&base, &token).await;
    let http = reqwest::Client::new();
    let jobs = || http.get(format!("{base}/api/v1/jobs")).bearer_auth(&token);
    assert_eq!(
        jobs().send().await.expect("answer").status(),
        StatusCode::OK
    );

    // The jobs table disappears under the running server (as a botched manual migration
    // would leave it): every query of it now fails inside the database.
    db.sql("ALTER TABLE hangar_jobs RENAME TO hangar_jobs_gone")
        .await;

    let response = jobs().send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.expect("the error body is JSON");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("nothing was changed"), "{body}");
    assert!(
        !leaks(&body.to_string()),
        "the database's words leaked: {body}"
    );

    let page = http
        .get(format!("{base}/jobs"))
        .header("cookie", format!("hangar_session={cookie}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = page.text().await.expect("page");
    // The page's own text: its heading and the error note (the stylesheet and the script
    // around them are the same on every page).
    let shown = html
        .split_once("<h1>")
        .and_then(|(_, main)| main.split_once("</main>"))
        .map(|(shown, _)| shown)
        .expect("an error heading");
    assert!(shown.contains("nothing was changed"), "{html}");
    assert!(
        !leaks(shown),
        "the database's words leaked on the page: {shown}"
    );

    // The operators still learn what the database said.
    wait_for("the error in the log", Duration::from_secs(10), || async {
        serve
            .log()
            .lines()
            .any(|l| l.contains("internal error") && l.contains("hangar_jobs"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_database_failure_is_a_generic_500_postgres() {
    a_database_failure_is_a_generic_500(Backend::Postgres).await;
}

#[tokio::test]
async fn a_database_failure_is_a_generic_500_sqlite() {
    a_database_failure_is_a_generic_500(Backend::Sqlite).await;
}
