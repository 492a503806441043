//! A `hangar serve` running a QuickBooks sync is killed with SIGKILL between pages, on both
//! backends: what it committed (pages 1 and 2: records, mappings, cursor) stays, what it had
//! in flight is gone with it, and a second `hangar serve` takes the job over once its lease
//! lapses and resumes from the cursor without skipping or duplicating a payment (rows,
//! changes over HTTP and on `{prefix}:changes` counted).

use std::time::Duration;

use hangar_workers::job::JobState;

use crate::integrations_e2e::{WS, World, stream_changes};
use crate::support::{Backend, wait_final, wait_for};

async fn killed_between_pages(backend: Backend) {
    let mut w = World::start(backend).await;
    w.put_quickbooks(&["payments"]).await;
    let job = w.sync("payments").await;
    assert_eq!(
        job.state,
        JobState::Completed,
        "empty first sync sets the cursor"
    );
    w.sim.switch(|s| s.page_size = 5);
    let ids = w.sim.add_payments(20, chrono::Duration::zero());
    let calls_so_far = w.sim.calls("cdc") + w.sim.calls("query") + w.sim.calls("401");
    // The third page's request never answers: the process is killed while it waits.
    w.sim.switch(|s| s.hang_call = Some(calls_so_far + 3));

    let job = w.start_sync("payments").await;
    let run = wait_for("two pages committed", Duration::from_secs(30), || async {
        let run = w.runs().await.into_iter().next()?;
        (run["records"]["read"] == 10).then_some(run)
    })
    .await;
    // SIGKILL: no unwinding, no cleanup, the third page's request still in flight.
    w.restart_after_kill9("serve-2").await;
    w.sim.switch(|s| s.hang_call = None);
    assert_eq!(run["status"], "running", "the killed run never finished");
    assert_eq!(run["records"]["created"], 9, "{run}");

    // The second server rescues the job when its lease lapses and runs it again.
    let job = wait_final(&w.store, job, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let runs = w.runs().await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    let (after, killed) = (&runs[0], &runs[1]);
    assert_eq!(killed["id"], run["id"]);
    assert_eq!(
        killed["status"], "failed",
        "the killed run is closed by the next attempt"
    );
    assert!(
        killed["error"].as_str().unwrap().starts_with("interrupted"),
        "{killed}"
    );
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["records"]["created"], 11, "{after}");
    assert_eq!(
        w.db.query_i64("SELECT count(*) FROM hangar_sync_mappings")
            .await,
        20
    );
    let mut seen = Vec::new();
    for run in &runs {
        let (_, changes) = w
            .call(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/workspaces/{WS}/sync-runs/{}/changes",
                    run["id"].as_str().unwrap()
                ),
                &w.viewer,
                None,
            )
            .await;
        for c in changes.as_array().unwrap() {
            assert_eq!(c["action"], "created", "{c}");
            seen.push(c["external_id"].as_str().unwrap().to_owned());
        }
    }
    seen.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(seen, expected, "no payment skipped, none twice");
    let on_stream = wait_for("20 changes on the stream", Duration::from_secs(10), || {
        let got = stream_changes(&w.redis);
        async move { (got.len() >= 20).then_some(got) }
    })
    .await;
    let mut streamed: Vec<String> = on_stream
        .iter()
        .map(|c| c["external_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    streamed.sort();
    assert_eq!(streamed, expected, "each payment on the stream once");
}

#[tokio::test]
async fn killed_between_pages_postgres() {
    killed_between_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn killed_between_pages_sqlite() {
    killed_between_pages(Backend::Sqlite).await;
}
