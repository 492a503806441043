//! [`IntegrationContext`]: what every part of the crate shares at run time (the engine's
//! store for jobs and alerts, the integrations' rows, the planner's schedules, the keyring
//! that opens credentials, the routes jobs go by, the HTTP client of provider calls and the
//! target policy), and [`RefreshConfig`], the token refresh's settings. Built once by the
//! binary when the store and the master key are open; cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use hangar_schedules::Schedules;
use hangar_workers::job::NewJob;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::Keyring;
use hangar_workers::store::Store;
use hangar_workers::targets::{self, TargetPolicy};

use crate::store::IntegrationRows;
use crate::sync::connector::Connectors;

/// The `sync` kind: one (integration, data type) run; its handler is the sync engine's.
pub const SYNC: &str = "sync";
/// The `token_refresh` kind: one OAuth connection's refresh.
pub const TOKEN_REFRESH: &str = "token_refresh";
/// The integrations' job kinds; both internal (their arguments name an integration, which a
/// caller must not choose).
pub const KINDS: [&str; 2] = [SYNC, TOKEN_REFRESH];

/// The token refresh's settings.
#[derive(Debug, Clone, Copy)]
pub struct RefreshConfig {
    /// Refresh this long before the access token expires (default 15 min).
    pub margin: Duration,
    /// Refresh at least this often, for rolling refresh tokens (default 24 h).
    pub at_least_every: Duration,
    /// How long a process holds a connection's refresh lease (longer than one token call).
    pub lease: Duration,
    /// How long one token call may take.
    pub call_timeout: Duration,
    /// How long a caller waits for another process's refresh before it calls it transient.
    pub wait: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            margin: Duration::from_secs(15 * 60),
            at_least_every: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            call_timeout: Duration::from_secs(20),
            wait: Duration::from_secs(25),
        }
    }
}

/// What the integrations share.
#[derive(Clone)]
pub struct IntegrationContext {
    /// The engine's store: jobs and alerts.
    pub store: Store,
    /// The integrations' rows.
    pub rows: IntegrationRows,
    /// The planner's schedules.
    pub schedules: Schedules,
    /// Seals and opens credentials.
    pub keyring: Arc<Keyring>,
    /// Where `sync` and `token_refresh` jobs go.
    pub routes: Routes,
    /// Which addresses provider and token URLs may reach.
    pub targets: TargetPolicy,
    /// The HTTP client of token calls (redirects not followed, the target policy applied).
    pub http: reqwest::Client,
    /// The refresh's settings.
    pub refresh: RefreshConfig,
    /// This process (`host:pid`), the refresh lease's owner.
    pub owner: String,
    /// The connectors: the data types each provider takes and their directions.
    pub connectors: Connectors,
}

impl IntegrationContext {
    /// The context over `store` (migrated) with the keyring and routes of this process.
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        routes: Routes,
        targets: TargetPolicy,
        owner: impl Into<String>,
    ) -> IntegrationContext {
        let refresh = RefreshConfig::default();
        let http = targets::client_builder(&targets)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(refresh.call_timeout)
            .user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        IntegrationContext {
            rows: IntegrationRows::new(store.database().clone()),
            schedules: Schedules::new(store.clone()),
            store,
            keyring,
            routes,
            targets,
            http,
            refresh,
            owner: owner.into(),
            connectors: Connectors::builtin(),
        }
    }

    /// The same with other connectors (the data types configure accepts and shows).
    pub fn with_connectors(mut self, connectors: Connectors) -> IntegrationContext {
        self.connectors = connectors;
        self
    }

    /// The same with other refresh settings.
    pub fn with_refresh(mut self, refresh: RefreshConfig) -> IntegrationContext {
        self.refresh = refresh;
        self
    }

    /// A job of one of the integrations' kinds for `workspace` (see [`job`]).
    pub fn job(&self, kind: &str, workspace: &str, args: serde_json::Value) -> NewJob {
        job(&self.routes, kind, workspace, args)
    }
}

/// A job of one of the integrations' kinds for `workspace`, routed by `routes` like the
/// engine's own jobs (never refused: a process without the pool still writes it).
pub fn job(routes: &Routes, kind: &str, workspace: &str, args: serde_json::Value) -> NewJob {
    let route = routes.route_or_default(kind, None);
    let mut job = NewJob::new(kind, args);
    job.queue = route.queue;
    job.max_attempts = route.max_attempts;
    job.workspace_id = Some(workspace.to_owned());
    job
}
