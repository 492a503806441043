//! Hangar's integration tests, one test binary: the real `hangar` binary and the engine
//! library against real PostgreSQL, real SQLite and real HTTP servers on loopback.

mod alert_delivery;
mod api;
mod auth;
mod cdp;
mod cli;
mod dashboard;
mod durability;
mod ingress;
mod ingress_edges;
mod isolation;
mod planner;
mod pool;
mod retry_rules;
mod store;
mod support;
