//! Schedules on SQLite. SQLite has one writer at a time, so the planner's batch takes the
//! write lock up front (`BEGIN IMMEDIATE`): two planner processes on one file plan one after
//! the other, never the same row twice. Batches travel as JSON arrays read with `json_each`;
//! times are integer Unix milliseconds from this process's clock, as in the job store.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hangar_workers::client::Conn;
use hangar_workers::job::{JobId, JobState};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::{
    BatchReport, Prepared, Prune, ScheduleError, ScheduleFilter, ScheduleRow, Source, SyncCounts,
    last_job_states, report,
};
use crate::batch::{self, DueRow, Planned, SpecCache};
use hangar_workers::routes::Routes;

const ROW_COLUMNS: &str = "s.id, s.name, s.source, s.workspace_id, s.integration, s.data_type, \
     s.spec, s.kind, s.args, s.queue, s.priority, s.enabled, s.offset_ms, s.next_run_at, \
     s.last_slot_at, s.last_job_id, s.last_enqueued_at, \
     s.skipped_count, s.last_skipped_at, s.created_at, s.updated_at";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_time)
}

async fn begin_immediate(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

pub(super) async fn write(
    pool: &SqlitePool,
    rows: &[Prepared],
    source: Source,
    prune: Prune,
) -> Result<SyncCounts, ScheduleError> {
    let names: Vec<&str> = rows.iter().map(|p| p.row.name.as_str()).collect();
    let names_json = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
    let now = Utc::now().timestamp_millis();
    let mut tx = begin_immediate(pool).await?;
    let taken: Option<(String, String)> = sqlx::query_as(
        "SELECT name, source FROM hangar_schedules \
         WHERE name IN (SELECT value FROM json_each(?1)) AND source <> ?2 \
         ORDER BY name LIMIT 1",
    )
    .bind(&names_json)
    .bind(source.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((name, owner)) = taken {
        return Err(ScheduleError::NameTaken {
            name,
            owner: Source::parse(&owner)?.owner(),
        });
    }
    let batch: Vec<serde_json::Value> = rows
        .iter()
        .map(|p| {
            serde_json::json!([
                p.row.name,
                p.row.workspace_id,
                p.row.integration,
                p.row.data_type,
                p.row.spec,
                p.row.kind,
                p.row.args.to_string(),
                p.row.queue,
                p.row.priority,
                i32::from(p.row.enabled),
                p.offset_ms,
                p.next_run_at.map(ms),
            ])
        })
        .collect();
    let upserted = if rows.is_empty() {
        0
    } else {
        sqlx::query(
            "INSERT INTO hangar_schedules (name, source, workspace_id, integration, data_type, \
                 spec, kind, args, queue, priority, enabled, offset_ms, next_run_at, \
                 created_at, updated_at) \
             SELECT value ->> 0, ?2, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                 value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
                 value ->> 10, value ->> 11, ?3, ?3 \
             FROM json_each(?1) WHERE true \
             ON CONFLICT (name) DO UPDATE SET \
                 workspace_id = excluded.workspace_id, integration = excluded.integration, \
                 data_type = excluded.data_type, kind = excluded.kind, args = excluded.args, \
                 queue = excluded.queue, priority = excluded.priority, \
                 enabled = excluded.enabled, \
                 next_run_at = CASE \
                     WHEN excluded.next_run_at IS NULL THEN NULL \
                     WHEN hangar_schedules.next_run_at IS NULL \
                       OR hangar_schedules.spec <> excluded.spec \
                       OR hangar_schedules.offset_ms <> excluded.offset_ms \
                     THEN excluded.next_run_at \
                     ELSE hangar_schedules.next_run_at END, \
                 spec = excluded.spec, offset_ms = excluded.offset_ms, updated_at = ?3 \
             WHERE hangar_schedules.source = excluded.source",
        )
        .bind(serde_json::Value::Array(batch).to_string())
        .bind(source.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    let (deleted, stale) = match prune {
        Prune::Delete => {
            let deleted = sqlx::query(
                "DELETE FROM hangar_schedules WHERE source = ?1 \
                   AND name NOT IN (SELECT value FROM json_each(?2))",
            )
            .bind(source.as_str())
            .bind(&names_json)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            (deleted, 0)
        }
        Prune::Keep => {
            let stale: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM hangar_schedules WHERE source = ?1 \
                   AND name NOT IN (SELECT value FROM json_each(?2))",
            )
            .bind(source.as_str())
            .bind(&names_json)
            .fetch_one(&mut *tx)
            .await?;
            (0, u64::try_from(stale).unwrap_or(0))
        }
    };
    tx.commit().await?;
    Ok(SyncCounts {
        upserted,
        deleted,
        stale,
    })
}

pub(super) async fn set_enabled(
    pool: &SqlitePool,
    name: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<bool, ScheduleError> {
    let mut tx = begin_immediate(pool).await?;
    let row: Option<(String, i64, bool)> =
        sqlx::query_as("SELECT spec, offset_ms, enabled FROM hangar_schedules WHERE name = ?1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((spec, offset_ms, was_enabled)) = row else {
        return Ok(false);
    };
    if was_enabled != enabled {
        let next = if enabled {
            crate::spec::Spec::parse(&spec)
                .ok()
                .and_then(|s| s.next_due_after(offset_ms, now))
        } else {
            None
        };
        sqlx::query(
            "UPDATE hangar_schedules SET enabled = ?2, next_run_at = ?3, updated_at = ?4 \
             WHERE name = ?1",
        )
        .bind(name)
        .bind(enabled)
        .bind(next.map(ms))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn set_spec(
    pool: &SqlitePool,
    name: &str,
    spec: &str,
    offset_ms: i64,
    next: Option<DateTime<Utc>>,
) -> Result<bool, ScheduleError> {
    let updated = sqlx::query(
        "UPDATE hangar_schedules SET \
             next_run_at = CASE WHEN NOT enabled THEN NULL \
                                WHEN spec = ?2 AND offset_ms = ?3 AND next_run_at IS NOT NULL \
                                THEN next_run_at ELSE ?4 END, \
             spec = ?2, offset_ms = ?3, updated_at = ?5 \
         WHERE name = ?1",
    )
    .bind(name)
    .bind(spec)
    .bind(offset_ms)
    .bind(next.map(ms))
    .bind(Utc::now().timestamp_millis())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() > 0)
}

pub(super) async fn delete(pool: &SqlitePool, name: &str) -> Result<bool, ScheduleError> {
    let deleted = sqlx::query("DELETE FROM hangar_schedules WHERE name = ?1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &ScheduleFilter,
    name: Option<&str>,
) -> Result<Vec<ScheduleRow>, ScheduleError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM hangar_schedules s \
         WHERE (?1 IS NULL OR s.name = ?1) AND (?2 IS NULL OR s.workspace_id = ?2) \
         ORDER BY s.name LIMIT ?3"
    )))
    .bind(name)
    .bind(&filter.workspace_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get("last_job_id"))
        .collect::<Result<Vec<Option<i64>>, _>>()?;
    let states = last_job_states(&mut *pool.acquire().await?, ids).await?;
    rows.iter()
        .map(|row| row_from_sqlite(row, &states))
        .collect()
}

fn json_args(text: &str) -> Result<serde_json::Value, ScheduleError> {
    serde_json::from_str(text).map_err(|e| ScheduleError::Corrupt(format!("args: {e}")))
}

fn row_from_sqlite(
    row: &SqliteRow,
    states: &HashMap<JobId, JobState>,
) -> Result<ScheduleRow, ScheduleError> {
    let last_job_id = row.try_get::<Option<i64>, _>("last_job_id")?.map(JobId);
    Ok(ScheduleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        source: Source::parse(row.try_get("source")?)?,
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
        created_at: to_time(row.try_get("created_at")?),
        updated_at: to_time(row.try_get("updated_at")?),
    })
}

pub(super) async fn plan_batch(
    pool: &SqlitePool,
    limit: i64,
    routes: &Routes,
    specs: &mut SpecCache,
    at: Option<DateTime<Utc>>,
) -> Result<BatchReport, ScheduleError> {
    let mut tx = begin_immediate(pool).await?;
    let now = at.unwrap_or_else(Utc::now);
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.spec, s.kind, s.args, s.queue, s.priority, s.workspace_id, \
             s.offset_ms, s.next_run_at, s.last_slot_at, s.last_job_id \
         FROM hangar_schedules s \
         WHERE s.enabled AND s.next_run_at <= ?1 \
         ORDER BY s.next_run_at LIMIT ?2",
    )
    .bind(ms(now))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(BatchReport::default());
    }
    let ids = rows
        .iter()
        .map(|r| r.try_get("last_job_id"))
        .collect::<Result<Vec<Option<i64>>, _>>()?;
    let states = last_job_states(&mut *tx, ids).await?;
    let due = rows
        .iter()
        .map(|row| {
            Ok(DueRow {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                spec: row.try_get("spec")?,
                kind: row.try_get("kind")?,
                args: json_args(row.try_get("args")?)?,
                queue: row.try_get("queue")?,
                priority: row.try_get("priority")?,
                workspace_id: row.try_get("workspace_id")?,
                offset_ms: row.try_get("offset_ms")?,
                next_run_at: to_time(row.try_get("next_run_at")?),
                last_slot_at: opt_time(row.try_get("last_slot_at")?),
                last_job_state: row
                    .try_get::<Option<i64>, _>("last_job_id")?
                    .and_then(|id| states.get(&JobId(id)))
                    .map(|state| state.as_str().to_owned()),
            })
        })
        .collect::<Result<Vec<_>, ScheduleError>>()?;
    let claimed = due.len();
    let mut planned = batch::plan(due, now, routes, specs);
    let enqueued = insert_jobs(&mut tx, &mut planned).await?;
    update_rows(&mut tx, &planned, now).await?;
    tx.commit().await?;
    Ok(report(planned, claimed, enqueued))
}

/// Inserts the planned jobs in one statement (the engine's own insert, inside this
/// transaction) and records each slot's job id, the existing job's when the idempotency key
/// was taken. Returns how many were inserted.
async fn insert_jobs(
    tx: &mut Transaction<'static, Sqlite>,
    planned: &mut Planned,
) -> Result<u64, ScheduleError> {
    if planned.jobs.is_empty() {
        return Ok(0);
    }
    let keyed = (**tx).insert_jobs_keyed(&planned.jobs).await?;
    planned.fill_job_ids(&keyed.ids);
    Ok(keyed.created)
}

/// Moves every claimed row on in one statement.
async fn update_rows(
    tx: &mut Transaction<'static, Sqlite>,
    planned: &Planned,
    now: DateTime<Utc>,
) -> Result<(), ScheduleError> {
    let batch: Vec<serde_json::Value> = planned
        .updates
        .iter()
        .map(|u| {
            serde_json::json!([
                u.id,
                u.next_run_at.map(ms),
                u.slot.map(ms),
                u.job_id,
                i32::from(u.skipped)
            ])
        })
        .collect();
    sqlx::query(
        "UPDATE hangar_schedules SET next_run_at = d.next_run_at, \
             last_slot_at = COALESCE(d.slot, hangar_schedules.last_slot_at), \
             last_job_id = CASE WHEN d.slot IS NULL THEN hangar_schedules.last_job_id \
                                ELSE d.job_id END, \
             last_enqueued_at = CASE WHEN d.slot IS NULL THEN hangar_schedules.last_enqueued_at \
                                     ELSE ?2 END, \
             skipped_count = hangar_schedules.skipped_count + d.skipped, \
             last_skipped_at = CASE WHEN d.skipped = 1 THEN ?2 \
                                    ELSE hangar_schedules.last_skipped_at END \
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS next_run_at, value ->> 2 AS slot, \
                      value ->> 3 AS job_id, value ->> 4 AS skipped \
               FROM json_each(?1)) AS d \
         WHERE hangar_schedules.id = d.id",
    )
    .bind(serde_json::Value::Array(batch).to_string())
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn next_due(
    pool: &SqlitePool,
) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), ScheduleError> {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT min(next_run_at) FROM hangar_schedules WHERE enabled")
            .fetch_one(pool)
            .await?;
    Ok((opt_time(next), Utc::now()))
}

pub(super) async fn count_planned(
    pool: &SqlitePool,
    name_like: &str,
) -> Result<(u64, u64), ScheduleError> {
    let (all, planned): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(last_slot_at) FROM hangar_schedules \
         WHERE name LIKE ?1 ESCAPE '\\'",
    )
    .bind(name_like)
    .fetch_one(pool)
    .await?;
    Ok((all as u64, planned as u64))
}

pub(super) async fn make_due_now(
    pool: &SqlitePool,
    name_like: &str,
    now: DateTime<Utc>,
) -> Result<u64, ScheduleError> {
    let done = sqlx::query(
        "UPDATE hangar_schedules \
         SET next_run_at = ?2, last_slot_at = NULL, last_job_id = NULL \
         WHERE name LIKE ?1 ESCAPE '\\'",
    )
    .bind(name_like)
    .bind(ms(now))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_prefixed(
    pool: &SqlitePool,
    name_like: &str,
) -> Result<u64, ScheduleError> {
    let done = sqlx::query("DELETE FROM hangar_schedules WHERE name LIKE ?1 ESCAPE '\\'")
        .bind(name_like)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
