//! Hangar's integration tests, one test binary: the real `hangar` binary and the engine
//! library against real PostgreSQL, real SQLite and real HTTP servers on loopback.

mod alert_delivery;
mod alerts;
mod api;
mod api_errors;
mod api_fuzz;
mod auth;
mod cdp;
mod cli;
mod cli_output;
mod config;
mod dashboard;
mod dashboard_escaping;
mod dashboard_layout;
mod dashboard_sessions;
mod durability;
mod ingress;
mod ingress_edges;
mod isolation;
mod job_secrets;
mod key_file;
mod metric_labels;
mod openapi;
mod outbound;
mod planner;
mod pool;
mod queue_lag;
mod retry_decisions;
mod retry_rules;
mod routing;
mod schedule_sync;
mod schema_upgrade;
mod store;
mod store_database;
mod support;
mod support_sql;
