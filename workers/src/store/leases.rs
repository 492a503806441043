//! Leases of running jobs: the heartbeat extends them, a graceful shutdown hands the jobs
//! back, and the rescuer looks for those that ran out (taking one over is in `rescue.rs`).
//! Heartbeats and hand-backs go through the relaxed-commit pool: losing one in a crash only
//! means a job runs again, which leases allow anyway. Batches travel as `UNNEST` arrays on
//! PostgreSQL and as one JSON array read with `json_each` on SQLite.

use std::time::Duration;

use sqlx::Row;

use super::rows::{
    PG_CLAIMED_COLUMNS, SQLITE_CLAIMED_COLUMNS, claimed_from_pg, claimed_from_sqlite, millis,
    now_ms,
};
use super::{ExpiredLease, Store, StoreError};
use crate::db::Pool;
use crate::job::JobId;

impl Store {
    /// Extends the leases of running jobs; returns the ids whose lease is still held (the
    /// others were cancelled or rescued and must stop).
    pub async fn heartbeat(
        &self,
        leases: &[(JobId, i64)],
        lease: Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let held: Vec<i64> = match self.lease_pool() {
            Pool::Postgres(pool) => {
                let (ids, tokens) = pg_leases(leases);
                // SKIP LOCKED: a heartbeat never waits for (or deadlocks with) a transaction
                // that is changing one of these rows. The changer is this process's completer
                // (the attempt has ended), an operator's cancel or a rescuer: in each case
                // the attempt must stop or already has, which is what "not held" makes the
                // caller do.
                sqlx::query_scalar(
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
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(
                    "UPDATE hangar_jobs SET lease_expires_at = ?2 \
                     WHERE state = 'running' AND (id, lease_token) IN \
                         (SELECT value ->> 0, value ->> 1 FROM json_each(?1)) \
                     RETURNING id",
                )
                .bind(sqlite_leases(leases))
                .bind(now_ms().saturating_add(millis(lease)))
                .fetch_all(pool)
                .await?
            }
        };
        Ok(held.into_iter().map(JobId).collect())
    }

    /// Hands running jobs back unfinished (graceful shutdown): they become available again
    /// at once and the interrupted attempt is not counted.
    pub async fn release(&self, leases: &[(JobId, i64)]) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let result = match self.lease_pool() {
            Pool::Postgres(pool) => {
                let (ids, tokens) = pg_leases(leases);
                sqlx::query(
                    "UPDATE hangar_jobs j SET state = 'available', run_at = now(), \
                         updated_at = now(), attempt = j.attempt - 1, \
                         lease_token = NULL, lease_expires_at = NULL \
                     FROM UNNEST($1::bigint[], $2::bigint[]) AS d(id, token) \
                     WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'running'",
                )
                .bind(&ids)
                .bind(&tokens)
                .execute(pool)
                .await?
                .rows_affected()
            }
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_jobs SET state = 'available', run_at = ?2, updated_at = ?2, \
                     attempt = attempt - 1, lease_token = NULL, lease_expires_at = NULL \
                 WHERE state = 'running' AND (id, lease_token) IN \
                     (SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
            )
            .bind(sqlite_leases(leases))
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(result)
    }

    /// Running jobs whose lease ran out, oldest first.
    pub async fn expired_leases(
        &self,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<ExpiredLease>, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {PG_CLAIMED_COLUMNS}, j.leased_by FROM hangar_jobs j \
                     WHERE j.state = 'running' AND j.lease_expires_at < now() AND j.queue = $2 \
                     ORDER BY j.lease_expires_at LIMIT $1"
                )))
                .bind(limit)
                .bind(queue)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ExpiredLease {
                            job: claimed_from_pg(row)?,
                            leased_by: row.try_get("leased_by")?,
                        })
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {SQLITE_CLAIMED_COLUMNS}, leased_by FROM hangar_jobs \
                     WHERE state = 'running' AND lease_expires_at < ?1 AND queue = ?3 \
                     ORDER BY lease_expires_at LIMIT ?2"
                )))
                .bind(now_ms())
                .bind(limit)
                .bind(queue)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ExpiredLease {
                            job: claimed_from_sqlite(row)?,
                            leased_by: row.try_get("leased_by")?,
                        })
                    })
                    .collect()
            }
        }
    }
}

/// The ids and tokens of `leases` as two arrays for `UNNEST`.
fn pg_leases(leases: &[(JobId, i64)]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|(id, token)| (id.0, *token)).unzip()
}

/// `leases` as one JSON array of `[id, token]` for `json_each`.
fn sqlite_leases(leases: &[(JobId, i64)]) -> String {
    let batch: Vec<[i64; 2]> = leases.iter().map(|(id, t)| [id.0, *t]).collect();
    serde_json::to_string(&batch).unwrap_or_default()
}
