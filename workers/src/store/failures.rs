//! A failed attempt made durable: in one transaction the job moves to the state of the retry
//! decision (fenced by the lease token, so a taken-over worker writes nothing), the attempt
//! row is written, and the decision's alert is raised or, while its incident is open, seen
//! once more. A job that only has to wait ([`Store::put_back`]) goes back to `scheduled`
//! with its attempt number given back. The same transaction adds the attempt to its queue's
//! per-minute counters (`queue_minutes`).

use super::queue_minutes::{Outcome, fold_adds, pg_add_minutes, sqlite_add_minutes};
use super::rows::{budget_counts, millis, now_ms};
use super::{FailureRecord, Store, StoreError, job_incident_key};
use crate::db::Pool;
use crate::job::JobState;

/// The counters a failed attempt adds to its queue's minute.
fn minute_adds(f: &FailureRecord, queue: &str) -> Vec<super::queue_minutes::MinuteAdd> {
    let outcome = if f.next_state == JobState::Failed {
        Outcome::Failed
    } else {
        Outcome::Retried
    };
    let duration = (f.finished_at - f.started_at).num_milliseconds();
    fold_adds([(queue, f.finished_at, Some(duration), outcome)])
}

impl Store {
    /// Records a failed attempt and the retry decision; false when the result was rejected
    /// because the lease was taken over (nothing is written then).
    pub async fn record_failure(&self, f: &FailureRecord) -> Result<bool, StoreError> {
        let next_delay_ms = (f.next_state != JobState::Failed).then(|| millis(f.delay));
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE hangar_jobs SET state = $3, \
                         run_at = now() + make_interval(secs => $4), \
                         last_error = $5, last_error_class = $6, \
                         budget_failures = $7, snoozes = $8, timeout_failures = $9, \
                         server_failures = $10, internal_failures = $11, auth_failures = $12, \
                         finalized_at = CASE WHEN $3 = 'failed' THEN now() END, \
                         updated_at = now(), lease_token = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_token = $2 AND state = 'running' \
                     RETURNING queue",
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
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = updated else {
                    return Ok(false);
                };
                let queue: String = sqlx::Row::try_get(&row, "queue")?;
                pg_add_minutes(&mut tx, &minute_adds(f, &queue)).await?;
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
                .bind(next_delay_ms)
                .bind(&f.decision)
                .bind(&f.worker)
                .bind(f.budget_failure)
                .bind(f.class_failure)
                .execute(&mut *tx)
                .await?;
                if let Some(alert) = &f.alert {
                    sqlx::query(
                        "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, \
                             job_id, incident_key) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO UPDATE SET \
                             occurrences = hangar_alerts.occurrences + 1, last_seen_at = now(), \
                             kind = EXCLUDED.kind, message = EXCLUDED.message, \
                             severity = CASE WHEN hangar_alerts.severity = 'critical' \
                                             THEN 'critical' ELSE EXCLUDED.severity END",
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
            }
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let mut tx = pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE hangar_jobs SET state = ?3, run_at = ?4 + ?5, \
                         last_error = ?6, last_error_class = ?7, \
                         budget_failures = ?8, snoozes = ?9, timeout_failures = ?10, \
                         server_failures = ?11, internal_failures = ?12, auth_failures = ?13, \
                         finalized_at = CASE WHEN ?3 = 'failed' THEN ?4 END, updated_at = ?4, \
                         lease_token = NULL, lease_expires_at = NULL \
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'running' \
                     RETURNING queue",
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
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = updated else {
                    return Ok(false);
                };
                let queue: String = sqlx::Row::try_get(&row, "queue")?;
                sqlite_add_minutes(&mut tx, &minute_adds(f, &queue)).await?;
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
                .bind(next_delay_ms)
                .bind(&f.decision)
                .bind(&f.worker)
                .bind(f.budget_failure)
                .bind(f.class_failure)
                .execute(&mut *tx)
                .await?;
                if let Some(alert) = &f.alert {
                    sqlx::query(
                        "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, \
                             job_id, incident_key, created_at, last_seen_at) \
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
            }
        }
        Ok(true)
    }

    /// Puts a running job back to `scheduled`, `after` from now, fenced by its lease, with
    /// the claim's attempt number given back and nothing recorded: waiting for a limit is not
    /// an attempt. False when the lease was taken over.
    pub async fn put_back(
        &self,
        id: crate::job::JobId,
        lease_token: i64,
        after: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'scheduled', attempt = attempt - 1, \
                     run_at = now() + make_interval(secs => $3), updated_at = now(), \
                     lease_token = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND lease_token = $2 AND state = 'running'",
            )
            .bind(id.0)
            .bind(lease_token)
            .bind(after.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'scheduled', attempt = attempt - 1, \
                     run_at = ?3 + ?4, updated_at = ?3, lease_token = NULL, \
                     lease_expires_at = NULL \
                 WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
            )
            .bind(id.0)
            .bind(lease_token)
            .bind(now_ms())
            .bind(millis(after))
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(n == 1)
    }
}
