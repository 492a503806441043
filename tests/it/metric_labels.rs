//! `/metrics` labels every outcome of `hangar_jobs_total` with its queue, completions
//! included (they had none), on both backends: a dashboard can then chart each queue's
//! completed and failed jobs side by side.

use std::time::Duration;

use hangar_workers::job::{JobState, NewJob};
use serde_json::json;

use crate::support::{Backend, TestDb, serve_http, wait_state};

/// The value of the sample with exactly these labels, if `/metrics` has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn completions_carry_their_queue(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let done = store
        .enqueue(&NewJob::new("noop", json!({})))
        .await
        .expect("enqueue")
        .id;
    // A job that fails at once (an unparsable URL is a client failure, never retried).
    let mut failing = NewJob::new("http", json!({"url": "http://exa mple.com/"}));
    failing.max_attempts = 1;
    let failed = store.enqueue(&failing).await.expect("enqueue").id;
    wait_state(&store, done, JobState::Completed, Duration::from_secs(30)).await;
    wait_state(&store, failed, JobState::Failed, Duration::from_secs(30)).await;

    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics text");
    assert_eq!(
        sample(
            &text,
            "hangar_jobs_total{queue=\"default\",outcome=\"completed\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("hangar_jobs_total{"))
            .all(|l| l.contains("queue=\"default\"")),
        "an outcome without its queue: {text}"
    );
}

#[tokio::test]
async fn completions_carry_their_queue_postgres() {
    completions_carry_their_queue(Backend::Postgres).await;
}

#[tokio::test]
async fn completions_carry_their_queue_sqlite() {
    completions_carry_their_queue(Backend::Sqlite).await;
}
