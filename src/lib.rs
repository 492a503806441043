//! Hangar's binary crate as a library: every module of the `hangar` command, so that
//! integration tests can drive a service (the Redis ingress consumer's `run_once`, …) on a
//! real database and Redis without starting a process. `main.rs` only parses the command line
//! and runs one command.

mod api;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
mod dashboard;
pub mod exit;
pub mod fleet;
mod http;
pub mod keys;
pub mod planner;
pub mod redis_ingress;
pub mod runtime;
pub mod store;

use hangar_workers::store::Store;

use crate::config::Config;
use crate::exit::Fatal;

/// Connects to the configured database (an unreachable one is a configuration error),
/// creating an SQLite file when missing.
pub async fn connect(config: &Config) -> Result<Store, Fatal> {
    config::probe_database(&config.database_url).await?;
    Ok(Store::connect(&config.database_url, 16).await?)
}

/// Connects to the configured database, which must exist with an up-to-date schema: the
/// processes that do not own the schema (`worker`, operator commands) never change it.
pub async fn connect_migrated(config: &Config) -> Result<Store, Fatal> {
    config::probe_database(&config.database_url).await?;
    let store = Store::connect_existing(&config.database_url, 16).await?;
    crate::store::check_migrated(store.database()).await?;
    Ok(store)
}
