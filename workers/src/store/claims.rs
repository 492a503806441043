//! Claims: a pool takes up to `n` runnable jobs of its queue in one statement, leasing them
//! under a fresh random token, and learns when to look again. PostgreSQL claims with
//! `FOR UPDATE SKIP LOCKED LIMIT n`, and a trigger NOTIFYs `hangar_jobs` (payload: the
//! queue) when a job becomes runnable now; [`Store::listen`] turns those notifications into
//! [`Wakeups`] of this process's pools. SQLite has one writer at a time, so a claim is a
//! plain `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`; other processes on the same
//! file are noticed by polling, and enqueues made through this process wake its pools at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::rows::{
    PG_CLAIMED_COLUMNS, SQLITE_CLAIMED_COLUMNS, claimed_from_pg, claimed_from_sqlite, millis,
    now_ms, opt_time,
};
use super::{Store, StoreError};
use crate::backoff::Backoff;
use crate::db::Pool;
use crate::job::ClaimedJob;

/// The channel the notify trigger of the migrations sends on.
const CHANNEL: &str = "hangar_jobs";

/// A position in a queue's claim order `(priority, run_at, id)`.
///
/// On PostgreSQL every claimed row leaves a dead entry at the front of the runnable index
/// until VACUUM removes it, so under a large backlog each claim that scans from the start
/// steps over more of them (a 1M-job drain slowed to a fifth). A busy pool therefore claims
/// after the last key it claimed, and from the start at least every 100 ms and whenever such
/// a claim comes back short: jobs that arrive out of order (a higher priority, a past
/// `run_at`, a transaction that committed late) wait at most that long, and only while the
/// pool has a backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimKey {
    /// The job's priority.
    pub priority: i16,
    /// The job's `run_at`.
    pub run_at: DateTime<Utc>,
    /// The job's id.
    pub id: crate::job::JobId,
}

impl ClaimKey {
    /// The key of a claimed job.
    pub fn of(job: &ClaimedJob) -> ClaimKey {
        ClaimKey {
            priority: job.priority,
            run_at: job.run_at,
            id: job.id,
        }
    }
}

/// Wakes idle pools of this process when a queue gets a runnable job. PostgreSQL feeds it
/// from LISTEN/NOTIFY (so enqueues from any process count); both backends feed it from
/// enqueues made through this process's [`Store`].
#[derive(Debug, Default)]
pub struct Wakeups {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// The notifier of one queue; a pool awaits `notified()` on it when idle.
    pub fn queue(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    /// Wakes the pools of `queue`.
    pub fn wake(&self, queue: &str) {
        let notify = {
            let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.get(queue).cloned()
        };
        if let Some(notify) = notify {
            notify.notify_one();
        }
    }

    /// Wakes every pool (after a lost LISTEN connection, when notifications may be missed).
    pub fn wake_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for notify in queues.values() {
            notify.notify_one();
        }
    }
}

impl Store {
    /// The wake-ups of this process's pools.
    pub fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    /// On PostgreSQL, forwards NOTIFYs to the wake-ups until `shutdown`; reconnects with
    /// backoff and wakes every pool after a reconnect, since notifications sent meanwhile are
    /// lost. Returns at once on SQLite, whose wake-ups come from this process's own enqueues.
    pub async fn listen(&self, shutdown: CancellationToken) {
        if let Pool::Sqlite(_) = self.pool() {
            return;
        }
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

    /// Claims up to `limit` runnable jobs of `queue` for `worker`, leasing them for `lease`.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim_after(queue, worker, limit, lease, None).await
    }

    /// Like [`Store::claim`], but only rows ordered after `after` (see [`ClaimKey`]).
    pub async fn claim_after(
        &self,
        queue: &str,
        worker: &str,
        limit: i64,
        lease: Duration,
        after: Option<&ClaimKey>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let token = fastrand::i64(1..i64::MAX);
        match self.lease_pool() {
            Pool::Postgres(pool) => {
                // With `after`, the index scan starts past the rows this pool claimed last
                // instead of stepping over their dead index entries again (see ClaimKey).
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
                           AND NOT EXISTS (SELECT 1 FROM hangar_queue_pauses p WHERE p.queue = $1) \
                         ORDER BY priority, run_at, id \
                         LIMIT $2 \
                         FOR UPDATE SKIP LOCKED) \
                     UPDATE hangar_jobs j SET state = 'running', attempt = j.attempt + 1, \
                         lease_token = $3, leased_by = $4, \
                         lease_expires_at = now() + make_interval(secs => $5), \
                         attempted_at = now(), updated_at = now() \
                     FROM picked WHERE j.id = picked.id \
                     RETURNING {PG_CLAIMED_COLUMNS}"
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
                let rows = query.fetch_all(pool).await?;
                rows.iter().map(claimed_from_pg).collect()
            }
            // SQLite deletes index entries in place: there is nothing to step over, and
            // `after` is not needed.
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE hangar_jobs SET state = 'running', attempt = attempt + 1, \
                         lease_token = ?3, leased_by = ?4, lease_expires_at = ?5 + ?6, \
                         attempted_at = ?5, updated_at = ?5 \
                     WHERE id IN ( \
                         SELECT id FROM hangar_jobs \
                         WHERE queue = ?1 AND state IN ('available', 'scheduled', 'retryable') \
                           AND run_at <= ?5 \
                           AND NOT EXISTS (SELECT 1 FROM hangar_queue_pauses p WHERE p.queue = ?1) \
                         ORDER BY priority, run_at, id LIMIT ?2) \
                     RETURNING {SQLITE_CLAIMED_COLUMNS}"
                )))
                .bind(queue)
                .bind(limit)
                .bind(token)
                .bind(worker)
                .bind(now)
                .bind(millis(lease))
                .fetch_all(pool)
                .await?;
                rows.iter().map(claimed_from_sqlite).collect()
            }
        }
    }

    /// The earliest `run_at` of a job of `queue` that waits for its time; none while the
    /// queue is paused (its pools then sleep their poll tick, or until a resume wakes them).
    pub async fn next_run_at(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = "SELECT min(run_at) FROM hangar_jobs \
                   WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable') \
                     AND NOT EXISTS (SELECT 1 FROM hangar_queue_pauses p WHERE p.queue = $1)";
        match self.pool() {
            Pool::Postgres(pool) => Ok(sqlx::query_scalar(sql).bind(queue).fetch_one(pool).await?),
            Pool::Sqlite(pool) => {
                let ms: Option<i64> = sqlx::query_scalar(sql).bind(queue).fetch_one(pool).await?;
                Ok(opt_time(ms))
            }
        }
    }
}
