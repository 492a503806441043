//! Support for the Stripe connector's tests: a migrated database, the Stripe simulator, and
//! [`KeyAccess`], the test seam standing for the integration store with one Stripe Connect
//! integration and its platform key (an API key: a refresh after a 401 is refused, as the
//! integration store refuses it, and the connection needs re-authorisation).

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

use crate::stripe_sim::{ACCOUNT, API_KEY, StripeSim};
use crate::support::{Backend, TestDb};

pub const INTEGRATION: &str = "int_test_stripe";
pub const WORKSPACE: &str = "ws_stripe";

/// The test seam: one Stripe integration and its key.
pub struct KeyAccess {
    pub info: IntegrationInfo,
    /// Refreshes asked for (after a 401).
    pub refreshes: Mutex<u32>,
}

impl IntegrationAccess for KeyAccess {
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
        Box::pin(async move {
            Ok(AccessToken {
                token: API_KEY.into(),
                version: 1,
            })
        })
    }

    fn refresh_after_unauthorized<'a>(
        &'a self,
        id: &'a str,
        _seen_version: i64,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            *self.refreshes.lock().unwrap() += 1;
            Err(AccessError::NeedsReauth(
                id.to_owned(),
                "an API key cannot be refreshed".into(),
            ))
        })
    }
}

/// One Stripe test's world.
pub struct StripeWorld {
    pub db: TestDb,
    pub sim: StripeSim,
    pub store: SyncStore,
    pub access: Arc<KeyAccess>,
    pub handler: SyncHandler,
}

impl StripeWorld {
    pub async fn new(backend: Backend) -> StripeWorld {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let sim = StripeSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        let access = Arc::new(KeyAccess {
            info: IntegrationInfo {
                id: INTEGRATION.into(),
                workspace_id: WORKSPACE.into(),
                provider: Provider::Stripe,
                enabled: true,
                data_types: vec!["payments".into(), "payment_intents".into()],
                settings: json!({"account_id": ACCOUNT, "base_url": sim.base}),
            },
            refreshes: Mutex::new(0),
        });
        let handler = SyncHandler::new(
            store.clone(),
            access.clone(),
            Connectors::builtin(),
            &TargetPolicy::allow_all(),
            Changes::api_only(),
        )
        .expect("handler");
        StripeWorld {
            db,
            sim,
            store,
            access,
            handler,
        }
    }

    /// Runs one sync of `data_type` (what one attempt of a `sync` job does).
    pub async fn sync(&self, data_type: &str, event_id: Option<&str>) -> Result<(), JobFailure> {
        let trigger = if event_id.is_some() {
            Trigger::Event
        } else {
            Trigger::Manual
        };
        self.handler
            .sync(
                &SyncArgs {
                    integration_id: INTEGRATION.into(),
                    data_type: data_type.into(),
                    trigger,
                    event_id: event_id.map(str::to_owned),
                },
                None,
            )
            .await
    }

    /// The newest run.
    pub async fn last_run(&self) -> RunRow {
        let runs = self.store.runs(WORKSPACE, None, 1).await.expect("runs");
        runs.into_iter().next().expect("a run")
    }

    /// The time all runs so far waited on the rate budget, in ms.
    pub async fn wait_ms(&self) -> i64 {
        self.db
            .query_i64(
                "SELECT CAST(COALESCE(SUM(rate_wait_ms), 0) AS BIGINT) FROM hangar_sync_runs",
            )
            .await
    }

    /// Moves the stored cursor 31 days back (older than the events feed keeps).
    pub async fn age_the_cursor(&self) {
        let old = chrono::Utc::now() - chrono::Duration::days(31);
        let sql = if self.db.url.starts_with("sqlite") {
            format!(
                "UPDATE hangar_sync_cursors SET cursor_at = {} WHERE integration_id = '{INTEGRATION}'",
                old.timestamp_millis()
            )
        } else {
            format!(
                "UPDATE hangar_sync_cursors SET cursor_at = '{}' WHERE integration_id = '{INTEGRATION}'",
                old.to_rfc3339()
            )
        };
        self.db.sql(&sql).await;
    }
}
