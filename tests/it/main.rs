//! Hangar's integration tests, one test binary: the real `hangar` binary and the engine
//! library against real PostgreSQL, real SQLite and real HTTP servers on loopback.

mod alert_delivery;
mod alerts;
mod api;
mod api_fuzz;
mod auth;
mod cdp;
mod cli;
mod dashboard;
mod durability;
mod ingress;
mod openapi;
mod planner;
mod pool;
mod queue_lag;
mod retry_rules;
mod store;
mod support;
