//! The dashboard's server-side sessions against the real `hangar serve` on both backends
//! (the cookie is a random id, a session ends after twelve idle hours and at sign-out, failed
//! sign-ins are limited per address), its HTML 404 page, and the jobs list filtered by queue
//! and by several states, as the overview's links ask for.

use hangar_workers::db::Pool;
use hangar_workers::job::{JobId, NewJob};
use hangar_workers::store::Store;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::json;

use crate::dashboard::{Dash, location};
use crate::support::{Backend, TestDb};

/// Runs one statement on the test's database (to age a session, as twelve idle hours would).
async fn exec(db: &TestDb, sql: &str) {
    db.sql(sql).await;
}

/// Seconds until the newest session ends.
async fn session_seconds_left(db: &TestDb) -> i64 {
    match db.database().await.pool() {
        Pool::Postgres(pg) => sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM max(expires_at) - now())::bigint \
             FROM hangar_dashboard_sessions",
        )
        .fetch_one(pg)
        .await
        .expect("query"),
        Pool::Sqlite(lite) => {
            let ms: i64 =
                sqlx::query_scalar("SELECT max(expires_at) FROM hangar_dashboard_sessions")
                    .fetch_one(lite)
                    .await
                    .expect("query");
            (ms - chrono::Utc::now().timestamp_millis()) / 1000
        }
    }
}

async fn sessions_end_when_idle_and_at_sign_out(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    dash.db.store().await;
    let token = dash.token(&["--role", "viewer"]);
    let session = dash.sign_in(&token).await;
    assert_ne!(session, token, "the cookie is not the token");
    assert!(!session.contains(&token["hgr_".len()..]));

    // Sliding: a request moves the end to twelve hours from now.
    let one_hour_ahead = match backend {
        Backend::Postgres => "now() + interval '1 hour'".to_owned(),
        Backend::Sqlite => (chrono::Utc::now().timestamp_millis() + 3_600_000).to_string(),
    };
    exec(
        &dash.db,
        &format!("UPDATE hangar_dashboard_sessions SET expires_at = {one_hour_ahead}"),
    )
    .await;
    assert_eq!(dash.get("/", Some(&session)).await.0, StatusCode::OK);
    let left = session_seconds_left(&dash.db).await;
    assert!(
        (11 * 3600..=12 * 3600).contains(&left),
        "a request extends the session to 12 h: {left} s left"
    );

    // Twelve idle hours later the session has ended: back to the sign-in page.
    let past = match backend {
        Backend::Postgres => "now() - interval '1 second'".to_owned(),
        Backend::Sqlite => (chrono::Utc::now().timestamp_millis() - 1_000).to_string(),
    };
    exec(
        &dash.db,
        &format!("UPDATE hangar_dashboard_sessions SET expires_at = {past}"),
    )
    .await;
    let (status, headers, _) = dash.get("/jobs", Some(&session)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "an ended session");
    assert_eq!(location(&headers), "/login");

    // Sign-out deletes the session: the same cookie, replayed, no longer opens a page.
    let session = dash.sign_in(&token).await;
    let csrf = dash.csrf(&session).await;
    let (status, _, _) = dash
        .post("/logout", Some(&session), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, headers, _) = dash.get("/", Some(&session)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a replayed signed-out cookie"
    );
    assert_eq!(location(&headers), "/login");
}

#[tokio::test]
async fn dashboard_sessions_end_when_idle_and_at_sign_out_on_postgres() {
    sessions_end_when_idle_and_at_sign_out(Backend::Postgres).await;
}

#[tokio::test]
async fn dashboard_sessions_end_when_idle_and_at_sign_out_on_sqlite() {
    sessions_end_when_idle_and_at_sign_out(Backend::Sqlite).await;
}

#[tokio::test]
async fn dashboard_the_eleventh_failed_sign_in_is_answered_429() {
    let dash = Dash::start_on(Backend::Sqlite, false).await;
    let token = dash.token(&["--role", "viewer"]);
    let wrong = format!("hgr_{}", "0".repeat(64));
    for attempt in 1..=10 {
        let (status, _, _) = dash.post("/login", None, &[("token", &wrong)], &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failed sign-in {attempt}");
    }
    for token in [wrong.as_str(), token.as_str()] {
        let (status, headers, page) = dash.post("/login", None, &[("token", token)], &[]).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
        assert!(page.contains("Too many failed sign-ins"), "{page}");
        let wait: u64 = headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=300).contains(&wait), "Retry-After {wait}");
    }
}

#[tokio::test]
async fn dashboard_unknown_pages_answer_an_html_404_and_unknown_api_paths_json() {
    let dash = Dash::start_on(Backend::Sqlite, false).await;
    let session = dash.session(&["--role", "viewer"]).await;
    for who in [None, Some(session.as_str())] {
        let (status, headers, page) = dash.get("/queues/default", who).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{headers:?}"
        );
        assert!(
            page.contains("There is no dashboard page at /queues/default")
                && page.contains("<header>"),
            "{page}"
        );
    }
    let (_, _, page) = dash.get("/queues/default", Some(&session)).await;
    assert!(
        page.contains("href=\"/jobs\""),
        "signed in: the navigation: {page}"
    );
    let (status, headers, body) = dash.get("/api/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers[CONTENT_TYPE].to_str().unwrap().contains("json"));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// A job of `queue` that nothing runs: scheduled a day ahead when `parked`, else available
/// in a queue no pool serves.
async fn job_in(store: &Store, queue: &str, parked: bool) -> JobId {
    let mut job = NewJob::new("noop", json!({}));
    job.queue = queue.to_owned();
    if parked {
        job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    }
    store.enqueue(&job).await.expect("enqueue").id
}

fn lists(page: &str, id: JobId) -> bool {
    page.contains(&format!("href=\"/jobs/{id}\""))
}

async fn jobs_filter_by_queue_and_several_states(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let session = dash.session(&["--role", "owner"]).await;
    let a_scheduled = job_in(&store, "q_alpha", true).await;
    let a_available = job_in(&store, "q_alpha", false).await;
    let a_cancelled = job_in(&store, "q_alpha", false).await;
    store
        .cancel_job(a_cancelled, &crate::support::test_actor())
        .await
        .expect("cancel");
    let b_scheduled = job_in(&store, "q_beta", true).await;

    // The overview's counts link to their own queue's jobs.
    let (_, _, overview) = dash.get("/", Some(&session)).await;
    let link = "/jobs?state=scheduled&amp;queue=q_beta";
    assert!(overview.contains(&format!("href=\"{link}\"")), "{overview}");
    let (status, _, page) = dash.get(&link.replace("&amp;", "&"), Some(&session)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        lists(&page, b_scheduled) && !lists(&page, a_scheduled),
        "{page}"
    );

    let (_, _, page) = dash.get("/jobs?queue=q_alpha", Some(&session)).await;
    for id in [a_scheduled, a_available, a_cancelled] {
        assert!(lists(&page, id), "q_alpha's job {id}");
    }
    assert!(!lists(&page, b_scheduled), "q_beta's job is not in q_alpha");

    let (_, _, page) = dash
        .get(
            "/jobs?state=scheduled,cancelled&queue=q_alpha",
            Some(&session),
        )
        .await;
    assert!(
        lists(&page, a_scheduled) && lists(&page, a_cancelled),
        "{page}"
    );
    assert!(!lists(&page, a_available) && !lists(&page, b_scheduled));
    for checked in ["scheduled", "cancelled"] {
        assert!(
            page.contains(&format!("value=\"{checked}\" checked")),
            "the filter shows the combination: {page}"
        );
    }
    assert!(!page.contains("value=\"available\" checked"), "{page}");
    let (status, _, page) = dash
        .get("/jobs?state=scheduled,sleeping", Some(&session))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("sleeping"), "{page}");
}

#[tokio::test]
async fn dashboard_jobs_filter_by_queue_and_several_states_on_postgres() {
    jobs_filter_by_queue_and_several_states(Backend::Postgres).await;
}

#[tokio::test]
async fn dashboard_jobs_filter_by_queue_and_several_states_on_sqlite() {
    jobs_filter_by_queue_and_several_states(Backend::Sqlite).await;
}
