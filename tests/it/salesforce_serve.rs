//! Salesforce end to end in a `hangar serve` process, on both backends: an admin enables it
//! with `PUT …/integrations/salesforce` (OAuth credentials whose token endpoint is the
//! simulator's), `POST …/salesforce/sync` runs it, the expired session is refreshed once by
//! the integration's own refresh path and the call retried once, and the run is listed.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::salesforce_sim::SalesforceSim;
use crate::stripe_serve::{SYNC_POOLS, call, finished_run};
use crate::support::{Backend, TestDb, serve_http, stdout_ok};

async fn salesforce_is_enabled_and_synced(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(SYNC_POOLS);
    let _ = db.store().await;
    let sim = SalesforceSim::start().await;
    sim.add_accounts(4, chrono::Duration::hours(3));
    let (_serve, base) = serve_http(&db).await;
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    let path = format!("{base}/api/v1/workspaces/ws_crm/integrations/salesforce");
    let body = json!({"enabled": true, "data_types": ["customers"], "frequency": "manual",
        "settings": {"instance_url": sim.base},
        "credentials": {"oauth": {"access_token": "access-0", "refresh_token": "refresh-0",
            "expires_at": "2030-01-01T00:00:00Z", "token_url": sim.token_url(),
            "client_id": "sf-consumer-key", "client_secret": "sf-consumer-secret",
            "scopes": ["api", "refresh_token"]}}});
    let (status, saved, text) = call(Method::PUT, &path, &admin, Some(body)).await;
    assert_eq!(
        (status, &saved["status"]),
        (StatusCode::OK, &json!("active")),
        "{text}"
    );

    // The session has expired since it was saved.
    sim.switch(|s| s.expire_tokens = true);
    let (status, _, text) = call(Method::POST, &format!("{path}/sync"), &admin, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let run = finished_run(&base, "ws_crm", &admin, "salesforce").await;
    assert_eq!(
        (&run["status"], &run["direction"], &run["data_type"]),
        (&json!("succeeded"), &json!("in"), &json!("customers")),
        "{run}"
    );
    assert_eq!(run["records"]["created"], 4, "{run}");
    assert_eq!(
        (sim.calls("401"), sim.calls("token")),
        (1, 1),
        "one refresh, one retry"
    );
    let (_, one, text) = call(Method::GET, &path, &admin, None).await;
    assert_eq!(one["status"], "active", "{text}");
    assert!(
        !text.contains("access-1") && !text.contains("refresh-0"),
        "{text}"
    );
}

#[tokio::test]
async fn salesforce_is_enabled_and_synced_postgres() {
    salesforce_is_enabled_and_synced(Backend::Postgres).await;
}

#[tokio::test]
async fn salesforce_is_enabled_and_synced_sqlite() {
    salesforce_is_enabled_and_synced(Backend::Sqlite).await;
}
