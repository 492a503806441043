//! The audit row of every sync run, over the real integrations' store, on both backends: a
//! run whose credential cannot be had before it starts (the refresh of an expiring token
//! refused with `invalid_grant`, or the token endpoint down) still writes its row, `failed`
//! with the error's class and a message without secrets; and a run that refreshed its token
//! after a 401 records the credential version it used last, not the one it started with.

use hangar_workers::error_class::ErrorClass;
use serde_json::json;

use crate::oauth_server::{Mode, OAuthServer};
use crate::support::Backend;
use crate::sync_context_support::ContextWorld;

/// The integration's access token expires within the refresh margin: a run refreshes first.
fn expiring(body: &mut serde_json::Value) {
    body["credentials"]["oauth"]["expires_at"] =
        json!((chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339());
}

const SECRETS: [&str; 4] = ["access-0", "refresh-0", "hangar-test-secret", "access-1"];

async fn credential_failures_are_audited(backend: Backend) {
    // The refresh token is dead: needs_reauth before any call to the company.
    let w = ContextWorld::with(backend, expiring).await;
    w.sim.switch(|s| s.invalid_grant = true);
    let failure = w.sync_payments().await.expect_err("no credential");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
    assert_eq!(w.status().await, "needs_reauth");
    let runs = w.runs().await;
    assert_eq!(runs.len(), 1, "the run is audited: {runs:?}");
    let run = &runs[0];
    assert_eq!(
        (
            run.status.as_str(),
            run.error_class.as_deref(),
            run.provider_calls
        ),
        ("failed", Some("auth"), 0),
        "{run:?}"
    );
    assert_eq!(run.data_type, "payments");
    assert!(run.finished_at.is_some(), "{run:?}");
    let error = run.error.as_deref().unwrap_or("");
    assert!(error.contains("invalid_grant"), "{run:?}");
    for secret in SECRETS {
        assert!(!format!("{run:?}").contains(secret), "{secret} in {run:?}");
    }

    // The token endpoint is down: a transient failure, audited as such.
    let server = OAuthServer::start("refresh-0", Mode::Down(503)).await;
    let w = ContextWorld::with(backend, |body| {
        expiring(body);
        let oauth = &mut body["credentials"]["oauth"];
        oauth["token_url"] = json!(server.token_url());
        oauth["client_id"] = json!(server.client_id);
        oauth["client_secret"] = json!(server.client_secret);
    })
    .await;
    let failure = w.sync_payments().await.expect_err("token endpoint down");
    assert_eq!(failure.class, ErrorClass::Server, "{failure:?}");
    assert_eq!(w.status().await, "active", "a 503 is no credential failure");
    let runs = w.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(
        (run.status.as_str(), run.error_class.as_deref()),
        ("failed", Some("server")),
        "{run:?}"
    );
    assert!(
        run.error.as_deref().unwrap_or("").contains("503"),
        "{run:?}"
    );
    assert!(
        !format!("{run:?}").contains(&server.client_secret),
        "{run:?}"
    );
    assert_eq!(w.sim.calls("cdc"), 0);
}

#[tokio::test]
async fn a_credential_failure_before_the_run_writes_its_row_postgres() {
    credential_failures_are_audited(Backend::Postgres).await;
}

#[tokio::test]
async fn a_credential_failure_before_the_run_writes_its_row_sqlite() {
    credential_failures_are_audited(Backend::Sqlite).await;
}

async fn the_version_used_last(backend: Backend) {
    let w = ContextWorld::new(backend).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    w.sync_payments().await.expect("first sync");
    assert_eq!(w.runs().await[0].credential_version, Some(1));

    // A 401 mid-run: one refresh (version 2), one retry, and the run says so.
    w.sim.add_payments(1, chrono::Duration::minutes(1));
    w.sim.switch(|s| s.expire_tokens = true);
    w.sync_payments().await.expect("sync after one refresh");
    assert_eq!((w.sim.calls("token"), w.version().await), (1, 2));
    let run = &w.runs().await[0];
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(run.credential_version, Some(2), "the version used: {run:?}");
    assert!(
        run.log
            .iter()
            .any(|l| l.contains("credential version 1 -> 2")),
        "{:?}",
        run.log
    );
}

#[tokio::test]
async fn a_run_records_the_credential_version_it_used_last_postgres() {
    the_version_used_last(Backend::Postgres).await;
}

#[tokio::test]
async fn a_run_records_the_credential_version_it_used_last_sqlite() {
    the_version_used_last(Backend::Sqlite).await;
}
