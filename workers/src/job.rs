//! The job model: ids, the closed set of states, what a caller enqueues and what an operator
//! sees. Storage backends translate these to rows; nothing here does I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error_class::ErrorClass;
use crate::retry_budget::Spent;

/// A job's id: the row id, unique across queues and kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(JobId)
    }
}

/// The state of a job. Each variant says which service moves a job into and out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Enqueued to run now. In: enqueue, operator retry, rescuer. Out: a pool's claim, cancel.
    Available,
    /// Enqueued or snoozed to run at a later `run_at`. In: enqueue with `run_at`, a rate-limit
    /// snooze. Out: a pool's claim once `run_at` has passed, cancel.
    Scheduled,
    /// Claimed by a worker holding a lease. In: claim. Out: completion, failure handling, the
    /// rescuer when the lease runs out, cancel.
    Running,
    /// Failed an attempt and waits for `run_at` to try again. In: failure handling, rescuer.
    /// Out: a pool's claim, cancel.
    Retryable,
    /// Finished successfully. In: the completer. Out: the pruner after the retention time.
    Completed,
    /// Gave up: retries exhausted or an error that is never retried. Kept for replay.
    /// In: failure handling. Out: operator retry.
    Failed,
    /// Cancelled by an operator. In: cancel. Out: operator retry.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will never run again unless an operator retries it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown job state '{0}' (expected one of available, scheduled, running, retryable, completed, failed, cancelled)"
)]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_owned()))
    }
}

impl JobState {
    /// The states named in `lists`, each a comma-separated list (`failed,retryable`), in the
    /// order given and without repeats; blank entries are skipped.
    pub fn parse_lists<'a>(
        lists: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<JobState>, UnknownJobState> {
        let mut states = Vec::new();
        for name in lists.into_iter().flat_map(|list| list.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let state: JobState = name.parse()?;
            if !states.contains(&state) {
                states.push(state);
            }
        }
        Ok(states)
    }
}

#[cfg(test)]
mod state_list_tests {
    use super::*;

    #[test]
    fn state_lists_accept_commas_and_repeats() {
        assert_eq!(
            JobState::parse_lists(["failed,retryable", " failed ", ""]).unwrap(),
            vec![JobState::Failed, JobState::Retryable]
        );
        assert!(JobState::parse_lists([]).unwrap().is_empty());
        let error = JobState::parse_lists(["failed,sleeping"]).unwrap_err();
        assert!(error.to_string().contains("'sleeping'"), "{error}");
    }
}

/// What a caller hands over to enqueue one job.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The job kind; a handler for it must be registered in some pool.
    pub kind: String,
    /// The queue (and so the pool) that runs it.
    pub queue: String,
    /// The handler's arguments.
    pub args: serde_json::Value,
    /// Run no earlier than this; `None` means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Smaller numbers run first.
    pub priority: i16,
    /// The ceiling on budget-consuming failures.
    pub max_attempts: i32,
    /// The workspace the job belongs to, if any.
    pub workspace_id: Option<String>,
    /// With the kind, makes the enqueue idempotent.
    pub idempotency_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` on the `default` queue with the default budget.
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            queue: "default".to_owned(),
            args,
            run_at: None,
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            workspace_id: None,
            idempotency_key: None,
        }
    }
}

/// The default ceiling on budget-consuming failures: one try plus the longest class budget
/// of the default retry policy (5 server retries).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 6;

/// The result of an enqueue: the job's id and whether this call created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id (the existing job's, when the idempotency key matched one).
    pub id: JobId,
    /// False when an existing job with the same kind and idempotency key was returned.
    pub created: bool,
}

/// One attempt of a job as operators see it (CONTRACT.md, job JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When the worker started it.
    pub started_at: DateTime<Utc>,
    /// When it ended (success, failure or the lease running out).
    pub finished_at: Option<DateTime<Utc>>,
    /// The class of the failure; `None` for a success.
    pub error_class: Option<ErrorClass>,
    /// The failure's message.
    pub error: Option<String>,
    /// The HTTP status the attempt got, if it made a request.
    pub http_status: Option<i32>,
    /// How long the retry rules waited before the next attempt.
    pub next_delay_ms: Option<i64>,
    /// The retry decision in words (class, budget, delay, alert).
    pub decision: Option<String>,
}

/// A job as the API and `--json` show it (CONTRACT.md, job JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The job kind.
    pub kind: String,
    /// The queue it runs on.
    pub queue: String,
    /// Its current state.
    pub state: JobState,
    /// How many attempts have started.
    pub attempt: i32,
    /// The ceiling on budget-consuming failures.
    pub max_attempts: i32,
    /// The attempts made before the current failure budget began: 0, or the attempt count
    /// at an operator's retry (which grants a fresh budget).
    pub budget_from_attempt: i32,
    /// Smaller numbers run first.
    pub priority: i16,
    /// When it runs (next).
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its row last changed.
    pub updated_at: DateTime<Utc>,
    /// The workspace it belongs to.
    pub workspace_id: Option<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// The handler's arguments.
    pub args: serde_json::Value,
    /// The message of the latest failure.
    pub last_error: Option<String>,
    /// Every attempt so far, oldest first (empty in listings).
    pub attempts: Vec<AttemptRecord>,
}

impl Job {
    /// [`Job::attempt_label`] for a table column: `3/6`, or `7 (1/6)` after an operator's retry.
    pub fn attempt_short(&self) -> String {
        if self.budget_from_attempt > 0 {
            let since = self.attempt - self.budget_from_attempt;
            format!("{} ({since}/{})", self.attempt, self.max_attempts)
        } else {
            format!("{}/{}", self.attempt, self.max_attempts)
        }
    }

    /// The attempt count as people read it: `3/6` (attempt 3, a budget of 6 failures), or
    /// after an operator's retry `7 (1 of 6 since the operator's retry)`.
    pub fn attempt_label(&self) -> String {
        if self.budget_from_attempt > 0 {
            format!(
                "{} ({} of {} since the operator's retry)",
                self.attempt,
                self.attempt - self.budget_from_attempt,
                self.max_attempts
            )
        } else {
            format!("{}/{}", self.attempt, self.max_attempts)
        }
    }

    /// The job as people see it: secrets in its args (an `http` job's header values) replaced
    /// by `"<redacted>"`. Every surface that shows a job calls this.
    pub fn redacted(mut self) -> Job {
        crate::kinds::redact_args(&self.kind, &mut self.args);
        self
    }
}

/// A job as a worker receives it from a claim.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: JobId,
    /// The job kind.
    pub kind: String,
    /// The handler's arguments.
    pub args: serde_json::Value,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// The ceiling on budget-consuming failures (per budget: an operator's retry grants a
    /// fresh one).
    pub max_attempts: i32,
    /// What the job has used of its current budget before this attempt.
    pub spent: Spent,
    /// Smaller numbers run first.
    pub priority: i16,
    /// The workspace it belongs to.
    pub workspace_id: Option<String>,
    /// The fencing token of this claim: results carrying another token are rejected.
    pub lease_token: i64,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it was due (start lag = `started_at - run_at`).
    pub run_at: DateTime<Utc>,
    /// When this attempt was claimed, by the database's clock (the claim statement's `now`).
    pub started_at: DateTime<Utc>,
    /// When this process read the claimed row, by its monotonic clock.
    pub received_at: Instant,
}

impl ClaimedJob {
    /// The database's clock now, as well as this process can tell without asking: the claim
    /// statement's time plus the time elapsed here since its rows arrived. It can only run
    /// behind the database (by the claim's return trip), so a wait computed against it is
    /// never shorter than the one asked for, and it does not depend on this machine's clock.
    pub fn db_now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.received_at.elapsed())
            .unwrap_or(chrono::Duration::zero());
        self.started_at + elapsed
    }
}

/// A cursor of the jobs list (the last job id of the page before, as
/// [`crate::store::Store::jobs_page`] gives it), or why it is none.
pub fn parse_cursor(value: Option<&str>) -> Result<Option<JobId>, String> {
    value
        .map(|v| match v.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(JobId(id)),
            _ => Err(format!("cursor: '{v}' is not a cursor of this list")),
        })
        .transpose()
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in one of these states; empty: any state.
    pub states: Vec<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs of this workspace.
    pub workspace_id: Option<String>,
    /// Only the job with this id (a search by id).
    pub id: Option<JobId>,
    /// Only jobs with this idempotency key.
    pub idempotency_key: Option<String>,
    /// Only jobs created at or after this moment.
    pub created_from: Option<DateTime<Utc>>,
    /// Only jobs created before this moment.
    pub created_until: Option<DateTime<Utc>>,
    /// The page after a cursor: only jobs with a smaller id (the last id of the page before).
    pub before_id: Option<JobId>,
    /// At most this many (newest first).
    pub limit: i64,
}
