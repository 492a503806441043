//! What the integration tests share: the integrations' context over a test database (the
//! same master key as the processes under test), the pool file of integration workers with
//! fast retries, and the request bodies of an OAuth and an API-key connection.

use std::sync::Arc;
use std::time::Duration;

use hangar_integrations::IntegrationContext;
use hangar_integrations::integration::IntegrationRequest;
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::Keyring;
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use serde_json::{Value, json};

use crate::oauth_server::OAuthServer;
use crate::support::{TEST_MASTER_KEY, TestDb};

/// The pools of integration workers: the built-in kinds and `token_refresh`, with fast
/// retries and a short lease.
pub const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]

[[pool]]
name = "integrations"
queue = "integrations"
kinds = ["token_refresh"]
concurrency = 20
lease_ms = 3000
poll_interval_ms = 100

[pool.retry.server]
max_retries = 5
base_delay_ms = 300
max_delay_ms = 2000
"#;

/// The integrations' context over `db` (migrated), with the processes' master key and the
/// routes of [`POOLS`].
pub async fn context(db: &TestDb) -> (Store, IntegrationContext) {
    context_with(db, POOLS).await
}

/// The same with the pool file `pools` (its routes are the context's).
pub async fn context_with(db: &TestDb, pools: &str) -> (Store, IntegrationContext) {
    db.pools(pools);
    let store = db.store().await;
    let pools = hangar_workers::pool_config::parse("pools.toml", pools).expect("pools");
    let mut registry = Registry::builtin();
    hangar_integrations::reserve_kinds(&mut registry);
    let routes = Routes::new(&pools, &registry);
    let keyring = Keyring::parse(TEST_MASTER_KEY, "test key").expect("key");
    let context = IntegrationContext::new(
        store.clone(),
        Arc::new(keyring),
        routes,
        TargetPolicy::allow_all(),
        "test:1",
    );
    (store, context)
}

/// A QuickBooks connection on `server`: hourly payments, the access token expiring in an
/// hour, the refresh token `refresh`.
pub fn oauth_body(server: &OAuthServer, refresh: &str, enabled: bool) -> Value {
    json!({
        "enabled": enabled,
        "data_types": ["payments"],
        "frequency": "hourly",
        "settings": {"realm_id": "9130", "base_url": server.base},
        "credentials": {"oauth": {
            "access_token": "access-token-initial-0001",
            "refresh_token": refresh,
            "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "token_url": server.token_url(),
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "scopes": ["com.intuit.quickbooks.accounting"],
        }},
    })
}

/// `body` as the PUT request.
pub fn request(body: Value) -> IntegrationRequest {
    serde_json::from_value(body).expect("request")
}

/// Waits up to `timeout` for integration `id`'s status to be `status`.
pub async fn wait_status(context: &IntegrationContext, id: &str, status: &str, timeout: Duration) {
    crate::support::wait_for(
        &format!("integration {id} to be {status}"),
        timeout,
        || async {
            let row = context.rows.get(id).await.ok()?;
            (row.integration.status.as_str() == status).then_some(())
        },
    )
    .await;
}

/// The jobs of `kind` in `workspace`, newest first.
pub async fn jobs_of(store: &Store, kind: &str, workspace: &str) -> Vec<hangar_workers::job::Job> {
    store
        .jobs(&hangar_workers::job::JobFilter {
            states: Vec::new(),
            kind: Some(kind.to_owned()),
            queue: None,
            workspace_id: Some(workspace.to_owned()),
            limit: 1_000,
            ..Default::default()
        })
        .await
        .expect("jobs")
}

/// Prints the logs of processes when the test panics (dropped while unwinding).
pub struct DumpOnPanic<'a>(pub Vec<&'a crate::support::Proc>);

impl Drop for DumpOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for proc in &self.0 {
                eprintln!("--- {} ---\n{}", proc.log.display(), proc.log());
            }
        }
    }
}
