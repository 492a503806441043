//! Support for the notification connectors' tests (Slack, Email): a migrated database, a
//! sync handler, and [`NotifyAccess`], the seam standing for the integration store with one
//! integration and its credential (an API key: a refresh after a 401 is refused, as the store
//! refuses it; a destination gone is recorded as the store would disable it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hangar_integrations::access::{AccessError, AccessToken, IntegrationAccess, IntegrationInfo};
use hangar_integrations::connectors::email::Email;
use hangar_integrations::provider::Provider;
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::RunRow;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::outbound::accept_event;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::db::Database;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use hangar_workers::mail::TrustRoots;
use hangar_workers::targets::TargetPolicy;
use hangar_workers::wire::EventEnvelope;
use serde_json::Value;

use crate::support::{Backend, TestDb};

pub const WORKSPACE: &str = "ws_notify";

/// The test seam: one integration and its credential.
pub struct NotifyAccess {
    pub info: IntegrationInfo,
    pub credential: String,
    /// Refreshes asked for (after a 401).
    pub refreshes: Mutex<u32>,
    /// Reasons the integration was disabled for.
    pub disabled: Mutex<Vec<String>>,
}

impl IntegrationAccess for NotifyAccess {
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
                token: self.credential.clone(),
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

    fn disable<'a>(
        &'a self,
        _id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move {
            self.disabled.lock().unwrap().push(reason.to_owned());
            Ok(())
        })
    }
}

/// One notification test's world.
pub struct NotifyWorld {
    /// Kept for the test's length (dropping it drops the database).
    _db: TestDb,
    pub store: SyncStore,
    pub access: Arc<NotifyAccess>,
    pub handler: SyncHandler,
    connectors: Connectors,
}

impl NotifyWorld {
    /// A world with one `provider` integration (`settings`, `credential`) enabling
    /// `data_types`; the email connector trusts `roots` as well.
    pub async fn new(
        backend: Backend,
        provider: Provider,
        data_types: &[&str],
        settings: Value,
        credential: &str,
        roots: TrustRoots,
    ) -> NotifyWorld {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        let access = Arc::new(NotifyAccess {
            info: IntegrationInfo {
                id: format!("int_test_{provider}"),
                workspace_id: WORKSPACE.into(),
                provider,
                enabled: true,
                data_types: data_types.iter().map(|d| (*d).to_owned()).collect(),
                settings,
            },
            credential: credential.to_owned(),
            refreshes: Mutex::new(0),
            disabled: Mutex::new(Vec::new()),
        });
        let mut connectors = Connectors::builtin();
        connectors.register(Email::trusting(roots));
        let handler = SyncHandler::new(
            store.clone(),
            access.clone(),
            connectors.clone(),
            &TargetPolicy::allow_all(),
            Changes::api_only(),
        )
        .expect("handler");
        NotifyWorld {
            _db: db,
            store,
            access,
            handler,
            connectors,
        }
    }

    /// Takes a catalog event into the outbox, as the event subscription's job does; returns
    /// the event's id.
    pub async fn event(&self, id: &str, event_type: &str, data: Value) -> String {
        let event = EventEnvelope {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            workspace_id: WORKSPACE.to_owned(),
            timestamp: Utc::now(),
            data: data.as_object().expect("an object").clone(),
        };
        let jobs = accept_event(
            &self.store,
            &self.connectors,
            std::slice::from_ref(&self.access.info),
            &event,
        )
        .await
        .expect("accepted");
        assert_eq!(jobs.len(), 1, "{event_type} is taken by one data type");
        id.to_owned()
    }

    /// One attempt of the `sync` job of `data_type` started by `event_id`.
    pub async fn sync(&self, data_type: &str, event_id: &str) -> Result<(), JobFailure> {
        self.handler
            .sync(
                &SyncArgs {
                    integration_id: self.access.info.id.clone(),
                    data_type: data_type.into(),
                    trigger: Trigger::Event,
                    event_id: Some(event_id.to_owned()),
                },
                None,
            )
            .await
    }

    /// Runs the job of `event_id` until it ends, sleeping what each rate-limited attempt
    /// asks (as the pool snoozes it); the end and the number of snoozes.
    pub async fn sync_snoozing(
        &self,
        data_type: &str,
        event_id: &str,
    ) -> (Result<(), JobFailure>, u32) {
        let mut snoozes = 0;
        loop {
            match self.sync(data_type, event_id).await {
                Err(f) if f.class == ErrorClass::RateLimit && snoozes < 20 => {
                    snoozes += 1;
                    let secs: f64 = f
                        .retry_after
                        .as_deref()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(1.0);
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                }
                other => return (other, snoozes),
            }
        }
    }

    /// The newest run.
    pub async fn last_run(&self) -> RunRow {
        let runs = self.store.runs(WORKSPACE, None, 1).await.expect("runs");
        runs.into_iter().next().expect("a run")
    }
}
