//! Hangar's engine: the job model, the job store on PostgreSQL and SQLite, the retry rules,
//! the pool runtime and the built-in job kinds. Library code never reads the environment or
//! flags: the `hangar` binary loads configuration once and passes values down.

pub mod alerts;
pub mod backoff;
pub mod client;
pub mod clock;
pub mod db;
pub mod duration_histogram;
pub mod error_class;
pub mod events;
pub mod failure;
pub mod inbound;
pub mod job;
pub mod job_action;
pub mod kinds;
pub mod mail;
pub mod pool;
pub mod pool_config;
pub mod redact;
pub mod refresher;
pub mod response_excerpt;
pub mod retry_after;
pub mod retry_budget;
pub mod retry_policy;
pub mod routes;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod targets;
pub mod transport_failure;
pub mod webhooks;
pub mod wire;
