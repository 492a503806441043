//! Schedules on PostgreSQL. The planner's batch claims due rows with `FOR UPDATE SKIP LOCKED`
//! (other planners take the next rows instead of waiting), inserts the batch's jobs with one
//! `UNNEST` statement (`ON CONFLICT DO NOTHING` on the idempotency key) and moves every claimed
//! row on with one more, all in one transaction; times are the database's `now()`
//! (a planner with a controlled clock, in tests, passes its own).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hangar_workers::client::Conn;
use hangar_workers::job::{JobId, JobState};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

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

pub(super) async fn write(
    pool: &PgPool,
    rows: &[Prepared],
    source: Source,
    prune: Prune,
) -> Result<SyncCounts, ScheduleError> {
    let names: Vec<&str> = rows.iter().map(|p| p.row.name.as_str()).collect();
    let mut tx = pool.begin().await?;
    let taken: Option<(String, String)> = sqlx::query_as(
        "SELECT name, source FROM hangar_schedules WHERE name = ANY($1) AND source <> $2 \
         ORDER BY name LIMIT 1",
    )
    .bind(&names)
    .bind(source.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((name, owner)) = taken {
        return Err(ScheduleError::NameTaken {
            name,
            owner: Source::parse(&owner)?.owner(),
        });
    }
    let upserted = if rows.is_empty() {
        0
    } else {
        let col = |f: fn(&Prepared) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO hangar_schedules (name, source, workspace_id, integration, data_type, \
                 spec, kind, args, queue, priority, enabled, offset_ms, next_run_at) \
             SELECT name, $2, workspace_id, integration, data_type, spec, kind, args, queue, \
                 priority, enabled, offset_ms, next_run_at \
             FROM UNNEST($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::jsonb[], $9::text[], $10::smallint[], $11::bool[], $12::bigint[], \
                 $13::timestamptz[]) \
                 AS t(name, workspace_id, integration, data_type, spec, kind, args, queue, \
                      priority, enabled, offset_ms, next_run_at) \
             ORDER BY name \
             ON CONFLICT (name) DO UPDATE SET \
                 workspace_id = EXCLUDED.workspace_id, integration = EXCLUDED.integration, \
                 data_type = EXCLUDED.data_type, kind = EXCLUDED.kind, args = EXCLUDED.args, \
                 queue = EXCLUDED.queue, priority = EXCLUDED.priority, \
                 enabled = EXCLUDED.enabled, \
                 next_run_at = CASE \
                     WHEN EXCLUDED.next_run_at IS NULL THEN NULL \
                     WHEN hangar_schedules.next_run_at IS NULL \
                       OR hangar_schedules.spec <> EXCLUDED.spec \
                       OR hangar_schedules.offset_ms <> EXCLUDED.offset_ms \
                     THEN EXCLUDED.next_run_at \
                     ELSE hangar_schedules.next_run_at END, \
                 spec = EXCLUDED.spec, offset_ms = EXCLUDED.offset_ms, updated_at = now() \
             WHERE hangar_schedules.source = EXCLUDED.source",
        )
        .bind(&names)
        .bind(source.as_str())
        .bind(col(|p| p.row.workspace_id.as_deref()))
        .bind(col(|p| p.row.integration.as_deref()))
        .bind(col(|p| p.row.data_type.as_deref()))
        .bind(rows.iter().map(|p| p.row.spec.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.row.kind.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| &p.row.args).collect::<Vec<_>>())
        .bind(col(|p| p.row.queue.as_deref()))
        .bind(rows.iter().map(|p| p.row.priority).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.row.enabled).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.offset_ms).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.next_run_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    let (deleted, stale) = match prune {
        Prune::Delete => {
            let deleted = sqlx::query(
                "DELETE FROM hangar_schedules WHERE source = $1 AND NOT (name = ANY($2))",
            )
            .bind(source.as_str())
            .bind(&names)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            (deleted, 0)
        }
        Prune::Keep => {
            let stale: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM hangar_schedules WHERE source = $1 AND NOT (name = ANY($2))",
            )
            .bind(source.as_str())
            .bind(&names)
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
    pool: &PgPool,
    name: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<bool, ScheduleError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, i64, bool)> = sqlx::query_as(
        "SELECT spec, offset_ms, enabled FROM hangar_schedules WHERE name = $1 FOR UPDATE",
    )
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
            "UPDATE hangar_schedules SET enabled = $2, next_run_at = $3, updated_at = now() \
             WHERE name = $1",
        )
        .bind(name)
        .bind(enabled)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn set_spec(
    pool: &PgPool,
    name: &str,
    spec: &str,
    offset_ms: i64,
    next: Option<DateTime<Utc>>,
) -> Result<bool, ScheduleError> {
    let updated = sqlx::query(
        "UPDATE hangar_schedules SET \
             next_run_at = CASE WHEN NOT enabled THEN NULL \
                                WHEN spec = $2 AND offset_ms = $3 AND next_run_at IS NOT NULL \
                                THEN next_run_at ELSE $4 END, \
             spec = $2, offset_ms = $3, updated_at = now() \
         WHERE name = $1",
    )
    .bind(name)
    .bind(spec)
    .bind(offset_ms)
    .bind(next)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() > 0)
}

pub(super) async fn delete(pool: &PgPool, name: &str) -> Result<bool, ScheduleError> {
    let deleted = sqlx::query("DELETE FROM hangar_schedules WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &ScheduleFilter,
    name: Option<&str>,
) -> Result<Vec<ScheduleRow>, ScheduleError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM hangar_schedules s \
         WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR s.workspace_id = $2) \
         ORDER BY s.name LIMIT $3"
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
    rows.iter().map(|row| row_from_pg(row, &states)).collect()
}

fn row_from_pg(
    row: &PgRow,
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
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) async fn plan_batch(
    pool: &PgPool,
    limit: i64,
    routes: &Routes,
    specs: &mut SpecCache,
    at: Option<DateTime<Utc>>,
) -> Result<BatchReport, ScheduleError> {
    let mut tx = pool.begin().await?;
    // SKIP LOCKED: rows another planner is planning are left to it. Its commit moves their
    // next_run_at past now, so they are not due any more when this planner looks again (a
    // row locked and re-checked after that commit fails the WHERE clause and is not returned).
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.spec, s.kind, s.args, s.queue, s.priority, s.workspace_id, \
             s.offset_ms, s.next_run_at, s.last_slot_at, s.last_job_id, \
             COALESCE($2, now()) AS db_now \
         FROM hangar_schedules s \
         WHERE s.enabled AND s.next_run_at <= COALESCE($2, now()) \
         ORDER BY s.next_run_at LIMIT $1 \
         FOR UPDATE OF s SKIP LOCKED",
    )
    .bind(limit)
    .bind(at)
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = rows.first() else {
        tx.commit().await?;
        return Ok(BatchReport::default());
    };
    let now: DateTime<Utc> = first.try_get("db_now")?;
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
                args: row.try_get("args")?,
                queue: row.try_get("queue")?,
                priority: row.try_get("priority")?,
                workspace_id: row.try_get("workspace_id")?,
                offset_ms: row.try_get("offset_ms")?,
                next_run_at: row.try_get("next_run_at")?,
                last_slot_at: row.try_get("last_slot_at")?,
                last_job_state: row
                    .try_get::<Option<i64>, _>("last_job_id")?
                    .and_then(|id| states.get(&JobId(id)))
                    .map(|state| state.as_str().to_owned()),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
    tx: &mut Transaction<'static, Postgres>,
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
    tx: &mut Transaction<'static, Postgres>,
    planned: &Planned,
    now: DateTime<Utc>,
) -> Result<(), ScheduleError> {
    let u = &planned.updates;
    sqlx::query(
        "UPDATE hangar_schedules s SET next_run_at = d.next_run_at, \
             last_slot_at = COALESCE(d.slot, s.last_slot_at), \
             last_job_id = CASE WHEN d.slot IS NULL THEN s.last_job_id ELSE d.job_id END, \
             last_enqueued_at = CASE WHEN d.slot IS NULL THEN s.last_enqueued_at ELSE $6 END, \
             skipped_count = s.skipped_count + CASE WHEN d.skipped THEN 1 ELSE 0 END, \
             last_skipped_at = CASE WHEN d.skipped THEN $6 ELSE s.last_skipped_at END \
         FROM UNNEST($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bool[]) \
             AS d(id, next_run_at, slot, job_id, skipped) \
         WHERE s.id = d.id",
    )
    .bind(u.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.next_run_at).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.slot).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.job_id).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.skipped).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn next_due(
    pool: &PgPool,
) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), ScheduleError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT min(next_run_at) FROM hangar_schedules WHERE enabled), now()",
    )
    .fetch_one(pool)
    .await?)
}

pub(super) async fn count_planned(
    pool: &PgPool,
    name_like: &str,
) -> Result<(u64, u64), ScheduleError> {
    let (all, planned): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(last_slot_at) FROM hangar_schedules \
         WHERE name LIKE $1 ESCAPE '\\'",
    )
    .bind(name_like)
    .fetch_one(pool)
    .await?;
    Ok((all as u64, planned as u64))
}

pub(super) async fn make_due_now(
    pool: &PgPool,
    name_like: &str,
    _now: DateTime<Utc>,
) -> Result<u64, ScheduleError> {
    let done = sqlx::query(
        "UPDATE hangar_schedules \
         SET next_run_at = now(), last_slot_at = NULL, last_job_id = NULL \
         WHERE name LIKE $1 ESCAPE '\\'",
    )
    .bind(name_like)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_prefixed(pool: &PgPool, name_like: &str) -> Result<u64, ScheduleError> {
    let done = sqlx::query("DELETE FROM hangar_schedules WHERE name LIKE $1 ESCAPE '\\'")
        .bind(name_like)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
