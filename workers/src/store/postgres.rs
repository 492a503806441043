//! The PostgreSQL backend. Claims take `FOR UPDATE SKIP LOCKED LIMIT n` in one statement,
//! completions and heartbeats are one `UNNEST` statement per batch, and a trigger NOTIFYs
//! `hangar_jobs` (payload: the queue) when a job becomes runnable now; [`PgStore::listen`]
//! turns those notifications into wake-ups of this process's pools.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use super::{
    ClaimKey, ExpiredLease, FailureRecord, Keyed, QueueStats, QueueThroughput, StoreError, Wakeups,
    budget_counts, fold_queue_stats, job_incident_key, millis, parse_class, parse_state,
    redact_url, spent_from_row, synthesize_success,
};
use crate::backoff::Backoff;
use crate::ingress::EventEnvelope;
use crate::job::{AttemptRecord, ClaimedJob, Enqueued, Job, JobFilter, JobId, JobState, NewJob};

/// The PostgreSQL migrations, compiled in.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The channel the notify trigger of the migrations sends on.
const CHANNEL: &str = "hangar_jobs";

/// PostgreSQL job store.
#[derive(Clone, Debug)]
pub struct PgStore {
    /// Durable writes: enqueues, completions, failures, operator actions.
    pool: PgPool,
    /// Claims, heartbeats and hand-backs, committed with `synchronous_commit = off`. Losing
    /// one of those in a server crash only means a job runs again, which leases allow
    /// anyway, and it takes a WAL flush off the path from enqueue to start.
    lease_pool: PgPool,
    url: Arc<str>,
    pub(super) wakeups: Arc<Wakeups>,
}

const JOB_COLUMNS: &str = "id, kind, queue, state, attempt, max_attempts, budget_from_attempt, \
     priority, run_at, created_at, updated_at, workspace_id, idempotency_key, args, last_error, attempted_at, \
     finalized_at";

const CLAIMED_COLUMNS: &str = "j.id, j.kind, j.args, j.attempt, j.max_attempts, \
     j.budget_failures, j.snoozes, j.timeout_failures, j.server_failures, j.internal_failures, \
     j.auth_failures, j.budget_from_attempt, \
     j.priority, j.workspace_id, j.lease_token, j.created_at, j.run_at, j.attempted_at";

impl PgStore {
    /// Connects a pool of at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        // NOTICEs (`relation "_sqlx_migrations" already exists, skipping`) say nothing an
        // operator needs; warnings and errors still arrive.
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_error)?
            .options([("client_min_messages", "warning")]);
        // No ping before each use: it doubles the round trips of every query; a broken
        // connection shows up as a query error, which every caller retries.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let lease_pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await
            .map_err(connect_error)?;
        Ok(PgStore {
            pool,
            lease_pool,
            url: url.into(),
            wakeups: Arc::default(),
        })
    }

    /// The underlying pool, for callers that enqueue inside their own transaction.
    /// Closes both connection pools.
    pub async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Forwards NOTIFYs to the wake-ups until `shutdown`; reconnects with backoff and wakes
    /// every pool after a reconnect, since notifications sent meanwhile are lost.
    pub async fn listen(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            let mut listener = match PgListener::connect(&self.url).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "LISTEN connection failed; polling meanwhile");
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(%error, "LISTEN failed; polling meanwhile");
                continue;
            }
            backoff.reset();
            self.wakeups.wake_all();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => self.wakeups.wake(notification.payload()),
                        Ok(None) => {
                            // The connection dropped and was re-established by the listener.
                            self.wakeups.wake_all();
                        }
                        Err(error) => {
                            tracing::warn!(%error, "LISTEN connection lost; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
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
        after: Option<&ClaimKey>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        // With `after`, the index scan starts past the rows this pool claimed last instead
        // of stepping over their dead index entries again (see ClaimKey).
        let bound = if after.is_some() {
            "AND (priority, run_at, id) > ($6, $7, $8)"
        } else {
            ""
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH picked AS ( \
                 SELECT id FROM hangar_jobs \
                 WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable') \
                   AND run_at <= now() {bound} \
                 ORDER BY priority, run_at, id \
                 LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE hangar_jobs j SET state = 'running', attempt = j.attempt + 1, \
                 lease_token = $3, leased_by = $4, \
                 lease_expires_at = now() + make_interval(secs => $5), \
                 attempted_at = now(), updated_at = now() \
             FROM picked WHERE j.id = picked.id \
             RETURNING {CLAIMED_COLUMNS}"
        )))
        .bind(queue)
        .bind(limit)
        .bind(token)
        .bind(worker)
        .bind(lease.as_secs_f64());
        let query = match after {
            Some(key) => query.bind(key.priority).bind(key.run_at).bind(key.id.0),
            None => query,
        };
        let rows = query.fetch_all(&self.lease_pool).await?;
        rows.iter().map(claimed_from_row).collect()
    }

    pub(super) async fn record_failure(&self, f: &FailureRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE hangar_jobs SET state = $3, \
                 run_at = now() + make_interval(secs => $4), \
                 last_error = $5, last_error_class = $6, \
                 budget_failures = $7, snoozes = $8, timeout_failures = $9, \
                 server_failures = $10, internal_failures = $11, auth_failures = $12, \
                 finalized_at = CASE WHEN $3 = 'failed' THEN now() END, updated_at = now(), \
                 lease_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(f.id.0)
        .bind(f.lease_token)
        .bind(f.next_state.as_str())
        .bind(f.delay.as_secs_f64())
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (job_id, attempt) DO NOTHING",
        )
        .bind(f.id.0)
        .bind(f.attempt)
        .bind(f.started_at)
        .bind(f.finished_at)
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
                     incident_key) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO UPDATE SET \
                     occurrences = hangar_alerts.occurrences + 1, last_seen_at = now(), \
                     kind = EXCLUDED.kind, message = EXCLUDED.message, \
                     severity = CASE WHEN hangar_alerts.severity = 'critical' THEN 'critical' \
                                     ELSE EXCLUDED.severity END",
            )
            .bind(&f.workspace_id)
            .bind(alert.kind.as_str())
            .bind(alert.severity.as_str())
            .bind(&alert.message)
            .bind(f.id.0)
            .bind(job_incident_key(f.id))
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
        let ids: Vec<i64> = leases.iter().map(|(id, _)| id.0).collect();
        let tokens: Vec<i64> = leases.iter().map(|(_, token)| *token).collect();
        // SKIP LOCKED: a heartbeat never waits for (or deadlocks with) a transaction that is
        // changing one of these rows. The changer is this process's completer (the attempt
        // has ended), an operator's cancel or a rescuer: in each case the attempt must stop
        // or already has, which is what "not held" makes the caller do.
        let held: Vec<i64> = sqlx::query_scalar(
            "WITH target AS ( \
                 SELECT j.id FROM hangar_jobs j \
                 JOIN UNNEST($1::bigint[], $2::bigint[]) AS d(id, token) \
                   ON j.id = d.id AND j.lease_token = d.token \
                 WHERE j.state = 'running' \
                 FOR UPDATE OF j SKIP LOCKED) \
             UPDATE hangar_jobs j SET lease_expires_at = now() + make_interval(secs => $3) \
             FROM target WHERE j.id = target.id \
             RETURNING j.id",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.lease_pool)
        .await?;
        Ok(held.into_iter().map(JobId).collect())
    }

    pub(super) async fn release(&self, leases: &[(JobId, i64)]) -> Result<u64, StoreError> {
        let ids: Vec<i64> = leases.iter().map(|(id, _)| id.0).collect();
        let tokens: Vec<i64> = leases.iter().map(|(_, token)| *token).collect();
        let result = sqlx::query(
            "UPDATE hangar_jobs j SET state = 'available', run_at = now(), updated_at = now(), \
                 attempt = j.attempt - 1, lease_token = NULL, lease_expires_at = NULL \
             FROM UNNEST($1::bigint[], $2::bigint[]) AS d(id, token) \
             WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'running'",
        )
        .bind(&ids)
        .bind(&tokens)
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
            "SELECT {CLAIMED_COLUMNS}, j.leased_by FROM hangar_jobs j \
             WHERE j.state = 'running' AND j.lease_expires_at < now() AND j.queue = $2 \
             ORDER BY j.lease_expires_at LIMIT $1"
        )))
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
        Ok(sqlx::query_scalar(
            "SELECT min(run_at) FROM hangar_jobs \
             WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable')",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?)
    }

    pub(super) async fn job(&self, id: JobId) -> Result<Job, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM hangar_jobs WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::JobNotFound(id))?;
        let mut job = job_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT attempt, started_at, finished_at, error_class, error, http_status, \
                 next_delay_ms, decision \
             FROM hangar_job_attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        job.attempts = attempts
            .iter()
            .map(|row| {
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
            })
            .collect::<Result<_, StoreError>>()?;
        synthesize_success(
            &mut job,
            row.try_get("attempted_at")?,
            row.try_get("finalized_at")?,
        );
        Ok(job)
    }

    pub(super) async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM hangar_jobs \
             WHERE (cardinality($1::text[]) = 0 OR state = ANY($1)) \
               AND ($2::text IS NULL OR kind = $2) \
               AND ($3::text IS NULL OR workspace_id = $3) AND ($5::text IS NULL OR queue = $5) \
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(&filter.kind)
        .bind(&filter.workspace_id)
        .bind(filter.limit)
        .bind(&filter.queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    pub(super) async fn retry_job(&self, id: JobId) -> Result<u64, StoreError> {
        let updated = sqlx::query(
            "UPDATE hangar_jobs SET state = 'available', run_at = now(), updated_at = now(), \
                 finalized_at = NULL, budget_from_attempt = attempt, \
                 budget_failures = 0, snoozes = 0, timeout_failures = 0, server_failures = 0, \
                 internal_failures = 0, auth_failures = 0 \
             WHERE id = $1 AND state IN ('scheduled', 'retryable', 'completed', 'failed', 'cancelled')",
        )
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected())
    }

    pub(super) async fn delete_queue(&self, queue: &str) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM hangar_jobs WHERE queue = $1")
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
            "SELECT count(*) FROM hangar_jobs WHERE queue = $1 AND (state = $2) = $3",
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
                 COALESCE(EXTRACT(EPOCH FROM max(now() - run_at) \
                     FILTER (WHERE state IN ('available', 'scheduled', 'retryable') \
                         AND run_at <= now()))::float8, 0) AS lag \
             FROM hangar_jobs \
             WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'failed') \
             GROUP BY queue, state ORDER BY queue",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state = parse_state("hangar_jobs", row.try_get::<&str, _>("state")?)?;
                Ok((
                    row.try_get("queue")?,
                    state,
                    row.try_get("n")?,
                    row.try_get("lag")?,
                ))
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
                 count(*) FILTER (WHERE state = 'completed') AS completed, \
                 count(*) FILTER (WHERE state = 'failed') AS failed \
             FROM hangar_jobs \
             WHERE finalized_at >= $1 AND state IN ('completed', 'failed') \
             GROUP BY queue ORDER BY queue",
        )
        .bind(since)
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

fn claimed_from_row(row: &PgRow) -> Result<ClaimedJob, StoreError> {
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

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
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

// Writes that also run inside a caller's transaction (Client, ingest).

pub(crate) async fn enqueue(conn: &mut PgConnection, job: &NewJob) -> Result<Enqueued, StoreError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             workspace_id, idempotency_key) \
         VALUES ($1, $2, $3, \
             CASE WHEN $4::timestamptz IS NULL OR $4 <= now() THEN 'available' ELSE 'scheduled' END, \
             $5, $6, COALESCE($4, now()), $7, $8) \
         ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.queue)
    .bind(&job.args)
    .bind(job.run_at)
    .bind(job.max_attempts)
    .bind(job.priority)
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
         WHERE COALESCE(workspace_id, '') = COALESCE($1, '') AND kind = $2 AND idempotency_key = $3",
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
             workspace_id, idempotency_key) \
         SELECT kind, queue, args, \
             CASE WHEN run_at IS NULL OR run_at <= now() THEN 'available' ELSE 'scheduled' END, \
             max_attempts, priority, COALESCE(run_at, now()), workspace_id, idempotency_key \
         FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::int[], \
             $6::smallint[], $7::text[], $8::text[]) \
             AS t(kind, queue, args, run_at, max_attempts, priority, workspace_id, idempotency_key) \
         ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
}

/// Inserts jobs in one statement (existing workspace + kind + idempotency key skipped);
/// returns how many were inserted.
pub(crate) async fn enqueue_many(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<u64, StoreError> {
    let result = bind_many(sqlx::query(insert_many_sql!()), jobs)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

/// [`enqueue_many`] that also tells each job's id by (workspace, kind, idempotency key), the
/// existing job's where the key was taken. Every job must have a key.
pub(crate) async fn enqueue_keyed(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<Keyed, StoreError> {
    let rows = bind_many(
        sqlx::query(concat!(
            insert_many_sql!(),
            " RETURNING id, workspace_id, kind, idempotency_key"
        )),
        jobs,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut keyed = Keyed::default();
    for row in &rows {
        keyed.insert(
            row.try_get("workspace_id")?,
            row.try_get("kind")?,
            row.try_get("idempotency_key")?,
            row.try_get("id")?,
        );
    }
    keyed.created = rows.len() as u64;
    if keyed.ids.len() < jobs.len() {
        let workspaces: Vec<Option<&str>> =
            jobs.iter().map(|j| j.workspace_id.as_deref()).collect();
        let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
        let existing = sqlx::query(
            "SELECT j.id, j.workspace_id, j.kind, j.idempotency_key FROM hangar_jobs j \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(workspace_id, kind, key) \
               ON COALESCE(j.workspace_id, '') = COALESCE(k.workspace_id, '') \
              AND j.kind = k.kind AND j.idempotency_key = k.key",
        )
        .bind(workspaces)
        .bind(kinds)
        .bind(keys)
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

fn bind_many<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    jobs: &'q [NewJob],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| &j.args).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.workspace_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
}

/// Stores events once per `(workspace_id, event_id)`; returns how many were new.
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.timestamp).collect();
    let data: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::Value::Object(e.data.clone()))
        .collect();
    let result = sqlx::query(
        "INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) \
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    )
    .bind(workspaces)
    .bind(ids)
    .bind(types)
    .bind(times)
    .bind(data)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}
