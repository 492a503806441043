//! Sync runs over the real integrations' store (not the `FixedAccess` seam of
//! `sync_support`): a QuickBooks integration `PUT` through [`IntegrationContext`] (OAuth at
//! the simulator's token endpoint, hourly payments, so it has a planner schedule), the `sync`
//! handler reading it through the context as `hangar` does, and `hangar worker` processes
//! running its jobs with the engine's failure rules (the 401 rule's refresher, the pool's
//! snooze cap).

use std::sync::Arc;

use hangar_integrations::IntegrationContext;
use hangar_integrations::provider::Provider;
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::RunRow;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_schedules::ScheduleFilter;
use hangar_workers::job::JobId;
use hangar_workers::kinds::JobFailure;
use hangar_workers::store::{AlertRow, Store};
use hangar_workers::targets::TargetPolicy;
use serde_json::{Value, json};

use crate::integrations_support::{context_with, request};
use crate::qbo_sim::{QboSim, REALM, oauth};
use crate::support::{ANY_PORT, Backend, Proc, TestDb};

pub const WS: &str = "ws_ctx";

/// The pools of the worker processes: `sync` and `token_refresh` with fast retries, and a
/// snooze cap of 2 (a job throttled by its provider a third time fails), far below the
/// default 20, so that a chain of budget waits longer than the cap takes seconds.
pub const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]

[[pool]]
name = "integrations"
queue = "integrations"
kinds = ["sync", "token_refresh"]
concurrency = 4
lease_ms = 5000
poll_interval_ms = 100

[pool.retry.server]
max_retries = 3
base_delay_ms = 200
max_delay_ms = 1000

[pool.retry.rate_limit]
max_snoozes = 2
default_wait_ms = 1000
"#;

/// One test's world.
pub struct ContextWorld {
    pub db: TestDb,
    pub store: Store,
    pub context: IntegrationContext,
    pub sim: QboSim,
    /// The QuickBooks integration's id.
    pub id: String,
    pub runs: SyncStore,
    pub handler: SyncHandler,
}

/// The QuickBooks integration's body: payments hourly, the simulator as the company and
/// the token endpoint, the access token expiring in an hour.
pub fn body(sim: &QboSim) -> Value {
    json!({
        "enabled": true,
        "data_types": ["payments"],
        "frequency": "hourly",
        "settings": {"realm_id": REALM, "base_url": sim.base},
        "credentials": {"oauth": {
            "access_token": "access-0",
            "refresh_token": "refresh-0",
            "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "token_url": sim.token_url(),
            "client_id": oauth::CLIENT_ID,
            "client_secret": oauth::CLIENT_SECRET,
            "scopes": ["com.intuit.quickbooks.accounting"],
        }},
    })
}

impl ContextWorld {
    /// A migrated database of `backend`, a simulator and the integration of [`body`].
    pub async fn new(backend: Backend) -> ContextWorld {
        ContextWorld::with(backend, |_| {}).await
    }

    /// The same, with the integration's body changed by `edit` first.
    pub async fn with(backend: Backend, edit: impl FnOnce(&mut Value)) -> ContextWorld {
        let db = TestDb::new(backend).await;
        let (store, context) = context_with(&db, POOLS).await;
        let sim = QboSim::start().await;
        let mut put = body(&sim);
        edit(&mut put);
        let id = context
            .put(WS, Provider::Quickbooks, request(put))
            .await
            .expect("put")
            .id;
        let runs = SyncStore::new(store.database().clone());
        let handler = SyncHandler::new(
            runs.clone(),
            Arc::new(context.clone()),
            Connectors::builtin(),
            &TargetPolicy::allow_all(),
            Changes::api_only(),
        )
        .expect("handler")
        .with_alerts(store.clone());
        ContextWorld {
            db,
            store,
            context,
            sim,
            id,
            runs,
            handler,
        }
    }

    /// One `payments` run in this process (what one attempt of a `sync` job does).
    pub async fn sync_payments(&self) -> Result<(), JobFailure> {
        let args = SyncArgs {
            integration_id: self.id.clone(),
            data_type: "payments".into(),
            trigger: Trigger::Manual,
            event_id: None,
        };
        self.handler.sync(&args, None).await
    }

    /// A manual `payments` sync job (run by a worker process).
    pub async fn sync_job(&self) -> JobId {
        let ids = self
            .context
            .sync_now(WS, Provider::Quickbooks, Some("payments"))
            .await
            .expect("sync now");
        ids[0]
    }

    /// `hangar worker` running the integrations' pool; its log is `NAME.log`.
    pub fn worker(&self, name: &str) -> Proc {
        self.db.spawn(
            name,
            &["worker", "--pool", "integrations", "--bind", ANY_PORT],
        )
    }

    /// The workspace's runs, newest first.
    pub async fn runs(&self) -> Vec<RunRow> {
        self.runs.runs(WS, None, 100).await.expect("runs")
    }

    /// The integration's status.
    pub async fn status(&self) -> String {
        let row = self.context.rows.get(&self.id).await.expect("row");
        row.integration.status.as_str().to_owned()
    }

    /// The integration's credential version.
    pub async fn version(&self) -> i64 {
        let row = self.context.rows.get(&self.id).await.expect("row");
        row.integration.credential_version
    }

    /// The integration's schedules: (enabled, has a next run).
    pub async fn schedules(&self) -> Vec<(bool, bool)> {
        let rows = self
            .context
            .schedules
            .list(&ScheduleFilter::default())
            .await
            .expect("schedules");
        rows.into_iter()
            .filter(|r| r.integration.as_deref() == Some(self.id.as_str()))
            .map(|r| (r.enabled, r.next_run_at.is_some()))
            .collect()
    }

    /// The open alerts.
    pub async fn open_alerts(&self) -> Vec<AlertRow> {
        self.store.alerts(false).await.expect("alerts")
    }
}
