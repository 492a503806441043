//! A process running a QuickBooks sync is killed with SIGKILL between pages, on both
//! backends: what it committed (pages 1 and 2: records, mappings, cursor) stays, what it had
//! in flight is gone with it, and the next run resumes from the cursor without skipping or
//! duplicating a payment (rows and changes counted).
//!
//! The process is this test binary run again on [`sync_in_a_child_process`] (the sync
//! handler with the test seam for the integration), because the `hangar` binary runs `sync`
//! jobs only once the integration store's `IntegrationAccess` is wired in; the database and
//! the simulator are shared over the real database and loopback HTTP.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hangar_integrations::store::SyncStore;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::db::Database;
use hangar_workers::targets::TargetPolicy;

use crate::qbo_sim::oauth::TOKEN_PATH;
use crate::support::{Backend, wait_for};
use crate::sync_support::{FixedAccess, INTEGRATION, SyncWorld};

const CHILD_DB: &str = "HANGAR_SYNC_CHILD_DATABASE_URL";
const CHILD_SIM: &str = "HANGAR_SYNC_CHILD_SIMULATOR";
/// The job both attempts belong to.
const JOB: i64 = 7;

/// The child: one `payments` sync against the parent's database and simulator. Does
/// nothing when not started by [`killed_between_pages`].
#[tokio::test]
#[ignore = "run by killed_between_pages in a child process"]
async fn sync_in_a_child_process() {
    let (Ok(url), Ok(base)) = (std::env::var(CHILD_DB), std::env::var(CHILD_SIM)) else {
        return;
    };
    let store = SyncStore::new(Database::connect(&url).await.expect("connect"));
    let access = Arc::new(FixedAccess::quickbooks_at(
        &base,
        &format!("{base}{TOKEN_PATH}"),
        &["payments"],
    ));
    let handler = SyncHandler::new(
        store,
        access,
        Connectors::builtin(),
        &TargetPolicy::allow_all(),
        Changes::api_only(),
    )
    .expect("handler");
    let args = SyncArgs {
        integration_id: INTEGRATION.into(),
        data_type: "payments".into(),
        trigger: Trigger::Schedule,
        event_id: None,
    };
    handler
        .sync(&args, Some(JOB))
        .await
        .expect("the child's sync");
}

async fn killed_between_pages(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    w.sync_payments()
        .await
        .expect("empty first sync sets the cursor");
    w.sim.switch(|s| s.page_size = 5);
    let ids = w.sim.add_payments(20, chrono::Duration::zero());
    let calls_so_far = w.sim.calls("cdc") + w.sim.calls("query") + w.sim.calls("401");
    w.sim.switch(|s| s.hang_call = Some(calls_so_far + 3));

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "sync_kill9::sync_in_a_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &w.db.url)
        .env(CHILD_SIM, &w.sim.base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("child process");
    let run = wait_for("two pages committed", Duration::from_secs(30), || async {
        let run = w
            .runs()
            .await
            .into_iter()
            .find(|r| r.trigger == "schedule")?;
        (run.records.read == 10).then_some(run)
    })
    .await;
    // SIGKILL: no unwinding, no cleanup, the third page's request still in flight.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert_eq!(run.status, "running", "the killed run never finished");
    assert_eq!(run.records.created, 9, "{run:?}");

    // The job's next attempt (the rescuer hands it to another worker).
    w.sim.switch(|s| s.hang_call = None);
    let args = SyncArgs {
        integration_id: INTEGRATION.into(),
        data_type: "payments".into(),
        trigger: Trigger::Schedule,
        event_id: None,
    };
    w.handler
        .sync(&args, Some(JOB))
        .await
        .expect("sync after the kill");
    let after = w.last_run().await;
    assert_eq!(after.job_id, Some(JOB));
    let killed = w.store.run(None, &run.id).await.unwrap();
    assert_eq!(
        killed.status, "failed",
        "the killed run is closed by the next attempt"
    );
    assert!(
        killed.error.as_deref().unwrap().starts_with("interrupted"),
        "{killed:?}"
    );
    assert_eq!(after.records.created, 11, "{after:?}");
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_changes WHERE action = 'created'")
            .await,
        20,
        "each payment handed on once"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_mappings").await,
        20
    );
    let mut seen = Vec::new();
    for run in w.runs().await {
        for c in w.store.changes(&run.id, 0, 100).await.unwrap() {
            seen.push(c.external_id);
        }
    }
    seen.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(seen, expected, "no payment skipped, none twice");
}

#[tokio::test]
async fn killed_between_pages_postgres() {
    killed_between_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn killed_between_pages_sqlite() {
    killed_between_pages(Backend::Sqlite).await;
}
