//! Operators' actions on jobs (issue 15): which action applies to which state, who did it,
//! the record each changed job keeps of it, and the counts a bulk action answers with. The
//! store applies them (`store/job_actions.rs`); the API, the dashboard and the CLI only choose
//! the action, the jobs and the actor.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::job::{Job, JobFilter, JobId, JobState};

/// What an operator does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// A failed or cancelled job runs again now, with a fresh retry budget.
    Retry,
    /// A waiting job (`scheduled`, `retryable`) runs now instead of at its `run_at`, with a
    /// fresh retry budget (the single retry route of CONTRACT.md keeps doing this).
    RunNow,
    /// A completed job is queued once more, with a fresh retry budget; its attempts stay.
    RunAgain,
    /// An unfinished job is cancelled; a running attempt stops at its next heartbeat.
    Cancel,
}

impl JobAction {
    /// The name stored and shown (`retry`, `run_now`, `run_again`, `cancel`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Retry => "retry",
            JobAction::RunNow => "run_now",
            JobAction::RunAgain => "run_again",
            JobAction::Cancel => "cancel",
        }
    }

    /// The action a stored name stands for.
    pub fn parse(name: &str) -> Option<JobAction> {
        [
            JobAction::Retry,
            JobAction::RunNow,
            JobAction::RunAgain,
            JobAction::Cancel,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    /// The states this action changes; a job in any other state is skipped (bulk) or a
    /// conflict (one job).
    pub fn applies_to(self) -> &'static [JobState] {
        match self {
            JobAction::Retry => &[JobState::Failed, JobState::Cancelled],
            JobAction::RunNow => &[JobState::Scheduled, JobState::Retryable],
            JobAction::RunAgain => &[JobState::Completed],
            JobAction::Cancel => &[
                JobState::Available,
                JobState::Scheduled,
                JobState::Running,
                JobState::Retryable,
            ],
        }
    }

    /// The past tense people read on a job's page ("Retried by ops at …").
    pub fn past(self) -> &'static str {
        match self {
            JobAction::Retry => "Retried",
            JobAction::RunNow => "Run now",
            JobAction::RunAgain => "Run again",
            JobAction::Cancel => "Cancelled",
        }
    }
}

/// Where an operator acted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    /// The HTTP API, with a bearer token.
    Api,
    /// The dashboard, signed in with a token.
    Dashboard,
    /// The `hangar jobs` commands, on the database directly.
    Cli,
}

impl ActionSource {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionSource::Api => "api",
            ActionSource::Dashboard => "dashboard",
            ActionSource::Cli => "cli",
        }
    }

    /// The source a stored name stands for.
    pub fn parse(name: &str) -> Option<ActionSource> {
        [
            ActionSource::Api,
            ActionSource::Dashboard,
            ActionSource::Cli,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Who acts: a token's name (API and dashboard) or an operating-system user (CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The name recorded.
    pub name: String,
    /// Where from.
    pub source: ActionSource,
}

impl Actor {
    /// An actor named `name` acting from `source`.
    pub fn new(name: impl Into<String>, source: ActionSource) -> Actor {
        Actor {
            name: name.into(),
            source,
        }
    }
}

/// One recorded action on a job (`actions` of `GET /api/v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobActionRecord {
    /// What was done.
    pub action: JobAction,
    /// Who did it: the token's name, or the OS user of the CLI.
    pub actor: String,
    /// Where from.
    pub source: ActionSource,
    /// The bulk request it was part of; `null` for an action on this job alone.
    pub batch_id: Option<String>,
    /// When (RFC 3339 UTC).
    pub at: DateTime<Utc>,
}

/// A job with the operators' actions on it, oldest first (`GET /api/v1/jobs/{id}`,
/// `hangar jobs show --json`): the job JSON of CONTRACT.md plus `actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    /// The job (its fields are this object's).
    #[serde(flatten)]
    pub job: Job,
    /// What operators did to it, oldest first.
    pub actions: Vec<JobActionRecord>,
}

/// The jobs a bulk action is for.
#[derive(Debug, Clone)]
pub enum BulkTarget {
    /// These jobs (at most [`MAX_BULK_IDS`]); ids that do not exist are counted as
    /// `not_found`.
    Ids(Vec<JobId>),
    /// Every job the list's filter matches (its `before_id` and `limit` are ignored).
    Filter(JobFilter),
}

/// The most ids one bulk request may name (a filter has no limit).
pub const MAX_BULK_IDS: usize = 10_000;

/// The skip reason of ids that name no job (or another workspace's).
pub const NOT_FOUND: &str = "not_found";

/// What a bulk action did (or, dry, would do): `{"matched", "changed", "skipped": {state: n}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkOutcome {
    /// Jobs the ids or the filter named (that exist and the caller may see).
    pub matched: u64,
    /// Jobs the action changed (dry run: would change).
    pub changed: u64,
    /// Jobs left alone, by the state that made the action not apply (`completed`,
    /// `running`, …), and `not_found` for ids that name no job.
    pub skipped: BTreeMap<String, u64>,
    /// The batch id recorded on every changed job's action (absent on a dry run or when
    /// nothing changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
}

impl BulkOutcome {
    /// Adds `n` jobs that were in `state`, changed or not.
    pub(crate) fn add(&mut self, state: JobState, changed: bool, n: u64) {
        self.matched += n;
        if changed {
            self.changed += n;
        } else {
            *self.skipped.entry(state.as_str().to_owned()).or_default() += n;
        }
    }

    /// Adds `n` ids that name no job.
    pub(crate) fn add_not_found(&mut self, n: u64) {
        if n > 0 {
            *self.skipped.entry(NOT_FOUND.to_owned()).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_sources_round_trip_their_names() {
        for a in [
            JobAction::Retry,
            JobAction::RunNow,
            JobAction::RunAgain,
            JobAction::Cancel,
        ] {
            assert_eq!(JobAction::parse(a.as_str()), Some(a));
        }
        for s in [
            ActionSource::Api,
            ActionSource::Dashboard,
            ActionSource::Cli,
        ] {
            assert_eq!(ActionSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobAction::parse("delete"), None);
    }

    #[test]
    fn retry_never_applies_to_a_completed_or_running_job() {
        for state in [JobState::Completed, JobState::Running, JobState::Available] {
            assert!(!JobAction::Retry.applies_to().contains(&state), "{state}");
        }
        assert_eq!(JobAction::RunAgain.applies_to(), &[JobState::Completed]);
        // Every state but the final ones can be cancelled.
        for state in JobState::ALL {
            assert_eq!(
                JobAction::Cancel.applies_to().contains(&state),
                !state.is_final()
            );
        }
    }

    #[test]
    fn outcome_counts_skips_by_state() {
        let mut o = BulkOutcome::default();
        o.add(JobState::Failed, true, 3);
        o.add(JobState::Completed, false, 2);
        o.add(JobState::Running, false, 1);
        o.add_not_found(1);
        o.add_not_found(0);
        assert_eq!((o.matched, o.changed), (6, 3));
        assert_eq!(
            serde_json::to_value(&o.skipped).unwrap(),
            serde_json::json!({"completed": 2, "running": 1, "not_found": 1})
        );
    }
}
