//! The charts over time, on both backends: the pruner samples a queue's depth and lag once a
//! minute into `hangar_queue_samples` (and prunes samples past a week); the completer's
//! duration histogram gives p50/p95/p99 of known durations in the series; a job's page draws
//! its attempts as a time line (a 429 with Retry-After, then a success) with the numbers of
//! `GET /api/v1/jobs/{id}`; and in headless Chromium at 1280×800 and 390×844 the overview's
//! depth, lag and percentile charts, the job's time line, an endpoint's deliveries chart and
//! the sync runs charts are present, carry the API's numbers and do not scroll the page
//! sideways.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::pool::pruner::Pruner;
use hangar_workers::store::Completion;
use reqwest::StatusCode;
use serde_json::{Value, json};

use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::{Counts, NewRun, RunEnd};

use crate::cdp::Browser;
use crate::dashboard::Dash;
use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, enqueue_http, wait_final, wait_for};

/// Waits until the current minute has at least `room` seconds left, so a test's steps fall
/// into one minute's bucket.
async fn inside_one_minute(room: u32) {
    let second = Utc::now().second();
    if second + room >= 60 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
}

/// A time `days` ago in the backend's own form, for SQL.
fn days_ago(backend: Backend, days: i64) -> String {
    match backend {
        Backend::Postgres => format!("now() - interval '{days} days'"),
        Backend::Sqlite => (Utc::now() - chrono::Duration::days(days))
            .timestamp_millis()
            .to_string(),
    }
}

async fn samples_and_percentiles(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    inside_one_minute(20).await;

    // Depth and lag: two jobs due 90 s ago and one due in an hour wait in "sampled".
    for run_at in [-90, -30, 3600] {
        let mut job = NewJob::new("noop", json!({}));
        job.queue = "sampled".to_owned();
        job.run_at = Some(Utc::now() + chrono::Duration::seconds(run_at));
        store.enqueue(&job).await.expect("enqueue");
    }
    let pruner = Pruner::new(store.clone(), "sampled", Duration::from_secs(3600), "t1");
    assert!(pruner.run_once().await.expect("pass").held);
    assert!(pruner.run_once().await.expect("pass").held);
    let rows = "SELECT count(*) FROM hangar_queue_samples WHERE queue = 'sampled'";
    assert_eq!(db.query_i64(rows).await, 1, "one sample per minute");
    // Another process's sampler in the same minute writes nothing.
    assert!(!store.sample_queue("sampled").await.expect("sample"));
    assert_eq!(db.query_i64(rows).await, 1);

    // The durations: 18 attempts of 10 ms, one of 300 ms, one of 5 s, completed through the
    // store with exact finish times.
    for _ in 0..20 {
        let mut job = NewJob::new("noop", json!({}));
        job.queue = "durations".to_owned();
        store.enqueue(&job).await.expect("enqueue");
    }
    let claimed = store
        .claim("durations", "t", 20, Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 20);
    let done: Vec<Completion> = claimed
        .iter()
        .enumerate()
        .map(|(i, job)| Completion {
            id: job.id,
            lease_token: job.lease_token,
            attempt: job.attempt,
            finished_at: job.started_at
                + chrono::Duration::milliseconds(match i {
                    0 => 300,
                    1 => 5_000,
                    _ => 10,
                }),
        })
        .collect();
    assert!(store.complete(&done).await.expect("complete").is_empty());

    let series = store
        .queue_series(Utc::now(), Duration::from_secs(60), 60)
        .await
        .expect("series");
    let of = |queue: &str| {
        series
            .iter()
            .find(|s| s.queue == queue)
            .unwrap_or_else(|| panic!("no series of {queue}: {series:?}"))
    };
    let sampled = of("sampled").points.last().expect("a point").clone();
    assert_eq!(sampled.depth, Some(3), "{sampled:?}");
    let lag = sampled.lag_seconds.expect("lag");
    assert!(
        (89.0..120.0).contains(&lag),
        "the oldest due job's wait: {lag}"
    );
    let finished: Vec<_> = of("durations")
        .points
        .iter()
        .filter(|p| p.completed > 0)
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    // Ranks 10, 19 and 20 of 20: under 11 ms, under 362 ms, under 5 793 ms.
    let p = finished[0];
    assert_eq!(
        (p.completed, p.p50_ms, p.p95_ms, p.p99_ms),
        (20, Some(11), Some(362), Some(5_793))
    );
    assert_eq!(
        p.mean_duration_ms,
        Some((18.0 * 10.0 + 300.0 + 5_000.0) / 20.0)
    );

    // Samples older than a week go with the pruner's next pass; recent ones stay.
    db.sql(&format!(
        "INSERT INTO hangar_queue_samples (queue, minute, depth, lag_ms) \
         VALUES ('sampled', {}, 5, 0), ('sampled', {}, 6, 0)",
        days_ago(backend, 8),
        days_ago(backend, 6)
    ))
    .await;
    assert_eq!(db.query_i64(rows).await, 3);
    let next = Pruner::new(store.clone(), "sampled", Duration::from_secs(3600), "t1");
    assert!(next.run_once().await.expect("pass").held);
    assert_eq!(db.query_i64(rows).await, 2, "the 8-day-old sample is gone");
}

#[tokio::test]
async fn queue_samples_and_duration_percentiles_on_postgres() {
    samples_and_percentiles(Backend::Postgres).await;
}

#[tokio::test]
async fn queue_samples_and_duration_percentiles_on_sqlite() {
    samples_and_percentiles(Backend::Sqlite).await;
}

/// RFC 3339 from the API as Unix milliseconds.
fn ms(value: &Value) -> i64 {
    DateTime::parse_from_rfc3339(value.as_str().expect("time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// The value of attribute `name` on the first element after `from` in `page`.
fn attribute(page: &str, from: &str, name: &str) -> String {
    let at = page
        .find(from)
        .unwrap_or_else(|| panic!("no {from}: {page}"));
    let rest = &page[at..];
    let start = rest
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name}"))
        + name.len()
        + 2;
    rest[start..start + rest[start..].find('"').expect("end")].to_owned()
}

/// The timeline's numbers as `GET /api/v1/jobs/{id}` gives them: attempts, starts, ends,
/// outcomes.
fn api_timeline(job: &Value) -> [String; 4] {
    let attempts = job["attempts"].as_array().expect("attempts");
    let join = |f: &dyn Fn(&Value) -> String| attempts.iter().map(f).collect::<Vec<_>>().join(",");
    [
        join(&|a| a["attempt"].to_string()),
        join(&|a| ms(&a["started_at"]).to_string()),
        join(&|a| {
            if a["finished_at"].is_null() {
                String::new()
            } else {
                ms(&a["finished_at"]).to_string()
            }
        }),
        join(&|a| a["error_class"].as_str().unwrap_or("ok").to_owned()),
    ]
}

/// A job that was rate limited with `Retry-After: 1` once and then completed.
async fn retry_after_job(dash: &Dash, receiver: &Receiver) -> (i64, Value, String) {
    let store = dash.db.store().await;
    let key = format!("tl{}", rand_suffix());
    let id = enqueue_http(
        &store,
        &receiver.url(&format!("/ratelimited/{key}/1/1")),
        json!({}),
    )
    .await;
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let token = dash.token(&["--role", "viewer"]);
    let api: Value = dash
        .http
        .get(format!("{}/api/v1/jobs/{}", dash.base, id.0))
        .bearer_auth(&token)
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    (id.0, api, token)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        .into()
}

async fn the_timeline_draws_the_attempts(backend: Backend) {
    let dash = Dash::start_on(backend, true).await;
    let receiver = Receiver::start().await;
    let (id, api, token) = retry_after_job(&dash, &receiver).await;
    let session = dash.sign_in(&token).await;
    let (status, _, page) = dash.get(&format!("/jobs/{id}"), Some(&session)).await;
    assert_eq!(status, StatusCode::OK);
    let svg = "<figure class=\"timeline\"";
    let drawn = ["data-attempts", "data-starts", "data-ends", "data-outcomes"]
        .map(|name| attribute(&page, svg, name));
    assert_eq!(
        drawn,
        api_timeline(&api),
        "the time line draws the API's attempts"
    );
    assert_eq!(drawn[3], "rate_limit,ok");
    assert_eq!(attribute(&page, svg, "data-waits"), "retry_after");
    let waited: i64 = attribute(&page, svg, "data-wait-ms").parse().expect("ms");
    let attempts = api["attempts"].as_array().expect("attempts");
    assert_eq!(
        waited,
        ms(&attempts[1]["started_at"]) - ms(&attempts[0]["finished_at"])
    );
    assert!(waited >= 1_000, "Retry-After: 1 is honoured: {waited} ms");
    assert!(page.contains("Retry-After</b>"), "the wait is named");
}

#[tokio::test]
async fn a_jobs_timeline_shows_a_retry_after_wait_on_postgres() {
    the_timeline_draws_the_attempts(Backend::Postgres).await;
}

#[tokio::test]
async fn a_jobs_timeline_shows_a_retry_after_wait_on_sqlite() {
    the_timeline_draws_the_attempts(Backend::Sqlite).await;
}

/// The series of queue `default` from the API: per series name, its values as numbers
/// (`None` for null).
async fn api_lines(dash: &Dash, token: &str) -> Vec<Vec<Option<f64>>> {
    let all: Value = dash
        .http
        .get(format!("{}/api/v1/queues/series", dash.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("series")
        .json()
        .await
        .expect("json");
    let Some(one) = all
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["queue"] == "default")
    else {
        return Vec::new();
    };
    let points = one["points"].as_array().expect("points");
    ["depth", "lag_seconds", "p50_ms", "p95_ms", "p99_ms"]
        .iter()
        .map(|name| points.iter().map(|p| p[name].as_f64()).collect())
        .collect()
}

/// Parses a line chart's `data-values` (empty field: no value).
fn parse_lines(values: &str) -> Vec<Vec<Option<f64>>> {
    values
        .split(';')
        .map(|column| {
            column
                .split(',')
                .map(|n| (!n.is_empty()).then(|| n.parse().expect("number")))
                .collect()
        })
        .collect()
}

async fn charts_in_a_browser(backend: Backend) {
    let dash = Dash::start_on(backend, true).await;
    let receiver = Receiver::start().await;
    let store = dash.db.store().await;
    for path in ["/ok", "/slow/300", "/ok"] {
        let id = enqueue_http(&store, &receiver.url(path), json!({})).await;
        wait_final(&store, id, Duration::from_secs(30)).await;
    }
    let (id, api_job, token) = retry_after_job(&dash, &receiver).await;
    // The server's pruner samples the queue within a pass (5 s).
    wait_for(
        "a sample of the default queue",
        Duration::from_secs(30),
        || async {
            let lines = api_lines(&dash, &token).await;
            lines
                .first()
                .and_then(|depth| depth.iter().any(Option::is_some).then_some(()))
        },
    )
    .await;

    // The pages of an endpoint and of a workspace's sync runs: an owner reads both.
    let owner = dash.token(&["--role", "owner"]);
    let created: Value = dash
        .http
        .post(format!(
            "{}/api/v1/workspaces/ws_c/webhook-endpoints",
            dash.base
        ))
        .bearer_auth(&owner)
        .json(&json!({"url": receiver.url("/ok"), "event_types": ["trip.created"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let endpoint = created["id"].as_str().expect("endpoint id").to_owned();
    let runs = SyncStore::new(store.database().clone());
    for (id, status) in [("run_c1", "succeeded"), ("run_c2", "failed")] {
        runs.start_run(&NewRun {
            id: id.to_owned(),
            integration_id: "int_c".to_owned(),
            workspace_id: "ws_c".to_owned(),
            provider: "quickbooks".to_owned(),
            data_type: "payments".to_owned(),
            direction: "in".to_owned(),
            trigger: "manual".to_owned(),
            job_id: None,
            credential_version: None,
            cursor_before: None,
        })
        .await
        .expect("start");
        runs.add_run_counts(
            id,
            &Counts {
                read: 12,
                updated: 3,
                ..Counts::default()
            },
        )
        .await
        .expect("counts");
        runs.finish_run(
            id,
            &RunEnd {
                status: status.to_owned(),
                cursor_after: None,
                provider_calls: 1,
                rate_wait_ms: 0,
                error_class: None,
                error: None,
                log: Vec::new(),
                credential_version: None,
            },
        )
        .await
        .expect("finish");
    }

    let mut browser = Browser::start().await;
    browser.viewport(1280, 800, false).await;
    browser.goto(&format!("{}/login", dash.base)).await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form').submit(); true",
            json!(owner)
        ))
        .await;
    browser
        .wait_until(
            "the overview",
            "document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'",
            Duration::from_secs(10),
        )
        .await;
    let read = "JSON.stringify(['waiting', 'lag', 'p50,p95,p99'].map(s => { \
        const svg = document.querySelector(`section[data-queue=\"default\"] svg[data-series=\"${s}\"]`); \
        return svg ? [svg.getAttribute('data-values'), svg.getBoundingClientRect().width] : null; }))";
    for (width, height, mobile) in [(1280, 800, false), (390, 844, true)] {
        browser.viewport(width, height, mobile).await;
        let mut matched = false;
        for _ in 0..3 {
            let before = api_lines(&dash, &token).await;
            browser.goto(&format!("{}/", dash.base)).await;
            let charts = browser.eval(read).await;
            let after = api_lines(&dash, &token).await;
            let charts: Vec<Option<(String, f64)>> =
                serde_json::from_str(charts.as_str().expect("text")).expect("charts");
            let mut drawn = Vec::new();
            for chart in &charts {
                let (values, shown) = chart.clone().expect("the chart is on the page");
                assert!(
                    shown > 100.0,
                    "the chart is drawn {shown} px wide at {width}"
                );
                drawn.extend(parse_lines(&values));
            }
            if before == after {
                assert_eq!(drawn, after, "the charts draw the API's numbers at {width}");
                matched = true;
                break;
            }
        }
        assert!(matched, "the series kept changing");
        let widths = browser
            .eval("JSON.stringify([document.documentElement.scrollWidth, document.documentElement.clientWidth])")
            .await;
        let [scroll, client]: [i64; 2] =
            serde_json::from_str(widths.as_str().expect("text")).expect("widths");
        assert!(
            scroll <= client,
            "the overview scrolls sideways at {width}: {scroll} > {client}"
        );

        browser.goto(&format!("{}/jobs/{id}", dash.base)).await;
        let timeline = browser
            .eval(
                "JSON.stringify((s => s && ['data-attempts', 'data-starts', 'data-ends', 'data-outcomes']\
                 .map(a => s.getAttribute(a)))(document.querySelector('figure.timeline svg')))",
            )
            .await;
        let timeline: Vec<String> =
            serde_json::from_str(timeline.as_str().expect("text")).expect("the time line is there");
        assert_eq!(timeline, api_timeline(&api_job).to_vec(), "at {width}");
        let widths = browser
            .eval("JSON.stringify([document.documentElement.scrollWidth, document.documentElement.clientWidth])")
            .await;
        let [scroll, client]: [i64; 2] =
            serde_json::from_str(widths.as_str().expect("text")).expect("widths");
        assert!(
            scroll <= client,
            "the job page scrolls sideways at {width}: {scroll} > {client}"
        );

        // The endpoint's and the sync runs' charts carry the API's numbers too.
        for (path, api, series, fields) in [
            (
                format!("/webhooks/{endpoint}"),
                format!("/api/v1/workspaces/ws_c/webhook-endpoints/{endpoint}/series"),
                "succeeded,failed,retrying,waiting",
                vec!["succeeded", "failed", "retrying", "waiting"],
            ),
            (
                "/sync-runs?workspace=ws_c".to_owned(),
                "/api/v1/workspaces/ws_c/sync-runs/series".to_owned(),
                "succeeded,failed,rate_limited,running",
                vec!["succeeded", "failed", "rate_limited", "running"],
            ),
            (
                "/sync-runs?workspace=ws_c".to_owned(),
                "/api/v1/workspaces/ws_c/sync-runs/series".to_owned(),
                "read,applied",
                vec!["records_read", "records_applied"],
            ),
        ] {
            browser.goto(&format!("{}{path}", dash.base)).await;
            let values = browser
                .eval(&format!(
                    "JSON.stringify((s => s && [s.getAttribute('data-values'), s.getBoundingClientRect().width])\
                     (document.querySelector('svg[data-series=\"{series}\"]')))"
                ))
                .await;
            let (values, shown): (String, f64) =
                serde_json::from_str(values.as_str().expect("text"))
                    .unwrap_or_else(|_| panic!("no chart of {series} on {path}: {values}"));
            assert!(
                shown > 100.0,
                "{path}: the chart is drawn {shown} px wide at {width}"
            );
            let answer: Value = dash
                .http
                .get(format!("{}{api}", dash.base))
                .bearer_auth(&owner)
                .send()
                .await
                .expect("series")
                .json()
                .await
                .expect("json");
            let points = answer["points"].as_array().expect("points");
            let expected: Vec<Vec<Option<f64>>> = fields
                .iter()
                .map(|f| points.iter().map(|p| p[f].as_f64()).collect())
                .collect();
            assert_eq!(parse_lines(&values), expected, "{path} at {width}");
            let widths = browser
                .eval("JSON.stringify([document.documentElement.scrollWidth, document.documentElement.clientWidth])")
                .await;
            let [scroll, client]: [i64; 2] =
                serde_json::from_str(widths.as_str().expect("text")).expect("widths");
            assert!(
                scroll <= client,
                "{path} scrolls sideways at {width}: {scroll} > {client}"
            );
        }
    }
}

#[tokio::test]
async fn charts_over_time_in_chromium_on_postgres() {
    charts_in_a_browser(Backend::Postgres).await;
}

#[tokio::test]
async fn charts_over_time_in_chromium_on_sqlite() {
    charts_in_a_browser(Backend::Sqlite).await;
}
