//! Decoding `hangar_schedules` rows of either backend into [`ScheduleRow`], and the small
//! helpers both dialects share: SQLite's integer Unix milliseconds, its `args` JSON text, its
//! write transaction (`BEGIN IMMEDIATE`), and the last jobs' states asked of the engine.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hangar_workers::client::Conn;
use hangar_workers::job::{JobId, JobState};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::{ScheduleError, ScheduleRow, Source};

/// The columns [`row_from_pg`] and [`row_from_sqlite`] read, on the table aliased `s`.
pub(super) const ROW_COLUMNS: &str = "s.id, s.name, s.source, s.workspace_id, s.integration, \
     s.data_type, s.spec, s.kind, s.args, s.queue, s.priority, s.enabled, s.offset_ms, \
     s.next_run_at, s.last_slot_at, s.last_job_id, s.last_enqueued_at, \
     s.skipped_count, s.last_skipped_at, s.created_at, s.updated_at, s.source_file, \
     s.operator_enabled, s.operator_changed_at, s.run_now_job_id, s.run_now_at";

/// The job ids whose states a listing asks of the engine: each row's last slot's job and
/// its last "run now" job.
pub(super) fn listed_job_ids<R: Row>(rows: &[R]) -> Result<Vec<Option<i64>>, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut ids = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        ids.push(row.try_get("last_job_id")?);
        ids.push(row.try_get("run_now_job_id")?);
    }
    Ok(ids)
}

/// A time as SQLite stores it: integer Unix milliseconds.
pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_time)
}

/// SQLite's one writer at a time, taken up front: two processes on one file write one after
/// the other.
pub(super) async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// SQLite's `args` (JSON text).
pub(super) fn json_args(text: &str) -> Result<serde_json::Value, ScheduleError> {
    serde_json::from_str(text).map_err(|e| ScheduleError::Corrupt(format!("args: {e}")))
}

/// The states of the schedules' last jobs (those that still exist), asked of the engine
/// through `conn`: the planner's SQL never reads the engine's tables.
pub(super) async fn last_job_states<C: Conn + ?Sized>(
    conn: &mut C,
    last_job_ids: Vec<Option<i64>>,
) -> Result<HashMap<JobId, JobState>, ScheduleError> {
    let ids: Vec<JobId> = last_job_ids.into_iter().flatten().map(JobId).collect();
    Ok(conn.job_states(&ids).await?)
}

pub(super) fn row_from_pg(
    row: &PgRow,
    states: &HashMap<JobId, JobState>,
) -> Result<ScheduleRow, ScheduleError> {
    let last_job_id = row.try_get::<Option<i64>, _>("last_job_id")?.map(JobId);
    let run_now_job_id = row.try_get::<Option<i64>, _>("run_now_job_id")?.map(JobId);
    Ok(ScheduleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        source: Source::parse(row.try_get("source")?)?,
        source_file: row.try_get("source_file")?,
        operator_enabled: row.try_get("operator_enabled")?,
        run_now_job_id,
        run_now_job_state: run_now_job_id.and_then(|id| states.get(&id).copied()),
        workspace_id: row.try_get("workspace_id")?,
        integration: row.try_get("integration")?,
        data_type: row.try_get("data_type")?,
        spec: row.try_get("spec")?,
        kind: row.try_get("kind")?,
        args: row.try_get("args")?,
        queue: row.try_get("queue")?,
        priority: row.try_get("priority")?,
        enabled: row.try_get("enabled")?,
        offset_ms: row.try_get("offset_ms")?,
        next_run_at: row.try_get("next_run_at")?,
        last_slot_at: row.try_get("last_slot_at")?,
        last_job_id,
        last_job_state: last_job_id.and_then(|id| states.get(&id).copied()),
        last_enqueued_at: row.try_get("last_enqueued_at")?,
        skipped_count: row.try_get("skipped_count")?,
        last_skipped_at: row.try_get("last_skipped_at")?,
        operator_changed_at: row.try_get("operator_changed_at")?,
        run_now_at: row.try_get("run_now_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn row_from_sqlite(
    row: &SqliteRow,
    states: &HashMap<JobId, JobState>,
) -> Result<ScheduleRow, ScheduleError> {
    let last_job_id = row.try_get::<Option<i64>, _>("last_job_id")?.map(JobId);
    let run_now_job_id = row.try_get::<Option<i64>, _>("run_now_job_id")?.map(JobId);
    Ok(ScheduleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        source: Source::parse(row.try_get("source")?)?,
        source_file: row.try_get("source_file")?,
        operator_enabled: row.try_get("operator_enabled")?,
        run_now_job_id,
        run_now_job_state: run_now_job_id.and_then(|id| states.get(&id).copied()),
        workspace_id: row.try_get("workspace_id")?,
        integration: row.try_get("integration")?,
        data_type: row.try_get("data_type")?,
        spec: row.try_get("spec")?,
        kind: row.try_get("kind")?,
        args: json_args(row.try_get("args")?)?,
        queue: row.try_get("queue")?,
        priority: row.try_get("priority")?,
        enabled: row.try_get("enabled")?,
        offset_ms: row.try_get("offset_ms")?,
        next_run_at: opt_time(row.try_get("next_run_at")?),
        last_slot_at: opt_time(row.try_get("last_slot_at")?),
        last_job_id,
        last_job_state: last_job_id.and_then(|id| states.get(&id).copied()),
        last_enqueued_at: opt_time(row.try_get("last_enqueued_at")?),
        skipped_count: row.try_get("skipped_count")?,
        last_skipped_at: opt_time(row.try_get("last_skipped_at")?),
        operator_changed_at: opt_time(row.try_get("operator_changed_at")?),
        run_now_at: opt_time(row.try_get("run_now_at")?),
        created_at: to_time(row.try_get("created_at")?),
        updated_at: to_time(row.try_get("updated_at")?),
    })
}
