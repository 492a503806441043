//! The SQLite backend: the embedded default, one file, no server. SQLite has one writer at a
//! time, so a claim is a plain `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`; batches
//! of completions and heartbeats travel as one JSON array read with `json_each`. Times are
//! integer Unix milliseconds taken from this process's clock. Other processes on the same
//! file are noticed by polling; enqueues made through this process wake its pools at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    ExpiredLease, FailureRecord, Keyed, QueueStats, QueueThroughput, StoreError, Wakeups,
    budget_counts, fold_queue_stats, job_incident_key, millis, parse_class, parse_state,
    spent_from_row, synthesize_success,
};
use crate::ingress::EventEnvelope;
use crate::job::{AttemptRecord, ClaimedJob, Enqueued, Job, JobFilter, JobId, JobState, NewJob};

/// SQLite job store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Durable writes (`synchronous=FULL`): enqueues, completions, failures, operator actions.
    pool: SqlitePool,
    /// Claims, heartbeats and hand-backs with `synchronous=NORMAL` (no fsync at commit; the
    /// next durable commit flushes them). Losing one in a power cut only means a job runs
    /// again, as after an expired lease.
    lease_pool: SqlitePool,
    /// The durable pool, lent to other crates for their own tables.
    pub(super) database: crate::db::Database,
    pub(super) wakeups: Arc<Wakeups>,
}

const JOB_COLUMNS: &str = "id, kind, queue, state, attempt, max_attempts, budget_from_attempt, \
     priority, run_at, created_at, updated_at, workspace_id, idempotency_key, args, last_error, attempted_at, \
     finalized_at";

const CLAIMED_COLUMNS: &str = "id, kind, args, attempt, max_attempts, budget_failures, snoozes, \
     timeout_failures, server_failures, internal_failures, auth_failures, budget_from_attempt, \
     priority, workspace_id, lease_token, created_at, run_at, attempted_at";

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_time)
}

impl SqliteStore {
    /// Opens the database file of `url` (creating it when missing, if `create`) in WAL mode
    /// with `synchronous=FULL`, so a committed job survives a power cut.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        create: bool,
    ) -> Result<SqliteStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_error)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let file = options.get_filename();
        if !create && file != std::path::Path::new(":memory:") && !file.exists() {
            return Err(StoreError::NoDatabase(file.display().to_string()));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.clamp(1, 8))
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let lease_pool = SqlitePoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(connect_error)?;
        Ok(SqliteStore {
            database: crate::db::Database::from_pool(crate::db::Pool::Sqlite(pool.clone())),
            pool,
            lease_pool,
            wakeups: Arc::default(),
        })
    }

    /// The underlying pool, for callers that enqueue inside their own transaction.
    /// Closes both connection pools.
    pub async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        enqueue(&mut *self.pool.acquire().await?, job).await
    }

    pub(super) async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        enqueue_many(&mut *self.pool.acquire().await?, jobs).await
    }

    pub(super) async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: i64,
        lease: Duration,
        token: i64,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE hangar_jobs SET state = 'running', attempt = attempt + 1, lease_token = ?3, \
                 leased_by = ?4, lease_expires_at = ?5 + ?6, attempted_at = ?5, updated_at = ?5 \
             WHERE id IN ( \
                 SELECT id FROM hangar_jobs \
                 WHERE queue = ?1 AND state IN ('available', 'scheduled', 'retryable') \
                   AND run_at <= ?5 \
                 ORDER BY priority, run_at, id LIMIT ?2) \
             RETURNING {CLAIMED_COLUMNS}"
        )))
        .bind(queue)
        .bind(limit)
        .bind(token)
        .bind(worker)
        .bind(now)
        .bind(millis(lease))
        .fetch_all(&self.lease_pool)
        .await?;
        rows.iter().map(claimed_from_row).collect()
    }

    pub(super) async fn record_failure(&self, f: &FailureRecord) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE hangar_jobs SET state = ?3, run_at = ?4 + ?5, \
                 last_error = ?6, last_error_class = ?7, \
                 budget_failures = ?8, snoozes = ?9, timeout_failures = ?10, \
                 server_failures = ?11, internal_failures = ?12, auth_failures = ?13, \
                 finalized_at = CASE WHEN ?3 = 'failed' THEN ?4 END, updated_at = ?4, \
                 lease_token = NULL, lease_expires_at = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(f.id.0)
        .bind(f.lease_token)
        .bind(f.next_state.as_str())
        .bind(now)
        .bind(millis(f.delay))
        .bind(&f.error)
        .bind(f.class.as_str());
        let updated = budget_counts(&f.spent)
            .into_iter()
            .fold(updated, |query, count| query.bind(count))
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO hangar_job_attempts (job_id, attempt, started_at, finished_at, \
                 error_class, error, http_status, next_delay_ms, decision, worker, \
                 budget_failure, class_failure) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (job_id, attempt) DO NOTHING",
        )
        .bind(f.id.0)
        .bind(f.attempt)
        .bind(f.started_at.timestamp_millis())
        .bind(f.finished_at.timestamp_millis())
        .bind(f.class.as_str())
        .bind(&f.error)
        .bind(f.http_status)
        .bind((f.next_state != JobState::Failed).then(|| millis(f.delay)))
        .bind(&f.decision)
        .bind(&f.worker)
        .bind(f.budget_failure)
        .bind(f.class_failure)
        .execute(&mut *tx)
        .await?;
        if let Some(alert) = &f.alert {
            sqlx::query(
                "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, job_id, \
                     incident_key, created_at, last_seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                 ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO UPDATE SET \
                     occurrences = occurrences + 1, last_seen_at = excluded.last_seen_at, \
                     kind = excluded.kind, message = excluded.message, \
                     severity = CASE WHEN severity = 'critical' THEN 'critical' \
                                     ELSE excluded.severity END",
            )
            .bind(&f.workspace_id)
            .bind(alert.kind.as_str())
            .bind(alert.severity.as_str())
            .bind(&alert.message)
            .bind(f.id.0)
            .bind(job_incident_key(f.id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn heartbeat(
        &self,
        leases: &[(JobId, i64)],
        lease: Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        let batch: Vec<[i64; 2]> = leases.iter().map(|(id, t)| [id.0, *t]).collect();
        let held: Vec<i64> = sqlx::query_scalar(
            "UPDATE hangar_jobs SET lease_expires_at = ?2 \
             WHERE state = 'running' AND (id, lease_token) IN \
                 (SELECT value ->> 0, value ->> 1 FROM json_each(?1)) \
             RETURNING id",
        )
        .bind(serde_json::to_string(&batch).unwrap_or_default())
        .bind(now_ms().saturating_add(millis(lease)))
        .fetch_all(&self.lease_pool)
        .await?;
        Ok(held.into_iter().map(JobId).collect())
    }

    pub(super) async fn release(&self, leases: &[(JobId, i64)]) -> Result<u64, StoreError> {
        let batch: Vec<[i64; 2]> = leases.iter().map(|(id, t)| [id.0, *t]).collect();
        let result = sqlx::query(
            "UPDATE hangar_jobs SET state = 'available', run_at = ?2, updated_at = ?2, \
                 attempt = attempt - 1, lease_token = NULL, lease_expires_at = NULL \
             WHERE state = 'running' AND (id, lease_token) IN \
                 (SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
        )
        .bind(serde_json::to_string(&batch).unwrap_or_default())
        .bind(now_ms())
        .execute(&self.lease_pool)
        .await?;
        Ok(result.rows_affected())
    }

    pub(super) async fn expired_leases(
        &self,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<ExpiredLease>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLAIMED_COLUMNS}, leased_by FROM hangar_jobs \
             WHERE state = 'running' AND lease_expires_at < ?1 AND queue = ?3 \
             ORDER BY lease_expires_at LIMIT ?2"
        )))
        .bind(now_ms())
        .bind(limit)
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredLease {
                    job: claimed_from_row(row)?,
                    leased_by: row.try_get("leased_by")?,
                })
            })
            .collect()
    }

    pub(super) async fn next_run_at(
        &self,
        queue: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT min(run_at) FROM hangar_jobs \
             WHERE queue = ?1 AND state IN ('available', 'scheduled', 'retryable')",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok(opt_time(ms))
    }

    pub(super) async fn job(&self, id: JobId) -> Result<Job, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM hangar_jobs WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::JobNotFound(id))?;
        let mut job = job_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT attempt, started_at, finished_at, error_class, error, http_status, \
                 next_delay_ms, decision \
             FROM hangar_job_attempts WHERE job_id = ?1 ORDER BY attempt",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        job.attempts = attempts
            .iter()
            .map(|row| {
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
            })
            .collect::<Result<_, StoreError>>()?;
        synthesize_success(
            &mut job,
            opt_time(row.try_get("attempted_at")?),
            opt_time(row.try_get("finalized_at")?),
        );
        Ok(job)
    }

    pub(super) async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM hangar_jobs \
             WHERE (?1 = '[]' OR state IN (SELECT value FROM json_each(?1))) \
               AND (?2 IS NULL OR kind = ?2) \
               AND (?3 IS NULL OR workspace_id = ?3) AND (?5 IS NULL OR queue = ?5) \
             ORDER BY id DESC LIMIT ?4"
        )))
        .bind(
            serde_json::Value::from(filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .to_string(),
        )
        .bind(&filter.kind)
        .bind(&filter.workspace_id)
        .bind(filter.limit)
        .bind(&filter.queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    pub(super) async fn retry_job(&self, id: JobId) -> Result<u64, StoreError> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE hangar_jobs SET state = 'available', run_at = ?2, updated_at = ?2, \
                 finalized_at = NULL, budget_from_attempt = attempt, \
                 budget_failures = 0, snoozes = 0, timeout_failures = 0, server_failures = 0, \
                 internal_failures = 0, auth_failures = 0 \
             WHERE id = ?1 AND state IN ('scheduled', 'retryable', 'completed', 'failed', 'cancelled')",
        )
        .bind(id.0)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected())
    }

    pub(super) async fn delete_queue(&self, queue: &str) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM hangar_jobs WHERE queue = ?1")
            .bind(queue)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    pub(super) async fn count_in_queue(
        &self,
        queue: &str,
        state: JobState,
        equal: bool,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM hangar_jobs WHERE queue = ?1 AND (state = ?2) = ?3",
        )
        .bind(queue)
        .bind(state.as_str())
        .bind(equal)
        .fetch_one(&self.pool)
        .await?)
    }

    pub(super) async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, count(*) AS n, \
                 COALESCE(max(CASE WHEN state IN ('available', 'scheduled', 'retryable') \
                                   AND run_at <= ?1 THEN ?1 - run_at END), 0) AS lag_ms \
             FROM hangar_jobs \
             WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'failed') \
             GROUP BY queue, state ORDER BY queue",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state = parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?;
                let lag = row.try_get::<i64, _>("lag_ms")? as f64 / 1000.0;
                Ok((row.try_get("queue")?, state, row.try_get("n")?, lag))
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(fold_queue_stats)
    }

    pub(super) async fn queue_throughput(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<QueueThroughput>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, \
                 sum(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed, \
                 sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM hangar_jobs \
             WHERE finalized_at >= ?1 AND state IN ('completed', 'failed') \
             GROUP BY queue ORDER BY queue",
        )
        .bind(since.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueThroughput {
                    queue: row.try_get("queue")?,
                    completed: row.try_get("completed")?,
                    failed: row.try_get("failed")?,
                })
            })
            .collect()
    }
}

fn json_args(raw: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        table: "hangar_jobs",
        detail: format!("args is not JSON: {e}"),
    })
}

fn claimed_from_row(row: &SqliteRow) -> Result<ClaimedJob, StoreError> {
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

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
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

// Writes that also run inside a caller's transaction (Client, ingest).

pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    job: &NewJob,
) -> Result<Enqueued, StoreError> {
    let now = now_ms();
    let run_at = job.run_at.map_or(now, |t| t.timestamp_millis());
    let state = if run_at <= now {
        JobState::Available
    } else {
        JobState::Scheduled
    };
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10) \
         ON CONFLICT (COALESCE(workspace_id, ''), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.queue)
    .bind(job.args.to_string())
    .bind(state.as_str())
    .bind(job.max_attempts)
    .bind(job.priority)
    .bind(run_at)
    .bind(now)
    .bind(&job.workspace_id)
    .bind(&job.idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok(Enqueued {
            id: JobId(id),
            created: true,
        });
    }
    // The caller's own job: the key is taken in this workspace (and kind), never another's.
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM hangar_jobs \
         WHERE COALESCE(workspace_id, '') = COALESCE(?1, '') AND kind = ?2 AND idempotency_key = ?3",
    )
    .bind(&job.workspace_id)
    .bind(&job.kind)
    .bind(&job.idempotency_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Enqueued {
        id: JobId(id),
        created: false,
    })
}

macro_rules! insert_many_sql {
    () => {
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
             value ->> 5, value ->> 6, ?2, ?2, value ->> 7, value ->> 8 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (COALESCE(workspace_id, ''), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
}

/// The jobs as one JSON array of rows for `json_each`, with the time they were stamped.
fn job_rows(jobs: &[NewJob]) -> (String, i64) {
    let now = now_ms();
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            let run_at = job.run_at.map_or(now, |t| t.timestamp_millis());
            let state = if run_at <= now {
                JobState::Available
            } else {
                JobState::Scheduled
            };
            serde_json::json!([
                job.kind,
                job.queue,
                job.args.to_string(),
                state.as_str(),
                job.max_attempts,
                job.priority,
                run_at,
                job.workspace_id,
                job.idempotency_key
            ])
        })
        .collect();
    (serde_json::Value::Array(rows).to_string(), now)
}

/// Inserts jobs in one statement (existing workspace + kind + idempotency key skipped);
/// returns how many were inserted.
pub(crate) async fn enqueue_many(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
) -> Result<u64, StoreError> {
    let (rows, now) = job_rows(jobs);
    let result = sqlx::query(insert_many_sql!())
        .bind(rows)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

/// [`enqueue_many`] that also tells each job's id by (workspace, kind, idempotency key), the
/// existing job's where the key was taken. Every job must have a key.
pub(crate) async fn enqueue_keyed(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
) -> Result<Keyed, StoreError> {
    let (rows, now) = job_rows(jobs);
    let inserted = sqlx::query(concat!(
        insert_many_sql!(),
        " RETURNING id, workspace_id, kind, idempotency_key"
    ))
    .bind(&rows)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut keyed = Keyed::default();
    for row in &inserted {
        keyed.insert(
            row.try_get("workspace_id")?,
            row.try_get("kind")?,
            row.try_get("idempotency_key")?,
            row.try_get("id")?,
        );
    }
    keyed.created = inserted.len() as u64;
    if keyed.ids.len() < jobs.len() {
        let existing = sqlx::query(
            "SELECT j.id, j.workspace_id, j.kind, j.idempotency_key FROM hangar_jobs j \
             JOIN json_each(?1) AS k \
               ON COALESCE(j.workspace_id, '') = COALESCE(k.value ->> 7, '') \
              AND j.kind = k.value ->> 0 AND j.idempotency_key = k.value ->> 8",
        )
        .bind(&rows)
        .fetch_all(&mut *conn)
        .await?;
        for row in &existing {
            keyed.insert(
                row.try_get("workspace_id")?,
                row.try_get("kind")?,
                row.try_get("idempotency_key")?,
                row.try_get("id")?,
            );
        }
    }
    Ok(keyed)
}

/// Stores events once per `(workspace_id, event_id)`; returns how many were new.
pub(crate) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[EventEnvelope],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!([
                e.workspace_id,
                e.id,
                e.event_type,
                e.timestamp.timestamp_millis(),
                serde_json::Value::Object(e.data.clone()).to_string()
            ])
        })
        .collect();
    let result = sqlx::query(
        "INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data, received_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}
