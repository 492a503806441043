//! Paused queues (`hangar_queue_pauses`): an operator pauses a queue from the dashboard, the
//! API or the CLI; it keeps accepting jobs, and no pool claims from it (the claim in
//! `claims.rs` skips it) until it is resumed, which wakes its pools at once (NOTIFY on
//! PostgreSQL, this process's wake-ups on both).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::{now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;

/// One paused queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuePause {
    /// The queue.
    pub queue: String,
    /// When it was paused.
    pub paused_at: DateTime<Utc>,
    /// Who paused it (a token's or a person's name), when known.
    pub paused_by: Option<String>,
}

impl Store {
    /// Pauses `queue`; true when it was running until now, false when already paused.
    pub async fn pause_queue(&self, queue: &str, by: Option<&str>) -> Result<bool, StoreError> {
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "INSERT INTO hangar_queue_pauses (queue, paused_by) VALUES ($1, $2) \
                     ON CONFLICT (queue) DO NOTHING",
            )
            .bind(queue)
            .bind(by)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "INSERT INTO hangar_queue_pauses (queue, paused_at, paused_by) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (queue) DO NOTHING",
            )
            .bind(queue)
            .bind(now_ms())
            .bind(by)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Resumes `queue` and wakes its pools; true when it was paused.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool, StoreError> {
        let n = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("DELETE FROM hangar_queue_pauses WHERE queue = $1")
                    .bind(queue)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    // The pools of other processes learn it now, not at their poll tick.
                    sqlx::query("SELECT pg_notify('hangar_jobs', $1)")
                        .bind(queue)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                n
            }
            Pool::Sqlite(pool) => sqlx::query("DELETE FROM hangar_queue_pauses WHERE queue = ?1")
                .bind(queue)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        if n > 0 {
            self.wakeups().wake(queue);
        }
        Ok(n > 0)
    }

    /// The paused queues, by name.
    pub async fn paused_queues(&self) -> Result<Vec<QueuePause>, StoreError> {
        let sql = "SELECT queue, paused_at, paused_by FROM hangar_queue_pauses ORDER BY queue";
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let rows: Vec<(String, DateTime<Utc>, Option<String>)> =
                    sqlx::query_as(sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|(queue, paused_at, paused_by)| QueuePause {
                        queue,
                        paused_at,
                        paused_by,
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let rows: Vec<(String, i64, Option<String>)> =
                    sqlx::query_as(sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|(queue, paused_at, paused_by)| QueuePause {
                        queue,
                        paused_at: to_time(paused_at),
                        paused_by,
                    })
                    .collect()
            }
        })
    }
}
