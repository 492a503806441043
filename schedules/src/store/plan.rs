//! The planner's batch: claim due rows, insert their jobs through the engine's [`Conn`]
//! (inside the same transaction) and move every claimed row on, in one transaction; and the
//! next due time the planner sleeps until. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`
//! (other planners take the next rows instead of waiting) and moves rows on with one
//! `UNNEST` statement, on the database's `now()`; SQLite has one writer at a time, so the
//! batch takes the write lock up front (`BEGIN IMMEDIATE`: two planner processes on one file
//! plan one after the other, never the same row twice) and moves rows on from one JSON array
//! read with `json_each`, on this process's clock. A planner with a controlled clock (tests)
//! passes its own now to both.

use chrono::{DateTime, Utc};
use hangar_workers::client::Conn;
use hangar_workers::db::Pool;
use std::collections::HashMap;

use hangar_workers::job::{JobId, JobState};
use hangar_workers::routes::Routes;
use sqlx::Row;

use super::rows::{
    begin_immediate, json_args, last_job_states, listed_job_ids, ms, opt_time, to_time,
};
use super::{BatchReport, ScheduleError, Schedules};
use crate::batch::{self, DueRow, Planned, SpecCache};

impl Schedules {
    /// One planner batch: claims up to `limit` due rows, enqueues their jobs and moves them
    /// on, in one transaction (see [`crate::planner`]). `at` is the planner's now when its
    /// clock is controlled (tests); `None` takes the database's (PostgreSQL) or the system's.
    pub async fn plan_batch(
        &self,
        limit: i64,
        routes: &Routes,
        specs: &mut SpecCache,
        at: Option<DateTime<Utc>>,
    ) -> Result<BatchReport, ScheduleError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // SKIP LOCKED: rows another planner is planning are left to it. Its commit
                // moves their next_run_at past now, so they are not due any more when this
                // planner looks again (a row locked and re-checked after that commit fails the
                // WHERE clause and is not returned).
                let rows = sqlx::query(
                    "SELECT s.id, s.name, s.spec, s.kind, s.args, s.queue, s.priority, s.workspace_id, \
                         s.offset_ms, s.next_run_at, s.last_slot_at, s.last_job_id, s.run_now_job_id, \
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
                let ids = listed_job_ids(&rows)?;
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
                            last_job_state: run_state(
                                &states,
                                row.try_get("last_job_id")?,
                                row.try_get("run_now_job_id")?,
                            ),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                let claimed = due.len();
                let mut planned = batch::plan(due, now, routes, specs);
                let enqueued = insert_jobs(&mut *tx, &mut planned).await?;
                // Moves every claimed row on in one statement, by primary key: `s.id = ANY($1)`
                // bounds the scan of the table to the batch's rows. Joined on `d.id` alone, the
                // planner chose a hash join over a full scan of the table at up to ~100 000
                // schedules, so each batch cost grew with the table, not with the batch
                // (BENCHMARKS.md, "Issue 14: many tenants"; tests/it/schedule_plans.rs).
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
                     WHERE s.id = d.id AND s.id = ANY($1)",
                )
                .bind(u.iter().map(|r| r.id).collect::<Vec<_>>())
                .bind(u.iter().map(|r| r.next_run_at).collect::<Vec<_>>())
                .bind(u.iter().map(|r| r.slot).collect::<Vec<_>>())
                .bind(u.iter().map(|r| r.job_id).collect::<Vec<_>>())
                .bind(u.iter().map(|r| r.skipped).collect::<Vec<_>>())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(report(planned, claimed, enqueued))
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let now = at.unwrap_or_else(Utc::now);
                let rows = sqlx::query(
                    "SELECT s.id, s.name, s.spec, s.kind, s.args, s.queue, s.priority, s.workspace_id, \
                         s.offset_ms, s.next_run_at, s.last_slot_at, s.last_job_id, s.run_now_job_id \
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
                let ids = listed_job_ids(&rows)?;
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
                            last_job_state: run_state(
                                &states,
                                row.try_get("last_job_id")?,
                                row.try_get("run_now_job_id")?,
                            ),
                        })
                    })
                    .collect::<Result<Vec<_>, ScheduleError>>()?;
                let claimed = due.len();
                let mut planned = batch::plan(due, now, routes, specs);
                let enqueued = insert_jobs(&mut *tx, &mut planned).await?;
                // Moves every claimed row on in one statement.
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
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(report(planned, claimed, enqueued))
            }
        }
    }

    /// The earliest due time of an enabled schedule, and the database's now.
    pub async fn next_due(&self) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), ScheduleError> {
        match self.db.pool() {
            Pool::Postgres(pool) => Ok(sqlx::query_as(
                "SELECT (SELECT min(next_run_at) FROM hangar_schedules WHERE enabled), now()",
            )
            .fetch_one(pool)
            .await?),
            Pool::Sqlite(pool) => {
                let next: Option<i64> = sqlx::query_scalar(
                    "SELECT min(next_run_at) FROM hangar_schedules WHERE enabled",
                )
                .fetch_one(pool)
                .await?;
                Ok((opt_time(next), Utc::now()))
            }
        }
    }
}

/// The state the planner's one-run-at-a-time rule looks at: an operator's run-now job while
/// it is active, else the last slot's job.
fn run_state(
    states: &HashMap<JobId, JobState>,
    last_job_id: Option<i64>,
    run_now_job_id: Option<i64>,
) -> Option<String> {
    let state = |id: Option<i64>| id.and_then(|id| states.get(&JobId(id)).copied());
    match state(run_now_job_id) {
        Some(active) if !active.is_final() => Some(active.as_str().to_owned()),
        _ => state(last_job_id).map(|s| s.as_str().to_owned()),
    }
}

/// Inserts the planned jobs in one statement (the engine's own insert, inside the batch's
/// transaction) and records each slot's job id, the existing job's when the idempotency key
/// was taken. Returns how many were inserted.
async fn insert_jobs<C: Conn + ?Sized>(
    conn: &mut C,
    planned: &mut Planned,
) -> Result<u64, ScheduleError> {
    if planned.jobs.is_empty() {
        return Ok(0);
    }
    let keyed = conn.insert_jobs_keyed(&planned.jobs).await?;
    planned.fill_job_ids(&keyed.ids);
    Ok(keyed.created)
}

/// The report of a planned batch once its jobs are written.
fn report(planned: Planned, claimed: usize, enqueued: u64) -> BatchReport {
    let with_slot = planned.jobs.len() as u64;
    BatchReport {
        claimed,
        enqueued,
        deduplicated: with_slot.saturating_sub(enqueued),
        queues: planned.queues(),
        skipped: planned.skipped,
        lateness: planned.lateness,
    }
}
