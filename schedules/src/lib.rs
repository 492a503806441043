//! Hangar's cron planner: schedule files (`schedules/*.toml`), schedules stored in the
//! database (file schedules upserted at start, removed only on request, and those the integrations create per workspace),
//! and the [`Planner`] loop that enqueues exactly one job per slot however many planner
//! processes run. Library code never reads the environment or flags: the `hangar` binary
//! loads configuration once and passes values down.

pub mod batch;
pub mod file;
pub mod planner;
pub mod spec;
pub mod store;

pub use file::{FileSchedule, ScheduleFileError};
pub use planner::{Planner, PlannerConfig};
pub use spec::{Frequency, Spec};
pub use store::operator::run_now_key;
pub use store::{
    MIGRATIONS, NewSchedule, Prune, ScheduleError, ScheduleFilter, ScheduleRow, Schedules, Source,
    SyncCounts,
};
