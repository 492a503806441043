//! The dashboard's Workers page on both backends: the serving process with its pools, a
//! queue paused from the page (CSRF, same origin, operator, a token for every workspace)
//! accepts a job and claims none, and resuming from the page runs it.

use std::time::Duration;

use reqwest::StatusCode;

use crate::dashboard::{Dash, location};
use crate::support::{Backend, stdout_ok, wait_for};

async fn pause_and_resume_from_the_page(backend: Backend) {
    let dash = Dash::start_on(backend, true).await;
    let operator = dash.session(&["--role", "operator"]).await;
    let csrf = dash.csrf(&operator).await;
    let (status, _, page) = dash.get("/workers", Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<h1>Workers</h1>"), "{page}");
    assert!(
        page.contains(">alive<"),
        "the serving process is listed: {page}"
    );
    assert!(page.contains(">serve<"), "{page}");
    assert!(
        page.contains("value=\"default\""),
        "a pause button for default: {page}"
    );

    let same_origin = [
        ("origin", dash.base.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    // A viewer sees the page, without buttons, and cannot pause.
    let viewer = dash.session(&["--role", "viewer"]).await;
    let viewer_csrf = dash.csrf(&viewer).await;
    let (_, _, shown) = dash.get("/workers", Some(&viewer)).await;
    assert!(!shown.contains("/queues/pause"), "{shown}");
    let (status, _, _) = dash
        .post(
            "/queues/pause",
            Some(&viewer),
            &[("csrf", &viewer_csrf), ("queue", "default")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A wrong CSRF token, and an unknown queue.
    let (status, _, _) = dash
        .post(
            "/queues/pause",
            Some(&operator),
            &[("csrf", "0123"), ("queue", "default")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = dash
        .post(
            "/queues/pause",
            Some(&operator),
            &[("csrf", &csrf), ("queue", "nowhere")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, _) = dash
        .post(
            "/queues/pause",
            Some(&operator),
            &[("csrf", &csrf), ("queue", "default")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/workers?done=paused");
    let (_, _, page) = dash.get("/workers?done=paused", Some(&operator)).await;
    assert!(
        page.contains(">paused<") && page.contains(">Resume<"),
        "{page}"
    );

    let id = stdout_ok(&dash.db.run(&["enqueue", "noop"]))
        .trim()
        .to_owned();
    let state = |id: String| {
        let out = dash.db.run(&["jobs", "show", &id, "--json"]);
        let job: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
        job["state"].as_str().unwrap().to_owned()
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(state(id.clone()), "available");

    let (status, headers, _) = dash
        .post(
            "/queues/resume",
            Some(&operator),
            &[("csrf", &csrf), ("queue", "default")],
            &same_origin,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/workers?done=resumed");
    wait_for("the job to run", Duration::from_secs(10), || async {
        (state(id.clone()) == "completed").then_some(())
    })
    .await;

    // A workspace token sees a note, not the fleet.
    let scoped = dash
        .session(&["--role", "operator", "--workspace", "ws_1"])
        .await;
    let (status, _, page) = dash.get("/workers", Some(&scoped)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("only tokens valid for every"), "{page}");
    assert!(!page.contains(">serve<"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_page_pauses_and_resumes_a_queue_postgres() {
    pause_and_resume_from_the_page(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_page_pauses_and_resumes_a_queue_sqlite() {
    pause_and_resume_from_the_page(Backend::Sqlite).await;
}
