//! Facts about jobs that other crates ask the engine for instead of reading `hangar_jobs`
//! themselves: the states of given jobs (the planner's "is the previous run of this schedule
//! still active", inside its own transaction), and how late a queue's jobs were inserted
//! (the planner bench). Both dialects side by side.

use std::collections::HashMap;

use sqlx::{PgConnection, Row, SqliteConnection};

use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{JobId, JobState};

/// The states of the jobs among `ids` that still exist, on PostgreSQL.
pub(crate) async fn pg_job_states(
    conn: &mut PgConnection,
    ids: &[JobId],
) -> Result<HashMap<JobId, JobState>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query("SELECT id, state FROM hangar_jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| state_entry(row.try_get("id")?, row.try_get("state")?))
        .collect()
}

/// The states of the jobs among `ids` that still exist, on SQLite.
pub(crate) async fn sqlite_job_states(
    conn: &mut SqliteConnection,
    ids: &[JobId],
) -> Result<HashMap<JobId, JobState>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(
        "SELECT id, state FROM hangar_jobs WHERE id IN (SELECT value FROM json_each($1))",
    )
    .bind(serde_json::to_string(&ids).expect("integers serialize"))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| state_entry(row.try_get("id")?, row.try_get("state")?))
        .collect()
}

fn state_entry(id: i64, state: String) -> Result<(JobId, JobState), StoreError> {
    let state = state.parse().map_err(|e| StoreError::Corrupt {
        table: "hangar_jobs",
        detail: format!("job {id}: {e}"),
    })?;
    Ok((JobId(id), state))
}

impl Store {
    /// How late each job of `queue` was inserted, in milliseconds: its `created_at` minus its
    /// `run_at` (for a planned job, its due time), in no particular order.
    pub async fn insert_lateness_ms(&self, queue: &str) -> Result<Vec<f64>, StoreError> {
        let lateness =
            match self.database().pool() {
                Pool::Postgres(pool) => {
                    sqlx::query_scalar(
                        "SELECT EXTRACT(EPOCH FROM (created_at - run_at))::float8 * 1000 \
                     FROM hangar_jobs WHERE queue = $1",
                    )
                    .bind(queue)
                    .fetch_all(pool)
                    .await?
                }
                Pool::Sqlite(pool) => sqlx::query_scalar(
                    "SELECT CAST(created_at - run_at AS REAL) FROM hangar_jobs WHERE queue = $1",
                )
                .bind(queue)
                .fetch_all(pool)
                .await?,
            };
        Ok(lateness)
    }
}
