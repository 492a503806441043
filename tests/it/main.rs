//! Hangar's integration tests, one test binary: the real `hangar` binary and the engine
//! library against real PostgreSQL, real SQLite and real HTTP servers on loopback.

mod retry_rules;
mod support;
