//! The integration seam of the `inbound_event` job, in process on both backends: with a seam
//! that finds the workspace's QuickBooks integration, a verified payment change becomes one
//! `sync` job for `payments` of that integration (trigger `webhook`), and the same push again
//! makes nothing new.

use std::sync::Arc;

use chrono::Utc;
use hangar_workers::inbound::{self, InboundContext, IntegrationSeam, Material, Received};
use hangar_workers::job::JobId;
use hangar_workers::kinds::{BoxFuture, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::{Keyring, MasterKey};
use hangar_workers::targets::TargetPolicy;
use tokio_util::sync::CancellationToken;

use crate::inbound_support::intuit;
use crate::support::{Backend, TestDb};
use crate::webhooks_support::until;

/// Finds integration `int_q1` for QuickBooks payments in `ws_s`, nothing else.
struct OneIntegration;

impl IntegrationSeam for OneIntegration {
    fn integration_for<'a>(
        &'a self,
        workspace: &'a str,
        provider: &'a str,
        data_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        let found = (workspace == "ws_s" && provider == "quickbooks" && data_type == "payments")
            .then(|| "int_q1".to_owned());
        Box::pin(async move { Ok(found) })
    }
}

const POOL: &str = r#"
[[pool]]
name = "inbound"
queue = "inbound"
kinds = ["inbound_event"]
poll_interval_ms = 50
lease_ms = 2000
"#;

async fn a_quickbooks_change_enqueues_the_integrations_sync(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let spec = pool_config::parse("test", POOL).expect("pool").remove(0);
    let mut registry = Registry::builtin_with(TargetPolicy::allow_all());
    let routes = Routes::new(std::slice::from_ref(&spec), &registry);
    let context = InboundContext::new(
        store.clone(),
        Arc::new(Keyring::new(MasterKey::generate())),
        &routes,
        Arc::new(OneIntegration),
    );
    inbound::register(&mut registry, &context);
    let material = Material::Intuit {
        verifier_token: "vt-seam".to_owned(),
    };
    inbound::configure(&context, "ws_s", "quickbooks", &material)
        .await
        .expect("configure");

    let body = r#"{"eventNotifications":[{"realmId":"4620","dataChangeEvent":{"entities":[{"name":"Payment","id":"31","operation":"Create","lastUpdated":"2026-11-22T10:00:00Z"}]}}]}"#;
    let headers: Vec<(String, String)> = intuit("vt-seam", body)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
    let received = inbound::receive(
        &context,
        "quickbooks",
        "ws_s",
        &headers,
        body.as_bytes(),
        Utc::now(),
    )
    .await
    .expect("verified");
    let Received::Stored { id, .. } = received else {
        panic!("stored: {received:?}")
    };

    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(registry),
            refresher: Arc::new(NoRefresher),
            worker_id: "test".to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));
    until("the push processed", || async {
        store
            .inbound_event(id)
            .await
            .expect("row")
            .is_some_and(|r| r.state == "processed")
    })
    .await;
    let row = store.inbound_event(id).await.expect("row").expect("row");
    let outcome = row.outcome.expect("outcome");
    let job_id: i64 = outcome
        .strip_prefix("sync job ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a sync job: {outcome}"));
    let job = store.job(JobId(job_id)).await.expect("the sync job");
    assert_eq!(job.kind, "sync");
    assert_eq!(job.workspace_id.as_deref(), Some("ws_s"));
    assert_eq!(
        job.args,
        serde_json::json!({"integration_id": "int_q1", "data_type": "payments", "trigger": "webhook",
            "event_id": id.to_string()})
    );
    assert!(outcome.contains("int_q1"), "{outcome}");

    let again = inbound::receive(
        &context,
        "quickbooks",
        "ws_s",
        &headers,
        body.as_bytes(),
        Utc::now(),
    )
    .await
    .expect("verified");
    assert_eq!(again, Received::Duplicate);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_jobs WHERE kind = 'sync'")
            .await,
        1
    );
    shutdown.cancel();
    running.await.expect("pool stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_change_enqueues_the_integrations_sync_postgres() {
    a_quickbooks_change_enqueues_the_integrations_sync(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_change_enqueues_the_integrations_sync_sqlite() {
    a_quickbooks_change_enqueues_the_integrations_sync(Backend::Sqlite).await;
}
