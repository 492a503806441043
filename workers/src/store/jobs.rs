//! Reading jobs: one job with its attempts, and a filtered list, newest first, without them,
//! by pages (a cursor is the last id of the page before: `id < cursor`, on the primary key).

use sqlx::Row;

use super::rows::{
    ATTEMPT_COLUMNS, JOB_COLUMNS, attempt_from_pg, attempt_from_sqlite, job_from_pg,
    job_from_sqlite, opt_time, synthesize_success,
};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::{Job, JobFilter, JobId};

impl Store {
    /// One job with its attempts.
    pub async fn job(&self, id: JobId) -> Result<Job, StoreError> {
        let select = format!("SELECT {JOB_COLUMNS} FROM hangar_jobs WHERE id = $1");
        let attempts = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM hangar_job_attempts WHERE job_id = $1 ORDER BY attempt"
        );
        match self.pool() {
            Pool::Postgres(pool) => {
                // One snapshot for the row and its attempts: read apart, a failure recorded
                // between the two reads showed its attempt beside the row as it was before
                // (still `running`, no `last_error`).
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::JobNotFound(id))?;
                let mut job = job_from_pg(&row)?;
                job.attempts = sqlx::query(sqlx::AssertSqlSafe(attempts))
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(attempt_from_pg)
                    .collect::<Result<_, _>>()?;
                tx.commit().await?;
                synthesize_success(
                    &mut job,
                    row.try_get("attempted_at")?,
                    row.try_get("finalized_at")?,
                );
                Ok(job)
            }
            Pool::Sqlite(pool) => {
                // A read transaction: one WAL snapshot for the row and its attempts.
                let mut tx = pool.begin().await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::JobNotFound(id))?;
                let mut job = job_from_sqlite(&row)?;
                job.attempts = sqlx::query(sqlx::AssertSqlSafe(attempts))
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(attempt_from_sqlite)
                    .collect::<Result<_, _>>()?;
                tx.commit().await?;
                synthesize_success(
                    &mut job,
                    opt_time(row.try_get("attempted_at")?),
                    opt_time(row.try_get("finalized_at")?),
                );
                Ok(job)
            }
        }
    }

    /// Jobs matching `filter`, newest first, without their attempts.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM hangar_jobs WHERE {PG_FILTER} \
                     ORDER BY id DESC LIMIT $10"
                );
                let rows = bind_pg(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(filter.limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(job_from_pg).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM hangar_jobs WHERE {SQLITE_FILTER} \
                     ORDER BY id DESC LIMIT ?10"
                );
                let rows = bind_sqlite(sqlx::query(sqlx::AssertSqlSafe(sql)), filter)
                    .bind(filter.limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(job_from_sqlite).collect()
            }
        }
    }

    /// One page of the jobs matching `filter` (`filter.limit` of them, newest first, after
    /// `filter.before_id`), and the cursor of the next page when there is one: the id to
    /// pass as `before_id` next.
    pub async fn jobs_page(
        &self,
        filter: &JobFilter,
    ) -> Result<(Vec<Job>, Option<JobId>), StoreError> {
        let mut one_more = filter.clone();
        one_more.limit = filter.limit.saturating_add(1);
        let mut jobs = self.jobs(&one_more).await?;
        let limit = usize::try_from(filter.limit).unwrap_or(0);
        if jobs.len() > limit {
            jobs.truncate(limit);
            let next = jobs.last().map(|j| j.id);
            return Ok((jobs, next));
        }
        Ok((jobs, None))
    }
}

/// The list's filter on PostgreSQL, parameters `$1`–`$9` as [`bind_pg`] binds them.
pub(super) const PG_FILTER: &str = "(cardinality($1::text[]) = 0 OR state = ANY($1)) \
     AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR workspace_id = $3) \
     AND ($4::text IS NULL OR queue = $4) AND ($5::bigint IS NULL OR id = $5) \
     AND ($6::text IS NULL OR idempotency_key = $6) \
     AND ($7::timestamptz IS NULL OR created_at >= $7) \
     AND ($8::timestamptz IS NULL OR created_at < $8) AND ($9::bigint IS NULL OR id < $9)";

/// The list's filter on SQLite, parameters `?1`–`?9` as [`bind_sqlite`] binds them.
pub(super) const SQLITE_FILTER: &str = "(?1 = '[]' OR state IN (SELECT value FROM json_each(?1))) \
     AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR workspace_id = ?3) \
     AND (?4 IS NULL OR queue = ?4) AND (?5 IS NULL OR id = ?5) \
     AND (?6 IS NULL OR idempotency_key = ?6) \
     AND (?7 IS NULL OR created_at >= ?7) AND (?8 IS NULL OR created_at < ?8) \
     AND (?9 IS NULL OR id < ?9)";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds `filter` as [`PG_FILTER`]'s `$1`–`$9`.
pub(super) fn bind_pg<'q>(query: PgQuery<'q>, filter: &JobFilter) -> PgQuery<'q> {
    let states: Vec<String> = filter
        .states
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    query
        .bind(states)
        .bind(filter.kind.clone())
        .bind(filter.workspace_id.clone())
        .bind(filter.queue.clone())
        .bind(filter.id.map(|id| id.0))
        .bind(filter.idempotency_key.clone())
        .bind(filter.created_from)
        .bind(filter.created_until)
        .bind(filter.before_id.map(|id| id.0))
}

/// Binds `filter` as [`SQLITE_FILTER`]'s `?1`–`?9`.
pub(super) fn bind_sqlite<'q>(query: SqliteQuery<'q>, filter: &JobFilter) -> SqliteQuery<'q> {
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    query
        .bind(serde_json::Value::from(states).to_string())
        .bind(filter.kind.clone())
        .bind(filter.workspace_id.clone())
        .bind(filter.queue.clone())
        .bind(filter.id.map(|id| id.0))
        .bind(filter.idempotency_key.clone())
        .bind(filter.created_from.map(|t| t.timestamp_millis()))
        .bind(filter.created_until.map(|t| t.timestamp_millis()))
        .bind(filter.before_id.map(|id| id.0))
}
