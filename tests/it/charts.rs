//! The per-minute queue counters and the overview's charts, on both backends: after real
//! jobs complete, fail for good and fail once then complete, `GET /api/v1/queues/series`
//! counts them, and the chart on the overview draws exactly the API's numbers (hour and day
//! windows); workspace tokens get no series; the pruner drops counters older than a week.

use std::time::Duration;

use hangar_workers::job::JobState;
use hangar_workers::pool::pruner::Pruner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::Dash;
use crate::receiver::Receiver;
use crate::support::{Backend, enqueue_http, wait_final};

/// The API's series of `queue` in `window`: `[[completed…], [failed…], [retried…]]`.
async fn api_series(dash: &Dash, token: &str, window: &str, queue: &str) -> Vec<Vec<i64>> {
    let response = dash
        .http
        .get(format!(
            "{}/api/v1/queues/series?window={window}",
            dash.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("series");
    assert_eq!(response.status(), StatusCode::OK);
    let all: Value = response.json().await.expect("json");
    let one = all
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["queue"] == queue)
        .unwrap_or_else(|| panic!("no series for {queue}: {all}"));
    let step = if window == "day" { 900 } else { 60 };
    assert_eq!(one["step_seconds"], step, "{one}");
    let points = one["points"].as_array().expect("points");
    assert_eq!(points.len(), if window == "day" { 96 } else { 60 });
    ["completed", "failed", "retried"]
        .iter()
        .map(|name| {
            points
                .iter()
                .map(|p| p[name].as_i64().expect("n"))
                .collect()
        })
        .collect()
}

/// The numbers the overview's chart of `queue` draws, as its `data-values` carry them.
fn page_series(page: &str, queue: &str) -> Vec<Vec<i64>> {
    let at = page
        .find(&format!("data-queue=\"{queue}\""))
        .unwrap_or_else(|| panic!("no chart of {queue}: {page}"));
    let rest = &page[at..];
    let start = rest.find("data-values=\"").expect("data-values") + 13;
    let values = &rest[start..start + rest[start..].find('"').expect("end")];
    assert!(
        rest[..start].contains("data-series=\"completed,failed,retried\""),
        "{rest}"
    );
    values
        .split(';')
        .map(|column| column.split(',').map(|n| n.parse().expect("n")).collect())
        .collect()
}

/// The page's and the API's series of `queue`, read until a minute did not turn between
/// the two reads.
async fn both(dash: &Dash, token: &str, session: &str, window: &str) -> Vec<Vec<i64>> {
    for _ in 0..3 {
        let before = api_series(dash, token, window, "default").await;
        let (status, _, page) = dash.get(&format!("/?window={window}"), Some(session)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<svg"), "{page}");
        let drawn = page_series(&page, "default");
        let after = api_series(dash, token, window, "default").await;
        if before == after {
            assert_eq!(drawn, after, "the chart draws the API's numbers ({window})");
            return after;
        }
    }
    panic!("the series kept changing");
}

async fn the_chart_draws_the_apis_counts(backend: Backend) {
    let dash = Dash::start_on(backend, true).await;
    let store = dash.db.store().await;
    let receiver = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(enqueue_http(&store, &receiver.url("/ok"), json!({})).await);
    }
    let bad = enqueue_http(&store, &receiver.url("/status/400"), json!({})).await;
    let flaky = enqueue_http(&store, &receiver.url("/flaky/charts/1/503"), json!({})).await;
    for id in ids.iter().chain([&flaky]) {
        let job = wait_final(&store, *id, Duration::from_secs(30)).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
    }
    let job = wait_final(&store, bad, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");

    let token = dash.token(&["--role", "viewer"]);
    let session = dash.sign_in(&token).await;
    for window in ["hour", "day"] {
        let series = both(&dash, &token, &session, window).await;
        let totals: Vec<i64> = series.iter().map(|s| s.iter().sum()).collect();
        assert_eq!(totals, [4, 1, 1], "completed, failed, retried ({window})");
    }
    // The mean duration is there for the minutes that ran attempts.
    let response = dash
        .http
        .get(format!("{}/api/v1/queues/series", dash.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("series");
    let all: Value = response.json().await.expect("json");
    let points = all[0]["points"].as_array().expect("points");
    assert!(
        points
            .iter()
            .filter(|p| p["completed"].as_i64() > Some(0))
            .all(|p| p["mean_duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0)),
        "{all}"
    );
    assert!(
        points
            .iter()
            .filter(|p| p["completed"] == 0 && p["failed"] == 0 && p["retried"] == 0)
            .all(|p| p["mean_duration_ms"].is_null()),
        "{all}"
    );

    // Queue totals span every workspace: a workspace token gets none, and a bad window is a 400.
    let scoped = dash.token(&["--role", "viewer", "--workspace", "ws_a"]);
    for (token, path, status) in [
        (&scoped, "/api/v1/queues/series", StatusCode::FORBIDDEN),
        (
            &token,
            "/api/v1/queues/series?window=week",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = dash
            .http
            .get(format!("{}{path}", dash.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("series");
        assert_eq!(response.status(), status, "{path}");
    }

    // Counters older than a week go with the pruner's next pass; the recent ones stay. (A
    // queue no pool of the server prunes, so that this pruner gets the queue's lease.)
    let (old, recent) = match backend {
        Backend::Postgres => (
            "now() - interval '8 days'".to_owned(),
            "now() - interval '6 days'".to_owned(),
        ),
        Backend::Sqlite => {
            let ago = |d| (chrono::Utc::now() - chrono::Duration::days(d)).timestamp_millis();
            (ago(8).to_string(), ago(6).to_string())
        }
    };
    dash.db
        .sql(&format!(
            "INSERT INTO hangar_queue_minutes (queue, minute, completed) \
             VALUES ('elsewhere', {old}, 7), ('elsewhere', {recent}, 2)"
        ))
        .await;
    let rows = "SELECT count(*) FROM hangar_queue_minutes WHERE queue = 'elsewhere'";
    assert_eq!(dash.db.query_i64(rows).await, 2);
    let pass = Pruner::new(
        store.clone(),
        "elsewhere",
        Duration::from_secs(3600),
        "charts",
    )
    .run_once()
    .await
    .expect("prune");
    assert!(pass.held);
    assert_eq!(dash.db.query_i64(rows).await, 1);
}

#[tokio::test]
async fn charts_draw_the_series_api_numbers_on_postgres() {
    the_chart_draws_the_apis_counts(Backend::Postgres).await;
}

#[tokio::test]
async fn charts_draw_the_series_api_numbers_on_sqlite() {
    the_chart_draws_the_apis_counts(Backend::Sqlite).await;
}
