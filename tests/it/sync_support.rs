//! Support for the sync-engine tests: a migrated database (every crate's tables, by `hangar
//! migrate`), the QuickBooks simulator, and [`FixedAccess`], **the test seam** standing for
//! the integration store: one fixed QuickBooks integration and its token, refreshed (after a
//! 401) by a real call to the simulator's token endpoint. The real `IntegrationAccess` over
//! `hangar_integrations` is the int slice's; the sync handler takes either.

use std::sync::{Arc, Mutex};

use hangar_integrations::access::{AccessError, AccessToken, IntegrationAccess, IntegrationInfo};
use hangar_integrations::provider::Provider;
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::RunRow;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::db::Database;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use hangar_workers::targets::TargetPolicy;
use serde_json::json;

use crate::qbo_sim::{QboSim, REALM, oauth};
use crate::support::{Backend, TestDb};

pub const INTEGRATION: &str = "int_test_quickbooks";
pub const WORKSPACE: &str = "ws_sync";

/// The test seam: one integration, its token, and a refresh through the token endpoint.
pub struct FixedAccess {
    pub info: IntegrationInfo,
    token: Mutex<(AccessToken, String)>,
    token_url: String,
    /// Refreshes made (after a 401).
    pub refreshes: Mutex<u32>,
}

impl FixedAccess {
    /// A QuickBooks integration with `data_types` enabled, pointing at `sim`.
    pub fn quickbooks(sim: &QboSim, data_types: &[&str]) -> FixedAccess {
        FixedAccess::quickbooks_at(&sim.base, &sim.token_url(), data_types)
    }

    /// The same, for the simulator at `base` with its token endpoint at `token_url` (one
    /// another process started).
    pub fn quickbooks_at(base: &str, token_url: &str, data_types: &[&str]) -> FixedAccess {
        FixedAccess {
            info: IntegrationInfo {
                id: INTEGRATION.into(),
                workspace_id: WORKSPACE.into(),
                provider: Provider::Quickbooks,
                enabled: true,
                data_types: data_types.iter().map(|d| d.to_string()).collect(),
                settings: json!({"realm_id": REALM, "base_url": base}),
            },
            token: Mutex::new((
                AccessToken {
                    token: "access-0".into(),
                    version: 1,
                },
                "refresh-0".into(),
            )),
            token_url: token_url.to_owned(),
            refreshes: Mutex::new(0),
        }
    }
}

impl FixedAccess {
    /// Replaces the credential the integration calls with (an API key, say), keeping its
    /// version.
    pub fn set_token(&self, token: &str) {
        self.token.lock().unwrap().0.token = token.to_owned();
    }
}

impl IntegrationAccess for FixedAccess {
    fn integration<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<IntegrationInfo, AccessError>> {
        Box::pin(async move {
            if id == self.info.id {
                Ok(self.info.clone())
            } else {
                Err(AccessError::NotFound(id.to_owned()))
            }
        })
    }

    fn access_token<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move { Ok(self.token.lock().unwrap().0.clone()) })
    }

    fn refresh_after_unauthorized<'a>(
        &'a self,
        _id: &'a str,
        seen_version: i64,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            let (current, refresh) = self.token.lock().unwrap().clone();
            if current.version != seen_version {
                return Ok(current);
            }
            *self.refreshes.lock().unwrap() += 1;
            let answer = reqwest::Client::new()
                .post(&self.token_url)
                .basic_auth(oauth::CLIENT_ID, Some(oauth::CLIENT_SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ])
                .send()
                .await
                .map_err(|e| AccessError::Transient(e.to_string()))?;
            let status = answer.status();
            let text = answer
                .text()
                .await
                .map_err(|e| AccessError::Transient(e.to_string()))?;
            // A refusal without JSON (no token endpoint at all: an API key) is a refusal.
            let body: serde_json::Value = match serde_json::from_str(&text) {
                Ok(body) => body,
                Err(e) if status.is_success() => return Err(AccessError::Transient(e.to_string())),
                Err(_) => serde_json::Value::Null,
            };
            if !status.is_success() {
                return Err(AccessError::NeedsReauth(
                    self.info.id.clone(),
                    body["error"].as_str().unwrap_or("refused").to_owned(),
                ));
            }
            let next = AccessToken {
                token: body["access_token"].as_str().unwrap_or_default().to_owned(),
                version: seen_version + 1,
            };
            let refresh = body["refresh_token"]
                .as_str()
                .unwrap_or(&refresh)
                .to_owned();
            *self.token.lock().unwrap() = (next.clone(), refresh);
            Ok(next)
        })
    }
}

/// One sync test's world: database, simulator, store, handler.
pub struct SyncWorld {
    pub db: TestDb,
    pub sim: QboSim,
    pub store: SyncStore,
    pub access: Arc<FixedAccess>,
    pub handler: SyncHandler,
    /// The engine's store, where the runs raise their alerts.
    pub engine: hangar_workers::store::Store,
}

impl SyncWorld {
    /// A migrated database of `backend`, a fresh simulator, and a handler whose changes go
    /// to `changes` (API only when `None`).
    pub async fn new(backend: Backend, changes: Option<Changes>) -> SyncWorld {
        let db = TestDb::new(backend).await;
        let engine = db.store().await;
        let sim = QboSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        let access = Arc::new(FixedAccess::quickbooks(&sim, &["payments", "invoices"]));
        let handler = SyncHandler::new(
            store.clone(),
            access.clone(),
            Connectors::builtin(),
            &TargetPolicy::allow_all(),
            changes.unwrap_or_else(Changes::api_only),
        )
        .expect("handler")
        .with_alerts(engine.clone());
        SyncWorld {
            db,
            sim,
            store,
            access,
            handler,
            engine,
        }
    }

    /// Runs one `payments` sync (what one attempt of a `sync` job does).
    pub async fn sync_payments(&self) -> Result<(), JobFailure> {
        self.handler
            .sync(
                &SyncArgs {
                    integration_id: INTEGRATION.into(),
                    data_type: "payments".into(),
                    trigger: Trigger::Manual,
                    event_id: None,
                },
                None,
            )
            .await
    }

    /// The workspace's runs, newest first.
    pub async fn runs(&self) -> Vec<RunRow> {
        self.store.runs(WORKSPACE, None, 100).await.expect("runs")
    }

    /// The newest run.
    pub async fn last_run(&self) -> RunRow {
        self.runs().await.into_iter().next().expect("a run")
    }

    /// Rows of `table` (one of the sync tables).
    pub async fn count(&self, sql: &str) -> i64 {
        self.db.query_i64(sql).await
    }
}
