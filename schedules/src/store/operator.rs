//! What an operator does to a schedule (dashboard, API, CLI): enable or disable it, and run
//! it now. Both dialects side by side.
//!
//! **Enable / disable** records the operator's choice (`operator_enabled`) beside the
//! effective `enabled`. A re-sync of the schedule files (every planner start, `hangar
//! schedules sync`) or an API owner's upsert that writes the same definition keeps the
//! choice; one that changes the schedule's definition (spec, kind, args, queue, priority,
//! enabled, workspace) ends it and the new definition applies. Enabling plans from the next
//! due time after now: the slots missed while disabled are not run (a disabled schedule has
//! no due time, so the planner's one catch-up run after downtime does not apply to it).
//!
//! **Run now** enqueues one job with the schedule's kind, args, queue, priority and
//! workspace, at once, outside the slots: its idempotency key is `hangar:run-now:<schedule
//! id>:<unix ms>`, which can never be a slot's `schedule:<name>:<slot>`, and the slot's
//! bookkeeping (`last_slot_at`, `last_job_id`) is left alone. One run at a time holds here
//! too: while the last slot's job or the last run-now job is still active it is refused, and
//! the planner skips a slot while a run-now job is active.

use chrono::{DateTime, Utc};
use hangar_workers::client::Conn;
use hangar_workers::db::Pool;
use hangar_workers::job::{JobId, NewJob};
use hangar_workers::routes::Routes;

use super::rows::{begin_immediate, json_args, last_job_states, ms};
use super::{ScheduleError, ScheduleRow, Schedules};
use crate::spec::Spec;

/// The idempotency key of a run started by an operator at `at`.
pub fn run_now_key(schedule_id: i64, at: DateTime<Utc>) -> String {
    format!("hangar:run-now:{schedule_id}:{}", at.timestamp_millis())
}

/// What "run now" selects: id, kind, args (JSON, or SQLite's text), queue, priority,
/// workspace, last slot's job, last run-now job.
type RunRow<Args> = (
    i64,
    String,
    Args,
    Option<String>,
    i16,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// What "run now" reads of a schedule.
struct RunSource {
    id: i64,
    kind: String,
    args: serde_json::Value,
    queue: Option<String>,
    priority: i16,
    workspace_id: Option<String>,
    last_job_id: Option<i64>,
    run_now_job_id: Option<i64>,
}

impl Schedules {
    /// An operator enables or disables schedule `name`. The choice holds across re-syncs
    /// until the schedule's owner changes its definition (see the module doc). Enabling
    /// plans it from its next due time after now (the slots it missed are not run);
    /// disabling clears its next run, so no planner enqueues it.
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ScheduleRow, ScheduleError> {
        let now = Utc::now();
        let next_after = |spec: &str, offset_ms: i64| -> Option<DateTime<Utc>> {
            if enabled {
                Spec::parse(spec)
                    .ok()
                    .and_then(|s| s.next_due_after(offset_ms, now))
            } else {
                None
            }
        };
        let found = match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row: Option<(String, i64, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "SELECT spec, offset_ms, enabled, next_run_at FROM hangar_schedules \
                     WHERE name = $1 FOR UPDATE",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((spec, offset_ms, was_enabled, next)) = row {
                    let next = if was_enabled == enabled {
                        next
                    } else {
                        next_after(&spec, offset_ms)
                    };
                    sqlx::query(
                        "UPDATE hangar_schedules SET enabled = $2, operator_enabled = $2, \
                             operator_changed_at = now(), next_run_at = $3 \
                         WHERE name = $1",
                    )
                    .bind(name)
                    .bind(enabled)
                    .bind(next)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    true
                } else {
                    false
                }
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let row: Option<(String, i64, bool, Option<i64>)> = sqlx::query_as(
                    "SELECT spec, offset_ms, enabled, next_run_at FROM hangar_schedules \
                     WHERE name = ?1",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((spec, offset_ms, was_enabled, next)) = row {
                    let next = if was_enabled == enabled {
                        next
                    } else {
                        next_after(&spec, offset_ms).map(ms)
                    };
                    sqlx::query(
                        "UPDATE hangar_schedules SET enabled = ?2, operator_enabled = ?2, \
                             operator_changed_at = ?4, next_run_at = ?3 \
                         WHERE name = ?1",
                    )
                    .bind(name)
                    .bind(enabled)
                    .bind(next)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    true
                } else {
                    false
                }
            }
        };
        if !found {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        self.get(name).await
    }

    /// An operator runs schedule `name` now: one job with the schedule's kind, args, queue
    /// (or its kind's pool's, by `routes`), priority and workspace, due at once, keyed
    /// outside the slots. Refused with [`ScheduleError::RunActive`] while a run of the
    /// schedule is still active. Returns the schedule (with `run_now_job_id`) and the job.
    pub async fn run_now(
        &self,
        name: &str,
        routes: &Routes,
    ) -> Result<(ScheduleRow, JobId), ScheduleError> {
        let now = Utc::now();
        let (job, queue) = match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row: Option<RunRow<serde_json::Value>> = sqlx::query_as(
                    "SELECT id, kind, args, queue, priority, workspace_id, last_job_id, run_now_job_id \
                     FROM hangar_schedules WHERE name = $1 FOR UPDATE",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, kind, args, queue, priority, workspace_id, last, run_now)) = row
                else {
                    return Err(ScheduleError::NotFound(name.to_owned()));
                };
                let source = RunSource {
                    id,
                    kind,
                    args,
                    queue,
                    priority,
                    workspace_id,
                    last_job_id: last,
                    run_now_job_id: run_now,
                };
                // A refusal rolls back at once: the row lock must not outlive the answer (a
                // CLI process exits before a dropped transaction's rollback is sent).
                let (job, queue) = match enqueue_run(&mut *tx, name, source, routes, now).await {
                    Ok(run) => run,
                    Err(error) => {
                        tx.rollback().await?;
                        return Err(error);
                    }
                };
                sqlx::query(
                    "UPDATE hangar_schedules SET run_now_job_id = $2, run_now_at = $3 WHERE name = $1",
                )
                .bind(name)
                .bind(job.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                (job, queue)
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let row: Option<RunRow<String>> = sqlx::query_as(
                    "SELECT id, kind, args, queue, priority, workspace_id, last_job_id, run_now_job_id \
                     FROM hangar_schedules WHERE name = ?1",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, kind, args, queue, priority, workspace_id, last, run_now)) = row
                else {
                    return Err(ScheduleError::NotFound(name.to_owned()));
                };
                let source = RunSource {
                    id,
                    kind,
                    args: json_args(&args)?,
                    queue,
                    priority,
                    workspace_id,
                    last_job_id: last,
                    run_now_job_id: run_now,
                };
                // A refusal rolls back at once: the row lock must not outlive the answer (a
                // CLI process exits before a dropped transaction's rollback is sent).
                let (job, queue) = match enqueue_run(&mut *tx, name, source, routes, now).await {
                    Ok(run) => run,
                    Err(error) => {
                        tx.rollback().await?;
                        return Err(error);
                    }
                };
                sqlx::query(
                    "UPDATE hangar_schedules SET run_now_job_id = ?2, run_now_at = ?3 WHERE name = ?1",
                )
                .bind(name)
                .bind(job.0)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                (job, queue)
            }
        };
        self.store.wakeups().wake(&queue);
        Ok((self.get(name).await?, job))
    }
}

/// Refuses the run while an earlier one is active, else inserts its job through the
/// engine's `Conn` inside the caller's transaction; the job and its queue.
async fn enqueue_run<C: Conn + ?Sized>(
    conn: &mut C,
    name: &str,
    source: RunSource,
    routes: &Routes,
    now: DateTime<Utc>,
) -> Result<(JobId, String), ScheduleError> {
    let states = last_job_states(conn, vec![source.last_job_id, source.run_now_job_id]).await?;
    if let Some((job, state)) = [source.last_job_id, source.run_now_job_id]
        .into_iter()
        .flatten()
        .filter_map(|id| states.get(&JobId(id)).map(|s| (JobId(id), *s)))
        .find(|(_, state)| !state.is_final())
    {
        return Err(ScheduleError::RunActive {
            name: name.to_owned(),
            job,
            state,
        });
    }
    // The engine's own job, like a slot's: never refused by the caller-facing checks.
    let route = routes.route_or_default(&source.kind, source.queue.as_deref());
    let job = NewJob {
        kind: source.kind,
        queue: route.queue.clone(),
        args: source.args,
        run_at: None,
        priority: source.priority,
        max_attempts: route.max_attempts,
        workspace_id: source.workspace_id,
        idempotency_key: Some(run_now_key(source.id, now)),
    };
    let enqueued = conn.insert_job(&job).await?;
    Ok((enqueued.id, route.queue))
}
