//! Reading rows back: the column lists of a job row, a job and a claimed job decoded from
//! either backend's row (PostgreSQL keeps `timestamptz` and `jsonb`, SQLite integer Unix
//! milliseconds and JSON text), and the parsing of stored names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::StoreError;
use crate::error_class::ErrorClass;
use crate::job::{AttemptRecord, ClaimedJob, Job, JobId, JobState};
use crate::retry_policy::Spent;

/// The columns [`job_from_pg`] and [`job_from_sqlite`] read.
pub(super) const JOB_COLUMNS: &str = "id, kind, queue, state, attempt, max_attempts, \
     budget_from_attempt, priority, run_at, created_at, updated_at, workspace_id, \
     idempotency_key, args, last_error, attempted_at, finalized_at";

/// The columns [`claimed_from_pg`] reads, of `hangar_jobs j`.
pub(super) const PG_CLAIMED_COLUMNS: &str = "j.id, j.kind, j.args, j.attempt, j.max_attempts, \
     j.budget_failures, j.snoozes, j.timeout_failures, j.server_failures, j.internal_failures, \
     j.auth_failures, j.budget_from_attempt, \
     j.priority, j.workspace_id, j.lease_token, j.created_at, j.run_at, j.attempted_at";

/// The columns [`claimed_from_sqlite`] reads, of `hangar_jobs` (no alias).
pub(super) const SQLITE_CLAIMED_COLUMNS: &str = "id, kind, args, attempt, max_attempts, \
     budget_failures, snoozes, timeout_failures, server_failures, internal_failures, \
     auth_failures, budget_from_attempt, \
     priority, workspace_id, lease_token, created_at, run_at, attempted_at";

/// The columns of an attempt row that [`attempt_from_pg`] and [`attempt_from_sqlite`] read.
pub(super) const ATTEMPT_COLUMNS: &str = "attempt, started_at, finished_at, error_class, error, \
     http_status, next_delay_ms, decision";

/// Now, as SQLite stores times.
pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A time SQLite stored as Unix milliseconds.
pub(super) fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An optional time SQLite stored as Unix milliseconds.
pub(super) fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_time)
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The budget counters of a job row, in the order of [`BUDGET_COLUMNS`]; a count past
/// `i32::MAX` is stored as `i32::MAX`.
pub(super) fn budget_counts(spent: &Spent) -> [i32; 6] {
    [
        spent.failures,
        spent.snoozes,
        spent.timeout,
        spent.server,
        spent.internal,
        spent.auth,
    ]
    .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The job row's budget counters, as [`Spent::from_row`] and [`budget_counts`] order them.
const BUDGET_COLUMNS: [&str; 6] = [
    "budget_failures",
    "snoozes",
    "timeout_failures",
    "server_failures",
    "internal_failures",
    "auth_failures",
];

/// The budget a claimed row has used (see [`BUDGET_COLUMNS`]), on either backend.
fn spent_from_row<'r, R>(row: &'r R) -> Result<Spent, StoreError>
where
    R: sqlx::Row,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let mut counts = [0i32; 6];
    for (count, column) in counts.iter_mut().zip(BUDGET_COLUMNS) {
        *count = row.try_get(column)?;
    }
    Ok(Spent::from_row(counts, row.try_get("budget_from_attempt")?))
}

/// Parses a stored state name.
pub(super) fn parse_state(table: &'static str, s: &str) -> Result<JobState, StoreError> {
    s.parse()
        .map_err(|e: crate::job::UnknownJobState| StoreError::Corrupt {
            table,
            detail: e.to_string(),
        })
}

/// Parses a stored error class name (absent stays absent).
fn parse_class(table: &'static str, s: Option<String>) -> Result<Option<ErrorClass>, StoreError> {
    s.map(|s| {
        s.parse().map_err(
            |e: crate::error_class::UnknownErrorClass| StoreError::Corrupt {
                table,
                detail: e.to_string(),
            },
        )
    })
    .transpose()
}

/// The attempt of a job that succeeded is not written as its own row (it would double the
/// writes on the hot path); it is rebuilt from the job row's `attempted_at`/`finalized_at`.
pub(super) fn synthesize_success(
    job: &mut Job,
    attempted_at: Option<DateTime<Utc>>,
    finalized_at: Option<DateTime<Utc>>,
) {
    if job.state == JobState::Completed
        && let Some(started_at) = attempted_at
        && !job.attempts.iter().any(|a| a.attempt == job.attempt)
    {
        job.attempts.push(AttemptRecord {
            attempt: job.attempt,
            started_at,
            finished_at: finalized_at,
            error_class: None,
            error: None,
            http_status: None,
            next_delay_ms: None,
            decision: Some("completed".to_owned()),
        });
    }
}

/// SQLite keeps `args` as JSON text.
fn json_args(raw: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        table: "hangar_jobs",
        detail: format!("args is not JSON: {e}"),
    })
}

pub(super) fn claimed_from_pg(row: &PgRow) -> Result<ClaimedJob, StoreError> {
    Ok(ClaimedJob {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        args: row.try_get("args")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        spent: spent_from_row(row)?,
        priority: row.try_get("priority")?,
        workspace_id: row.try_get("workspace_id")?,
        lease_token: row.try_get("lease_token")?,
        created_at: row.try_get("created_at")?,
        run_at: row.try_get("run_at")?,
        started_at: row.try_get("attempted_at")?,
        received_at: std::time::Instant::now(),
    })
}

pub(super) fn claimed_from_sqlite(row: &SqliteRow) -> Result<ClaimedJob, StoreError> {
    Ok(ClaimedJob {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        args: json_args(row.try_get("args")?)?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        spent: spent_from_row(row)?,
        priority: row.try_get("priority")?,
        workspace_id: row.try_get("workspace_id")?,
        lease_token: row.try_get("lease_token")?,
        created_at: to_time(row.try_get("created_at")?),
        run_at: to_time(row.try_get("run_at")?),
        started_at: to_time(row.try_get("attempted_at")?),
        received_at: std::time::Instant::now(),
    })
}

pub(super) fn job_from_pg(row: &PgRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        state: parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        budget_from_attempt: row.try_get("budget_from_attempt")?,
        priority: row.try_get("priority")?,
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        workspace_id: row.try_get("workspace_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        args: row.try_get("args")?,
        last_error: row.try_get("last_error")?,
        attempts: Vec::new(),
    })
}

pub(super) fn job_from_sqlite(row: &SqliteRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        state: parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        budget_from_attempt: row.try_get("budget_from_attempt")?,
        priority: row.try_get("priority")?,
        run_at: to_time(row.try_get("run_at")?),
        created_at: to_time(row.try_get("created_at")?),
        updated_at: to_time(row.try_get("updated_at")?),
        workspace_id: row.try_get("workspace_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        args: json_args(row.try_get("args")?)?,
        last_error: row.try_get("last_error")?,
        attempts: Vec::new(),
    })
}

pub(super) fn attempt_from_pg(row: &PgRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        attempt: row.try_get("attempt")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error_class: parse_class("hangar_job_attempts", row.try_get("error_class")?)?,
        error: row.try_get("error")?,
        http_status: row.try_get("http_status")?,
        next_delay_ms: row.try_get("next_delay_ms")?,
        decision: row.try_get("decision")?,
    })
}

pub(super) fn attempt_from_sqlite(row: &SqliteRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        attempt: row.try_get("attempt")?,
        started_at: to_time(row.try_get("started_at")?),
        finished_at: opt_time(row.try_get("finished_at")?),
        error_class: parse_class("hangar_job_attempts", row.try_get("error_class")?)?,
        error: row.try_get("error")?,
        http_status: row.try_get("http_status")?,
        next_delay_ms: row.try_get("next_delay_ms")?,
        decision: row.try_get("decision")?,
    })
}
