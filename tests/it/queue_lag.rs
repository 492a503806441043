//! Queue lag is the age of the oldest runnable job (available, scheduled or retryable) whose
//! `run_at` has passed, on both backends, as `/metrics` and the store report it: a failed job,
//! however old, is no lag.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::store::Store;
use serde_json::json;

use crate::support::{Backend, Receiver, TestDb, fast_pools, serve_http, wait_final};

/// `hangar_queue_lag_seconds{queue="QUEUE"}` of a `/metrics` scrape.
async fn scraped_lag(base: &str, queue: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series = format!("hangar_queue_lag_seconds{{queue=\"{queue}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().expect("a number"))
}

async fn stored_lag(store: &Store, queue: &str) -> f64 {
    store
        .queue_stats()
        .await
        .expect("stats")
        .into_iter()
        .find(|s| s.queue == queue)
        .map_or(0.0, |s| s.lag_seconds)
}

async fn lag_counts_runnable_jobs_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(&fast_pools("", ""));
    let store = db.store().await;
    let receiver = Receiver::start().await;

    // An http job due 200 s ago that fails for good at its first attempt (a 400 is never
    // retried), run by the server's own pool.
    let mut failing = NewJob::new(
        "http",
        json!({"url": receiver.url("/status/400"), "method": "POST"}),
    );
    failing.run_at = Some(Utc::now() - chrono::Duration::seconds(200));
    let failed = store.enqueue(&failing).await.expect("enqueue").id;
    let (_serve, base) = serve_http(&db).await;
    let job = wait_final(&store, failed, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");

    // Nothing runnable: no lag, whatever the failed job's age.
    assert_eq!(stored_lag(&store, "default").await, 0.0);
    assert_eq!(scraped_lag(&base, "default").await, Some(0.0));

    // A job 30 s overdue in a queue no pool serves: lag ~30 s there, still none in default.
    let mut parked = NewJob::new("noop", json!({}));
    parked.queue = "parked".to_owned();
    parked.run_at = Some(Utc::now() - chrono::Duration::seconds(30));
    store.enqueue(&parked).await.expect("enqueue");
    let lag = stored_lag(&store, "parked").await;
    assert!((29.0..45.0).contains(&lag), "parked lag {lag}");
    let scraped = scraped_lag(&base, "parked")
        .await
        .expect("parked is reported");
    assert!(
        (29.0..45.0).contains(&scraped),
        "scraped parked lag {scraped}"
    );
    assert_eq!(scraped_lag(&base, "default").await, Some(0.0));
}

#[tokio::test]
async fn lag_counts_runnable_jobs_only_on_postgres() {
    lag_counts_runnable_jobs_only(Backend::Postgres).await;
}

#[tokio::test]
async fn lag_counts_runnable_jobs_only_on_sqlite() {
    lag_counts_runnable_jobs_only(Backend::Sqlite).await;
}
