//! The token refresh against a loopback token endpoint, on both backends: single-flight
//! across processes (50 attempts, 3 workers, one call, the rotated refresh token saved),
//! `invalid_grant` → `needs_reauth` with a critical alert and the schedules stopped, new
//! credentials → recovered (alert resolved with a "recovered" notice, schedules back), a 5xx
//! is transient (retried, the connection stays active), and a sealed credential copied to
//! another row does not open.

use std::time::Duration;

use hangar_integrations::credentials::{self, Credential};
use hangar_integrations::provider::Provider;
use hangar_schedules::ScheduleFilter;
use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::job::JobState;
use serde_json::json;

use crate::integrations_support::{context, jobs_of, oauth_body, request, wait_status};
use crate::oauth_server::{Mode, OAuthServer};
use crate::support::{ANY_PORT, Backend, TestDb, wait_final, wait_for};

async fn single_flight_across_processes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let server = OAuthServer::start(
        "refresh-token-original",
        Mode::Tokens(Duration::from_millis(400)),
    )
    .await;
    let integration = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-original", true)),
        )
        .await
        .expect("put");
    assert_eq!(integration.credential_version, 1);
    // 50 refresh attempts of the same connection at version 1, all due now.
    let mut ids = Vec::new();
    for _ in 0..50 {
        let job = context.job(
            "token_refresh",
            "ws_1",
            json!({"integration_id": integration.id, "version": 1}),
        );
        ids.push(store.enqueue(&job).await.expect("enqueue").id);
    }
    let workers: Vec<_> = (0..3)
        .map(|n| {
            db.spawn(
                &format!("worker{n}"),
                &["worker", "--pool", "integrations", "--bind", ANY_PORT],
            )
        })
        .collect();
    let _dump = crate::integrations_support::DumpOnPanic(workers.iter().collect());
    for id in &ids {
        let job = wait_final(&store, *id, Duration::from_secs(60)).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
    }
    assert_eq!(server.calls(), 1, "exactly one call to the token endpoint");
    assert_eq!(server.received(), ["refresh-token-original"]);
    let row = context.rows.get(&integration.id).await.expect("row");
    assert_eq!(row.integration.credential_version, 2);
    assert_eq!(row.integration.status.as_str(), "active");
    let Credential::OAuth(oauth) = credentials::open(
        &context.keyring,
        &integration.id,
        row.sealed.as_deref().unwrap(),
    )
    .unwrap() else {
        panic!("oauth credential");
    };
    assert_eq!(
        oauth.refresh_token.as_deref(),
        Some(server.current_refresh().as_str())
    );
    assert_eq!(
        oauth.refresh_token.as_deref(),
        Some("refresh-token-rotated-1")
    );
    assert_eq!(oauth.access_token, OAuthServer::access_token(1));
    assert_eq!(
        oauth.client_secret.as_deref(),
        Some(server.client_secret.as_str()),
        "kept"
    );
    // The next refresh was planned with the save: one job for version 2, before expiry.
    let next = jobs_of(&store, "token_refresh", "ws_1").await;
    assert!(
        next.iter()
            .any(|j| j.args["version"] == 2 && j.state == JobState::Scheduled),
        "{next:?}"
    );
}

#[tokio::test]
async fn fifty_refreshes_across_three_processes_call_the_endpoint_once_on_sqlite() {
    single_flight_across_processes(Backend::Sqlite).await;
}

#[tokio::test]
async fn fifty_refreshes_across_three_processes_call_the_endpoint_once_on_postgres() {
    single_flight_across_processes(Backend::Postgres).await;
}

/// The schedules of integration `id`: (name, enabled, has a next run).
async fn schedules_of(
    context: &hangar_integrations::IntegrationContext,
    id: &str,
) -> Vec<(String, bool, bool)> {
    let rows = context
        .schedules
        .list(&ScheduleFilter::default())
        .await
        .expect("schedules");
    rows.into_iter()
        .filter(|r| r.integration.as_deref() == Some(id))
        .map(|r| (r.name, r.enabled, r.next_run_at.is_some()))
        .collect()
}

async fn invalid_grant_then_recovery(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let server = OAuthServer::start("refresh-token-dead", Mode::InvalidGrant).await;
    let integration = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-dead", true)),
        )
        .await
        .expect("put");
    let name = format!("integration:{}:payments", integration.id);
    assert_eq!(
        schedules_of(&context, &integration.id).await,
        [(name.clone(), true, true)]
    );

    let job = context.job(
        "token_refresh",
        "ws_1",
        json!({"integration_id": integration.id, "version": 1}),
    );
    let id = store.enqueue(&job).await.expect("enqueue").id;
    let _worker = db.spawn(
        "worker",
        &["worker", "--pool", "integrations", "--bind", ANY_PORT],
    );
    wait_status(
        &context,
        &integration.id,
        "needs_reauth",
        Duration::from_secs(30),
    )
    .await;
    wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(server.calls(), 1);
    let row = context.rows.get(&integration.id).await.unwrap();
    assert!(
        row.integration
            .status_reason
            .as_deref()
            .unwrap_or("")
            .contains("invalid_grant"),
        "{:?}",
        row.integration.status_reason
    );
    assert_eq!(
        schedules_of(&context, &integration.id).await,
        [(name.clone(), false, false)],
        "the schedules are stopped"
    );
    let alerts = store.alerts(false).await.unwrap();
    let alert = alerts
        .iter()
        .find(|a| {
            a.kind == AlertKind::ReauthRequired && a.integration.as_deref() == Some("quickbooks")
        })
        .unwrap_or_else(|| panic!("a re-authorisation alert: {alerts:?}"));
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.workspace_id.as_deref(), Some("ws_1"));
    assert!(alert.message.contains("invalid_grant"), "{}", alert.message);
    assert!(
        !alert.message.contains("refresh-token-dead"),
        "no secret in the alert"
    );
    // A manual sync is refused while it needs re-authorisation.
    assert!(
        context
            .sync_now("ws_1", Provider::Quickbooks, None)
            .await
            .is_err()
    );

    // An admin gives new credentials: recovered.
    server.set_mode(Mode::Tokens(Duration::ZERO));
    let mut body = oauth_body(&server, "refresh-token-dead", true);
    body["credentials"]["oauth"]["refresh_token"] = json!("refresh-token-dead");
    let recovered = context
        .put("ws_1", Provider::Quickbooks, request(body))
        .await
        .expect("put");
    assert_eq!(recovered.status.as_str(), "active");
    assert_eq!(recovered.credential_version, 2);
    assert_eq!(
        schedules_of(&context, &integration.id).await,
        [(name, true, true)]
    );
    let all = store.alerts(true).await.unwrap();
    let resolved = all.iter().find(|a| a.id == alert.id).expect("the alert");
    assert!(resolved.resolved_at.is_some(), "{resolved:?}");
    assert!(
        resolved.message.contains("recovered"),
        "{}",
        resolved.message
    );
}

#[tokio::test]
async fn invalid_grant_marks_needs_reauth_alerts_and_stops_schedules_until_recovery_on_sqlite() {
    invalid_grant_then_recovery(Backend::Sqlite).await;
}

#[tokio::test]
async fn invalid_grant_marks_needs_reauth_alerts_and_stops_schedules_until_recovery_on_postgres() {
    invalid_grant_then_recovery(Backend::Postgres).await;
}

async fn server_errors_are_transient(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let server = OAuthServer::start("refresh-token-a", Mode::Down(503)).await;
    let integration = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-a", true)),
        )
        .await
        .expect("put");
    let job = context.job(
        "token_refresh",
        "ws_1",
        json!({"integration_id": integration.id, "version": 1}),
    );
    let id = store.enqueue(&job).await.expect("enqueue").id;
    let worker = db.spawn(
        "worker",
        &["worker", "--pool", "integrations", "--bind", ANY_PORT],
    );
    let _dump = crate::integrations_support::DumpOnPanic(vec![&worker]);
    let retried = wait_for("a retry after the 503", Duration::from_secs(30), || async {
        let job = store.job(id).await.ok()?;
        (job.state == JobState::Retryable).then_some(job)
    })
    .await;
    let attempt = &retried.attempts[0];
    assert_eq!(
        attempt.error_class.map(|c| c.as_str()),
        Some("server"),
        "{attempt:?}"
    );
    assert!(
        retried.last_error.as_deref().unwrap_or("").contains("503"),
        "{retried:?}"
    );
    let row = context.rows.get(&integration.id).await.unwrap();
    assert_eq!(
        row.integration.status.as_str(),
        "active",
        "a 5xx is no credential failure"
    );
    // The endpoint comes back: the retry refreshes.
    server.set_mode(Mode::Tokens(Duration::ZERO));
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(
        context
            .rows
            .get(&integration.id)
            .await
            .unwrap()
            .integration
            .credential_version,
        2
    );
    assert!(
        store
            .alerts(false)
            .await
            .unwrap()
            .iter()
            .all(|a| a.kind != AlertKind::ReauthRequired)
    );
}

#[tokio::test]
async fn a_5xx_from_the_token_endpoint_is_retried_not_a_credential_failure_on_sqlite() {
    server_errors_are_transient(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_5xx_from_the_token_endpoint_is_retried_not_a_credential_failure_on_postgres() {
    server_errors_are_transient(Backend::Postgres).await;
}

async fn a_copied_ciphertext_does_not_open(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let server = OAuthServer::start("refresh-token-a", Mode::Tokens(Duration::ZERO)).await;
    let a = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-a", true)),
        )
        .await
        .expect("put a");
    let b = context
        .put(
            "ws_2",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-b", true)),
        )
        .await
        .expect("put b");
    // Someone with write access to the table copies A's sealed credential onto B's row.
    db.sql(&format!(
        "UPDATE hangar_integrations SET credential_sealed = \
         (SELECT credential_sealed FROM hangar_integrations WHERE id = '{}') WHERE id = '{}'",
        a.id, b.id
    ))
    .await;
    let row = context.rows.get(&b.id).await.unwrap();
    let opened = credentials::open(&context.keyring, &b.id, row.sealed.as_deref().unwrap());
    assert!(opened.is_err(), "the copy does not open on another row");
    let job = context.job(
        "token_refresh",
        "ws_2",
        json!({"integration_id": b.id, "version": 1}),
    );
    let id = store.enqueue(&job).await.expect("enqueue").id;
    let _worker = db.spawn(
        "worker",
        &["worker", "--pool", "integrations", "--bind", ANY_PORT],
    );
    let failed = wait_for(
        "the refresh of B to fail",
        Duration::from_secs(30),
        || async {
            let job = store.job(id).await.ok()?;
            (!job.attempts.is_empty()).then_some(job)
        },
    )
    .await;
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("belongs to another row"),
        "{failed:?}"
    );
    assert_eq!(server.calls(), 0, "A's refresh token was never sent for B");
}

#[tokio::test]
async fn a_sealed_credential_copied_to_another_row_does_not_open_on_sqlite() {
    a_copied_ciphertext_does_not_open(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_sealed_credential_copied_to_another_row_does_not_open_on_postgres() {
    a_copied_ciphertext_does_not_open(Backend::Postgres).await;
}
