//! The engine's 401 rule for jobs of an integration (`IntegrationRefresher`, replacing
//! `NoRefresher`) and the sync engine's `IntegrationAccess`, driven directly against a
//! loopback token endpoint on both backends: a 401 refreshes once (a second job whose
//! attempt started before that save gets the saved token without a call), a refused refresh
//! marks `needs_reauth`, and the refresh jobs follow the connection's state (cancelled when
//! disabled, planned again when enabled).

use std::time::{Duration, Instant};

use chrono::Utc;
use hangar_integrations::IntegrationRefresher;
use hangar_integrations::access::{AccessError, IntegrationAccess};
use hangar_integrations::credentials::{self, Credential};
use hangar_integrations::provider::Provider;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobId, JobState};
use hangar_workers::kinds::JobFailure;
use hangar_workers::refresher::TokenRefresher;
use hangar_workers::retry_policy::RefreshOutcome;
use serde_json::json;

use crate::integrations_support::{context, jobs_of, oauth_body, request};
use crate::oauth_server::{Mode, OAuthServer};
use crate::support::{Backend, TestDb};

fn sync_job(integration_id: &str, started_at: chrono::DateTime<Utc>) -> ClaimedJob {
    ClaimedJob {
        id: JobId(1),
        kind: "sync".to_owned(),
        args: json!({"integration_id": integration_id, "data_type": "payments", "trigger": "manual"}),
        attempt: 1,
        max_attempts: 6,
        spent: Default::default(),
        priority: 0,
        workspace_id: Some("ws_1".to_owned()),
        lease_token: 1,
        created_at: started_at,
        run_at: started_at,
        started_at,
        received_at: Instant::now(),
    }
}

async fn the_401_rule(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (_, context) = context(&db).await;
    let server = OAuthServer::start("refresh-token-a", Mode::Tokens(Duration::ZERO)).await;
    let integration = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-a", true)),
        )
        .await
        .expect("put");
    let token = context.access_token(&integration.id).await.expect("token");
    assert_eq!(
        (token.token.as_str(), token.version),
        ("access-token-initial-0001", 1)
    );
    assert_eq!(server.calls(), 0, "not due: no refresh");

    // Two sync attempts that started before any refresh both got a 401.
    let started = Utc::now();
    let refresher = IntegrationRefresher::new(context.clone());
    let failure = JobFailure::new(ErrorClass::Auth, "HTTP 401");
    let first = refresher
        .refresh(&sync_job(&integration.id, started), &failure)
        .await;
    let second = refresher
        .refresh(&sync_job(&integration.id, started), &failure)
        .await;
    assert_eq!(
        (first, second),
        (RefreshOutcome::Refreshed, RefreshOutcome::Refreshed)
    );
    assert_eq!(server.calls(), 1, "one refresh serves both");
    let token = context.access_token(&integration.id).await.expect("token");
    assert_eq!(
        (token.token, token.version),
        (OAuthServer::access_token(1), 2)
    );
    // The sync engine's own 401 with the token it read (version 2): one more refresh; a
    // second one with the same stale version gets the new token without a call.
    let fresh = context
        .refresh_after_unauthorized(&integration.id, 2)
        .await
        .expect("refresh");
    let again = context
        .refresh_after_unauthorized(&integration.id, 2)
        .await
        .expect("again");
    assert_eq!((fresh.version, again.version), (3, 3));
    assert_eq!(again.token, OAuthServer::access_token(2));
    assert_eq!(server.calls(), 2);
    // A provider that does not rotate omits the refresh token: the old one is kept.
    server.set_mode(Mode::NoRotation);
    let kept = context
        .refresh_after_unauthorized(&integration.id, 3)
        .await
        .expect("refresh");
    assert_eq!(
        (kept.token, kept.version),
        (OAuthServer::access_token(3), 4)
    );
    let row = context.rows.get(&integration.id).await.unwrap();
    let opened = credentials::open(
        &context.keyring,
        &integration.id,
        row.sealed.as_deref().unwrap(),
    );
    let Ok(Credential::OAuth(oauth)) = opened else {
        panic!("oauth credential");
    };
    assert_eq!(
        oauth.refresh_token.as_deref(),
        Some("refresh-token-rotated-2")
    );
    assert_eq!(
        server.received().last().map(String::as_str),
        Some("refresh-token-rotated-2")
    );

    // A refused refresh: Failed, and the connection needs re-authorisation.
    server.set_mode(Mode::InvalidGrant);
    let outcome = refresher
        .refresh(&sync_job(&integration.id, Utc::now()), &failure)
        .await;
    assert!(
        matches!(&outcome, RefreshOutcome::Failed { reason } if reason.contains("invalid_grant")),
        "{outcome:?}"
    );
    let row = context.rows.get(&integration.id).await.unwrap();
    assert_eq!(row.integration.status.as_str(), "needs_reauth");
    assert!(matches!(
        context.access_token(&integration.id).await,
        Err(AccessError::NeedsReauth(..))
    ));
    // The job that got it is not a copy: a job that reads now is refused too.
    let info = context.integration(&integration.id).await.expect("info");
    assert!(!info.enabled);
}

#[tokio::test]
async fn a_401_refreshes_once_for_every_job_and_a_refusal_marks_needs_reauth_on_sqlite() {
    the_401_rule(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_401_refreshes_once_for_every_job_and_a_refusal_marks_needs_reauth_on_postgres() {
    the_401_rule(Backend::Postgres).await;
}

async fn refresh_jobs_follow_the_state(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let server = OAuthServer::start("refresh-token-a", Mode::Tokens(Duration::ZERO)).await;
    let scheduled = |jobs: Vec<hangar_workers::job::Job>| {
        jobs.into_iter()
            .filter(|j| j.state == JobState::Scheduled)
            .collect::<Vec<_>>()
    };
    let integration = context
        .put(
            "ws_1",
            Provider::Quickbooks,
            request(oauth_body(&server, "refresh-token-a", true)),
        )
        .await
        .expect("put");
    let planned = scheduled(jobs_of(&store, "token_refresh", "ws_1").await);
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(
        planned[0].args,
        json!({"integration_id": integration.id, "version": 1})
    );
    let due = planned[0].run_at - Utc::now();
    assert!(
        due > chrono::Duration::minutes(40) && due <= chrono::Duration::minutes(45),
        "15 minutes before the hour's expiry: {due}"
    );

    let mut off = oauth_body(&server, "refresh-token-a", false);
    off.as_object_mut().unwrap().remove("credentials");
    context
        .put("ws_1", Provider::Quickbooks, request(off.clone()))
        .await
        .expect("disable");
    assert!(
        scheduled(jobs_of(&store, "token_refresh", "ws_1").await).is_empty(),
        "cancelled"
    );

    off["enabled"] = json!(true);
    context
        .put("ws_1", Provider::Quickbooks, request(off))
        .await
        .expect("enable");
    let planned = scheduled(jobs_of(&store, "token_refresh", "ws_1").await);
    assert_eq!(planned.len(), 1, "planned again: {planned:?}");
    assert_eq!(planned[0].args["version"], 1);
}

#[tokio::test]
async fn refresh_jobs_are_cancelled_when_disabled_and_planned_again_when_enabled_on_sqlite() {
    refresh_jobs_follow_the_state(Backend::Sqlite).await;
}

#[tokio::test]
async fn refresh_jobs_are_cancelled_when_disabled_and_planned_again_when_enabled_on_postgres() {
    refresh_jobs_follow_the_state(Backend::Postgres).await;
}
