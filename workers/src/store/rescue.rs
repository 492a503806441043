//! The rescuer's writes: a job whose lease ran out is taken over and given the retry
//! decision of its lost attempt. Taking it over is one statement that re-checks the expiry
//! (`lease_expires_at < now()`) together with the old lease token, so a lease its worker
//! renewed between the rescuer's look-up and this statement is never taken over: the
//! worker goes on, and the rescuer's record is not written.

use std::time::Duration;

use chrono::Utc;

use super::{FailureRecord, Store, StoreError, millis};
use crate::db::Pool;

impl Store {
    /// Takes over the expired lease of `record.id` (fenced by `record.lease_token`) for
    /// `record.worker`, leased for `lease`, then records `record` (the rescuer's decision)
    /// under the new token. False when the lease was renewed, taken over or finished
    /// meanwhile: then nothing is written.
    pub async fn rescue(
        &self,
        record: &FailureRecord,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let token = fastrand::i64(1..i64::MAX);
        let taken = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_jobs SET lease_token = $3, leased_by = $4, \
                     lease_expires_at = now() + make_interval(secs => $5) \
                 WHERE id = $1 AND lease_token = $2 AND state = 'running' \
                   AND lease_expires_at < now()",
            )
            .bind(record.id.0)
            .bind(record.lease_token)
            .bind(token)
            .bind(&record.worker)
            .bind(lease.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => {
                let now = Utc::now().timestamp_millis();
                sqlx::query(
                    "UPDATE hangar_jobs SET lease_token = ?3, leased_by = ?4, \
                         lease_expires_at = ?5 + ?6 \
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'running' \
                       AND lease_expires_at < ?5",
                )
                .bind(record.id.0)
                .bind(record.lease_token)
                .bind(token)
                .bind(&record.worker)
                .bind(now)
                .bind(millis(lease))
                .execute(pool)
                .await?
                .rows_affected()
            }
        };
        if taken == 0 {
            return Ok(false);
        }
        // Now the rescuer's lease: if this write fails, the lease runs out again and the
        // next pass (of any process) rescues the job.
        let mut record = record.clone();
        record.lease_token = token;
        self.record_failure(&record).await
    }
}
