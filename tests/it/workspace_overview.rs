//! A workspace token's overview (issue 15), on both backends: its own workspace's queues by
//! state, its latest failures and its webhook endpoints; nothing of another workspace.

use chrono::Utc;
use hangar_workers::db::Pool;
use hangar_workers::job::{JobId, NewJob};
use hangar_workers::store::Store;
use reqwest::StatusCode;
use serde_json::json;

use crate::dashboard::Dash;
use crate::support::Backend;

/// A job of `workspace` in `queue`, marked failed with `error`.
async fn failed_job(store: &Store, workspace: &str, queue: &str, error: &str) -> JobId {
    let mut job = NewJob::new("noop", json!({}));
    job.workspace_id = Some(workspace.to_owned());
    job.queue = queue.to_owned();
    job.run_at = Some(Utc::now() + chrono::Duration::days(1));
    let id = store.enqueue(&job).await.expect("enqueue").id;
    let updated = match store.database().pool() {
        Pool::Postgres(pool) => {
            sqlx::query("UPDATE hangar_jobs SET state = 'failed', last_error = $2 WHERE id = $1")
                .bind(id.0)
                .bind(error)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }
        Pool::Sqlite(pool) => {
            sqlx::query("UPDATE hangar_jobs SET state = 'failed', last_error = ?2 WHERE id = ?1")
                .bind(id.0)
                .bind(error)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }
    };
    assert_eq!(updated.expect("mark failed"), 1);
    id
}

async fn workspace_overview(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    failed_job(&store, "ws_a", "alpha-queue", "alpha-broke").await;
    failed_job(&store, "ws_b", "bravo-queue", "bravo-broke").await;
    let mut parked = NewJob::new("noop", json!({}));
    parked.workspace_id = Some("ws_a".to_owned());
    parked.queue = "alpha-waiting".to_owned();
    parked.run_at = Some(Utc::now() + chrono::Duration::days(1));
    store.enqueue(&parked).await.expect("enqueue");
    let a = dash
        .session(&["--role", "viewer", "--workspace", "ws_a"])
        .await;
    let b = dash
        .session(&["--role", "viewer", "--workspace", "ws_b"])
        .await;
    let (status, _, page_a) = dash.get("/", Some(&a)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, page_b) = dash.get("/", Some(&b)).await;
    for (page, own, other) in [
        (
            &page_a,
            ["alpha-queue", "alpha-broke"],
            ["bravo-queue", "bravo-broke"],
        ),
        (
            &page_b,
            ["bravo-queue", "bravo-broke"],
            ["alpha-queue", "alpha-broke"],
        ),
    ] {
        assert!(page.contains("Your workspace's queues"), "{page}");
        assert!(page.contains("Recent failures"), "{page}");
        for shown in own {
            assert!(page.contains(shown), "{shown} on its own overview: {page}");
        }
        for hidden in other {
            assert!(!page.contains(hidden), "{hidden} leaked: {page}");
        }
    }
    assert!(page_a.contains("alpha-waiting"));
    assert!(!page_b.contains("alpha-waiting"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_overview_shows_only_its_own_queues_and_failures_postgres() {
    workspace_overview(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_overview_shows_only_its_own_queues_and_failures_sqlite() {
    workspace_overview(Backend::Sqlite).await;
}
