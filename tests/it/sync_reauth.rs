//! The 401 rule of a sync, over the real integrations' store, on both backends: a 401
//! refreshes the token once (single-flight) and retries once; a 401 again, with the token the
//! refresh gave, marks the connection `needs_reauth`, stops its schedules and raises one
//! critical alert, for exactly one call to the token endpoint (not a second refresh by the
//! job's retry). But if another refresher saved newer tokens meanwhile (the version moved),
//! that is a success: nothing is marked and the run goes on with their token.

use std::time::Duration;

use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::JobState;

use crate::integrations_support::DumpOnPanic;
use crate::support::{Backend, wait_final, wait_for};
use crate::sync_context_support::{ContextWorld, WS};

async fn a_second_401_marks_needs_reauth(backend: Backend) {
    let w = ContextWorld::new(backend).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    assert_eq!(w.schedules().await, [(true, true)]);
    // The app's access is gone: every data call gets 401, whatever the token.
    w.sim.switch(|s| s.unauthorized_even_after_refresh = true);
    let worker = w.worker("worker");
    let _dump = DumpOnPanic(vec![&worker]);
    let id = w.sync_job().await;
    let job = wait_final(&w.store, id, Duration::from_secs(60)).await;

    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(w.sim.calls("token"), 1, "one refresh for the run");
    assert_eq!(w.sim.calls("401"), 2, "the first call and its one retry");
    assert_eq!(w.status().await, "needs_reauth");
    assert_eq!(w.version().await, 2, "the refreshed tokens were saved");
    assert_eq!(w.schedules().await, [(false, false)], "schedules stopped");
    let alerts = w.open_alerts().await;
    let reauth: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::ReauthRequired)
        .collect();
    assert_eq!(reauth.len(), 1, "the integration's alert only: {alerts:?}");
    let alert = reauth[0];
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.workspace_id.as_deref(), Some(WS));
    assert_eq!(alert.integration.as_deref(), Some("quickbooks"));
    assert!(alert.job_id.is_none(), "not the job's: {alert:?}");
    assert!(alert.message.contains("401 again"), "{}", alert.message);
    for secret in ["access-1", "refresh-1", "hangar-test-secret"] {
        assert!(!alert.message.contains(secret), "{}", alert.message);
    }
    let runs = w.runs().await;
    assert_eq!(runs.len(), 1, "one run, no second attempt: {runs:?}");
    assert_eq!(
        (runs[0].status.as_str(), runs[0].error_class.as_deref()),
        ("failed", Some("auth"))
    );
    assert_eq!(runs[0].credential_version, Some(2), "{:?}", runs[0]);
}

#[tokio::test]
async fn a_second_401_after_the_runs_own_refresh_marks_needs_reauth_postgres() {
    a_second_401_marks_needs_reauth(Backend::Postgres).await;
}

#[tokio::test]
async fn a_second_401_after_the_runs_own_refresh_marks_needs_reauth_sqlite() {
    a_second_401_marks_needs_reauth(Backend::Sqlite).await;
}

/// The run refreshes after its first 401 (version 2); while its retry is on the wire,
/// another refresher (the connection's `token_refresh` job, say) saves version 3 and the
/// provider stops taking version 2's token. The retry's 401 re-reads before marking: the
/// version moved, so the run takes version 3's token and succeeds; nothing is marked.
async fn a_401_after_another_refresh_is_no_reauth(backend: Backend) {
    let w = ContextWorld::new(backend).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    w.sim.switch(|s| {
        s.unauthorized_even_after_refresh = true;
        s.delay = Duration::from_millis(1500);
    });
    let run = w.sync_payments();
    let other = async {
        // The run's refresh is saved: its retry waits in the simulator's delay.
        wait_for("the run's refresh", Duration::from_secs(10), || async {
            (w.version().await == 2).then_some(())
        })
        .await;
        let token = w
            .context
            .refresh_token(
                &w.id,
                hangar_integrations::store::refresh::RefreshNeed::VersionIs(2),
            )
            .await
            .expect("another refresher's refresh");
        assert_eq!(token.version, 3);
        // The provider takes the newest token only.
        let mut books = w.sim.books.lock().unwrap();
        books.access_tokens.retain(|t| t == "access-2");
        books.switches.unauthorized_even_after_refresh = false;
        books.switches.delay = Duration::ZERO;
    };
    let (result, ()) = tokio::join!(run, other);
    result.expect("the run goes on with the other refresher's token");

    assert_eq!(w.sim.calls("token"), 2, "the run's refresh and the other's");
    assert_eq!(w.sim.calls("401"), 2, "{}", w.sim.calls("401"));
    assert_eq!(w.status().await, "active");
    assert_eq!(w.schedules().await, [(true, true)]);
    assert!(
        w.open_alerts()
            .await
            .iter()
            .all(|a| a.kind != AlertKind::ReauthRequired),
        "no alert"
    );
    let run = &w.runs().await[0];
    assert_eq!((run.status.as_str(), run.records.created), ("succeeded", 2));
    assert_eq!(run.credential_version, Some(3), "{run:?}");

    // The same 401 with the newest token: now it is marked.
    w.sim.switch(|s| s.unauthorized_even_after_refresh = true);
    let failure = w.sync_payments().await.expect_err("refused again");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
    assert_eq!(w.sim.calls("token"), 3, "one refresh for this run");
    assert_eq!(w.status().await, "needs_reauth");
}

#[tokio::test]
async fn a_401_after_another_refreshers_save_is_not_marked_postgres() {
    a_401_after_another_refresh_is_no_reauth(Backend::Postgres).await;
}

#[tokio::test]
async fn a_401_after_another_refreshers_save_is_not_marked_sqlite() {
    a_401_after_another_refresh_is_no_reauth(Backend::Sqlite).await;
}
