//! Hangar's cron planner: schedule files (`schedules/*.toml`), schedules stored in the
//! database (file schedules synced at start, and those the integrations create per workspace),
//! and the [`Planner`] loop that enqueues exactly one job per slot however many planner
//! processes run. Library code never reads the environment or flags: the `hangar` binary
//! loads configuration once and passes values down.

pub mod spec;
pub mod file;
