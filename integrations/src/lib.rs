//! Hangar's integrations: per workspace and provider, the settings an admin chose and the
//! credentials sealed with the master key; OAuth token refresh as jobs (single-flight per
//! connection, fenced by a credential version); the sync engine (connectors, cursors,
//! mappings, conflict rules, audit of every run) and the provider connectors.
//!
//! A crate of its own (not a module of the engine) because it stands above both the engine
//! (its job kinds, store and keys) and the planner (an integration's frequency becomes planner
//! schedules): the arrows stay one way, binary → integrations → planner → engine.

pub mod access;
pub mod configure;
pub mod connectors;
pub mod context;
pub mod credentials;
pub mod disable;
pub mod integration;
pub mod provider;
pub mod refresh;
pub mod refresh_job;
pub mod schedule;
pub mod store;
pub mod store_access;
pub mod subscriptions;
pub mod sync;
pub mod token_endpoint;

pub use context::{IntegrationContext, KINDS, RefreshConfig, SYNC, TOKEN_REFRESH};
pub use refresh_job::{IntegrationRefresher, RefreshHandler};

use hangar_workers::kinds::Registry;

/// Marks the integrations' kinds internal in `registry`: callers (API, Redis ingress, CLI)
/// are refused them even by a process that does not run them.
pub fn reserve_kinds(registry: &mut Registry) {
    for kind in KINDS {
        registry.reserve_internal(kind);
    }
}

/// Registers the `token_refresh` handler over `context`, as an internal kind (the `sync`
/// handler is the sync engine's).
pub fn register(registry: &mut Registry, context: &IntegrationContext) {
    registry.register_internal(TOKEN_REFRESH, RefreshHandler::new(context.clone()));
}
