//! Operators' actions on jobs, one job or many (issue 15): each chunk of at most
//! [`CHUNK`] jobs is changed in one transaction that locks its rows, changes those in a state
//! the action applies to, records one `hangar_job_actions` row per changed job (who, from
//! where, the bulk batch) and counts the rest by the state that made them skipped. A filter
//! is walked by id, newest first, [`CHUNK`] ids at a time, so a bulk action over 10⁵ jobs
//! never holds more than one chunk of ids in memory, and a job changed by the action that
//! still matches the filter is not visited twice. Also the actions a job's page shows.

use std::collections::BTreeSet;

use chrono::Utc;
use sqlx::Row;

use super::cancel::CANCELLED;
use super::jobs::{PG_FILTER, SQLITE_FILTER, bind_pg, bind_sqlite};
use super::rows::{parse_state, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{JobFilter, JobId, JobState};
use crate::job_action::{ActionSource, Actor, BulkOutcome, BulkTarget, JobAction, JobActionRecord};

/// Jobs changed per transaction.
pub const CHUNK: usize = 1_000;

/// What one chunk did: the jobs found, by state before the action and whether it changed
/// them, and the queues of the changed ones (to wake their pools).
#[derive(Debug, Default)]
pub(super) struct ChunkResult {
    pub(super) counts: Vec<(JobState, bool, u64)>,
    pub(super) queues: BTreeSet<String>,
}

/// The SQL pieces that depend on the actions (all static text, never input).
struct Plan {
    /// The states changed, quoted, comma-separated.
    states: String,
    /// `CASE state WHEN 'failed' THEN 'retry' … END`: the action recorded per state.
    action_case: String,
    /// The states whose current attempt is written to the history before the change
    /// (a running job's interrupted attempt; a completed job's success), quoted.
    history_states: Option<String>,
    /// Cancel rather than queue again.
    cancel: bool,
}

impl Plan {
    fn new(actions: &[JobAction]) -> Plan {
        let mut states = Vec::new();
        let mut case = String::from("CASE state");
        for action in actions {
            for state in action.applies_to() {
                states.push(format!("'{}'", state.as_str()));
                case.push_str(&format!(
                    " WHEN '{}' THEN '{}'",
                    state.as_str(),
                    action.as_str()
                ));
            }
        }
        case.push_str(" END");
        let cancel = actions.contains(&JobAction::Cancel);
        let mut history = Vec::new();
        if cancel {
            history.push("'running'");
        }
        if actions.contains(&JobAction::RunAgain) {
            history.push("'completed'");
        }
        Plan {
            states: states.join(", "),
            action_case: case,
            history_states: (!history.is_empty()).then(|| history.join(", ")),
            cancel,
        }
    }
}

impl Store {
    /// Applies `actions` (each to the states it applies to) to the jobs `ids` of
    /// `workspace` (any workspace when `None`) in one transaction, recording each change
    /// for `actor` under `batch`. Ids of other workspaces count as not found.
    pub(super) async fn act_on_chunk(
        &self,
        actions: &[JobAction],
        ids: &[i64],
        workspace: Option<&str>,
        actor: &Actor,
        batch: Option<&str>,
    ) -> Result<ChunkResult, StoreError> {
        let plan = Plan::new(actions);
        let mut result = ChunkResult::default();
        match self.pool() {
            Pool::Postgres(pool) => {
                let history = plan
                    .history_states
                    .as_deref()
                    .map_or(String::new(), |states| {
                        format!(
                            "history AS (INSERT INTO hangar_job_attempts (job_id, attempt, \
                             started_at, finished_at, error, decision, worker) \
                         SELECT id, attempt, attempted_at, \
                             CASE WHEN state = 'running' THEN now() \
                                  ELSE COALESCE(finalized_at, now()) END, \
                             CASE WHEN state = 'running' THEN $5 END, \
                             CASE WHEN state = 'running' THEN $5 ELSE 'completed' END, \
                             leased_by \
                         FROM chunk WHERE attempted_at IS NOT NULL AND state IN ({states}) \
                         ON CONFLICT (job_id, attempt) DO NOTHING), "
                        )
                    });
                let set = if plan.cancel {
                    "state = 'cancelled', finalized_at = now(), updated_at = now(), \
                     last_error = COALESCE(j.last_error, $5), \
                     lease_token = NULL, lease_expires_at = NULL"
                } else {
                    "state = 'available', run_at = now(), updated_at = now(), \
                     finalized_at = NULL, budget_from_attempt = j.attempt, \
                     budget_failures = 0, snoozes = 0, timeout_failures = 0, \
                     server_failures = 0, internal_failures = 0, auth_failures = 0"
                };
                // The rows are locked first (ordered by id, as every chunk is, so two bulk
                // actions cannot deadlock), so a completion or failure of a running job
                // comes wholly before or after this change.
                let sql = format!(
                    "WITH chunk AS (SELECT id, state, queue, attempt, attempted_at, \
                         finalized_at, leased_by FROM hangar_jobs \
                         WHERE id = ANY($1) AND ($2::text IS NULL OR workspace_id = $2) \
                         ORDER BY id FOR UPDATE), \
                     {history}\
                     changed AS (UPDATE hangar_jobs j SET {set} FROM chunk c \
                         WHERE j.id = c.id AND c.state IN ({states}) \
                         RETURNING j.id, c.state), \
                     recorded AS (INSERT INTO hangar_job_actions \
                         (job_id, action, actor, source, batch_id) \
                         SELECT id, {case}, $3, $4, $6 FROM changed) \
                     SELECT c.state, c.queue, ch.id IS NOT NULL AS changed, count(*) AS n \
                     FROM chunk c LEFT JOIN changed ch ON ch.id = c.id GROUP BY 1, 2, 3",
                    states = plan.states,
                    case = plan.action_case,
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ids)
                    .bind(workspace)
                    .bind(&actor.name)
                    .bind(actor.source.as_str())
                    .bind(CANCELLED)
                    .bind(batch)
                    .fetch_all(pool)
                    .await?;
                for row in rows {
                    let state = parse_state("hangar_jobs", row.try_get("state")?)?;
                    let changed: bool = row.try_get("changed")?;
                    let n: i64 = row.try_get("n")?;
                    result.counts.push((state, changed, n as u64));
                    if changed {
                        result.queues.insert(row.try_get("queue")?);
                    }
                }
            }
            Pool::Sqlite(pool) => {
                let now = Utc::now().timestamp_millis();
                let ids = serde_json::Value::from(ids.to_vec()).to_string();
                let scope = "id IN (SELECT value FROM json_each(?1)) \
                             AND (?2 IS NULL OR workspace_id = ?2)";
                let mut tx = pool.begin().await?;
                // The record is written first, so the transaction holds the write lock
                // from its first statement on: what it counts next cannot change under it.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO hangar_job_actions (job_id, action, actor, source, batch_id, at) \
                     SELECT id, {case}, ?3, ?4, ?5, ?6 FROM hangar_jobs \
                     WHERE {scope} AND state IN ({states}) ORDER BY id",
                    case = plan.action_case,
                    states = plan.states,
                )))
                .bind(&ids)
                .bind(workspace)
                .bind(&actor.name)
                .bind(actor.source.as_str())
                .bind(batch)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if let Some(states) = &plan.history_states {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO hangar_job_attempts (job_id, attempt, started_at, \
                             finished_at, error, decision, worker) \
                         SELECT id, attempt, attempted_at, \
                             CASE WHEN state = 'running' THEN ?3 ELSE COALESCE(finalized_at, ?3) END, \
                             CASE WHEN state = 'running' THEN ?4 END, \
                             CASE WHEN state = 'running' THEN ?4 ELSE 'completed' END, leased_by \
                         FROM hangar_jobs \
                         WHERE {scope} AND attempted_at IS NOT NULL AND state IN ({states}) \
                         ON CONFLICT (job_id, attempt) DO NOTHING"
                    )))
                    .bind(&ids)
                    .bind(workspace)
                    .bind(now)
                    .bind(CANCELLED)
                    .execute(&mut *tx)
                    .await?;
                }
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT state, queue, state IN ({states}) AS changed, count(*) AS n \
                     FROM hangar_jobs WHERE {scope} GROUP BY 1, 2, 3",
                    states = plan.states,
                )))
                .bind(&ids)
                .bind(workspace)
                .fetch_all(&mut *tx)
                .await?;
                let set = if plan.cancel {
                    "state = 'cancelled', finalized_at = ?3, updated_at = ?3, \
                     last_error = COALESCE(last_error, ?4), \
                     lease_token = NULL, lease_expires_at = NULL"
                } else {
                    "state = 'available', run_at = ?3, updated_at = ?3, \
                     finalized_at = NULL, budget_from_attempt = attempt, \
                     budget_failures = 0, snoozes = 0, timeout_failures = 0, \
                     server_failures = 0, internal_failures = 0, auth_failures = 0"
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE hangar_jobs SET {set} WHERE {scope} AND state IN ({states})",
                    states = plan.states,
                )))
                .bind(&ids)
                .bind(workspace)
                .bind(now)
                .bind(CANCELLED)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                for row in rows {
                    let state = parse_state("hangar_jobs", row.try_get("state")?)?;
                    let changed: bool = row.try_get("changed")?;
                    let n: i64 = row.try_get("n")?;
                    result.counts.push((state, changed, n as u64));
                    if changed {
                        result.queues.insert(row.try_get("queue")?);
                    }
                }
            }
        }
        if !plan.cancel {
            for queue in &result.queues {
                self.wakeups().wake(queue);
            }
        }
        Ok(result)
    }

    /// Applies `action` to every job of `target` (of `workspace` only, when given), chunk
    /// by chunk, recording each change for `actor` under one batch id; or, with `dry_run`,
    /// counts what it would do and changes nothing.
    pub async fn bulk_action(
        &self,
        action: JobAction,
        target: &BulkTarget,
        workspace: Option<&str>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<BulkOutcome, StoreError> {
        let mut outcome = BulkOutcome {
            dry_run,
            ..BulkOutcome::default()
        };
        let batch = format!("b{:016x}", fastrand::u64(..));
        let applies = action.applies_to();
        match target {
            BulkTarget::Ids(ids) => {
                let mut ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
                ids.sort_unstable();
                ids.dedup();
                for chunk in ids.chunks(CHUNK) {
                    let counts = if dry_run {
                        let filter = JobFilter {
                            workspace_id: workspace.map(str::to_owned),
                            ..JobFilter::default()
                        };
                        self.count_by_state(&filter, Some(chunk))
                            .await?
                            .into_iter()
                            .map(|(state, n)| (state, applies.contains(&state), n))
                            .collect()
                    } else {
                        self.act_on_chunk(&[action], chunk, workspace, actor, Some(&batch))
                            .await?
                            .counts
                    };
                    let found: u64 = counts.iter().map(|(_, _, n)| n).sum();
                    for (state, changed, n) in counts {
                        outcome.add(state, changed, n);
                    }
                    outcome.add_not_found(chunk.len() as u64 - found);
                }
            }
            BulkTarget::Filter(filter) => {
                let mut filter = filter.clone();
                if let Some(own) = workspace {
                    filter.workspace_id = Some(own.to_owned());
                }
                filter.before_id = None;
                if dry_run {
                    for (state, n) in self.count_by_state(&filter, None).await? {
                        outcome.add(state, applies.contains(&state), n);
                    }
                } else {
                    loop {
                        let ids = self.job_ids(&filter, CHUNK).await?;
                        let Some(&last) = ids.last() else { break };
                        filter.before_id = Some(JobId(last));
                        let result = self
                            .act_on_chunk(
                                &[action],
                                &ids,
                                filter.workspace_id.as_deref(),
                                actor,
                                Some(&batch),
                            )
                            .await?;
                        // A job deleted between the two reads is simply no longer counted.
                        for (state, changed, n) in result.counts {
                            outcome.add(state, changed, n);
                        }
                        if ids.len() < CHUNK {
                            break;
                        }
                    }
                }
            }
        }
        if !dry_run && outcome.changed > 0 {
            outcome.batch_id = Some(batch);
        }
        Ok(outcome)
    }

    /// How many jobs `filter` matches, by state (its cursor and limit ignored): one
    /// aggregate, for the counts a bulk action's buttons show.
    pub async fn job_counts_by_state(
        &self,
        filter: &JobFilter,
    ) -> Result<Vec<(JobState, u64)>, StoreError> {
        let mut filter = filter.clone();
        filter.before_id = None;
        self.count_by_state(&filter, None).await
    }

    /// The ids of the next `limit` jobs `filter` matches, newest first (after
    /// `filter.before_id`).
    async fn job_ids(&self, filter: &JobFilter, limit: usize) -> Result<Vec<i64>, StoreError> {
        let limit = limit as i64;
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT id FROM hangar_jobs WHERE {PG_FILTER} ORDER BY id DESC LIMIT $10"
                );
                bind_pg(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT id FROM hangar_jobs WHERE {SQLITE_FILTER} ORDER BY id DESC LIMIT ?10"
                );
                bind_sqlite(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?
            }
        })
    }

    /// How many jobs `filter` (and, when given, `ids`) matches, by state: a dry run, one
    /// aggregate however many jobs match.
    async fn count_by_state(
        &self,
        filter: &JobFilter,
        ids: Option<&[i64]>,
    ) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT state, count(*) FROM hangar_jobs WHERE {PG_FILTER} \
                     AND ($10::bigint[] IS NULL OR id = ANY($10)) GROUP BY state"
                );
                let rows = bind_pg(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(ids)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT state, count(*) FROM hangar_jobs WHERE {SQLITE_FILTER} \
                     AND (?10 IS NULL OR id IN (SELECT value FROM json_each(?10))) \
                     GROUP BY state"
                );
                let rows = bind_sqlite(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(ids.map(|ids| serde_json::Value::from(ids.to_vec()).to_string()))
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?
            }
        };
        rows.into_iter()
            .map(|(state, n)| Ok((parse_state("hangar_jobs", &state)?, n as u64)))
            .collect()
    }

    /// What operators did to job `id`, oldest first.
    pub async fn job_actions(&self, id: JobId) -> Result<Vec<JobActionRecord>, StoreError> {
        let sql = "SELECT action, actor, source, batch_id, at FROM hangar_job_actions \
                   WHERE job_id = $1 ORDER BY id";
        let rows = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id.0)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get::<String, _>(0)?,
                        r.try_get(1)?,
                        r.try_get::<String, _>(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id.0)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get::<String, _>(0)?,
                        r.try_get(1)?,
                        r.try_get::<String, _>(2)?,
                        r.try_get(3)?,
                        to_time(r.try_get(4)?),
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        };
        rows.into_iter()
            .map(|(action, actor, source, batch_id, at)| {
                let corrupt = |what: &str| StoreError::Corrupt {
                    table: "hangar_job_actions",
                    detail: format!("unknown {what}"),
                };
                Ok(JobActionRecord {
                    action: JobAction::parse(&action).ok_or_else(|| corrupt("action"))?,
                    actor,
                    source: ActionSource::parse(&source).ok_or_else(|| corrupt("source"))?,
                    batch_id,
                    at,
                })
            })
            .collect()
    }
}
