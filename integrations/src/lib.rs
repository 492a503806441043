//! Hangar's integrations: per workspace and provider, the settings an admin chose and the
//! credentials sealed with the master key; OAuth token refresh as jobs (single-flight per
//! connection, fenced by a credential version); the sync engine (connectors, cursors,
//! mappings, conflict rules, audit of every run) and the provider connectors.
//!
//! A crate of its own (not a module of the engine) because it stands above both the engine
//! (its job kinds, store and keys) and the planner (an integration's frequency becomes planner
//! schedules): the arrows stay one way, binary → integrations → planner → engine.

pub mod access;
pub mod context;
pub mod credentials;
pub mod integration;
pub mod provider;
pub mod refresh;
pub mod refresh_job;
pub mod schedule;
pub mod store;
pub mod token_endpoint;
