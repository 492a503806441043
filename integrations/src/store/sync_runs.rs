//! `hangar_sync_runs`: one audit row per sync run (trigger, times, direction, credential
//! version, cursor before and after, counters, provider calls, time waiting on budgets, the
//! error's class and the provider's message, the run's log). Both dialects side by side.

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use serde::Serialize;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_store::{SyncStore, SyncStoreError, json_text, ms, to_time};

/// A run as it starts.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
    pub direction: String,
    pub trigger: String,
    pub job_id: Option<i64>,
    pub credential_version: Option<i64>,
    pub cursor_before: Option<serde_json::Value>,
}

/// The counters of a run (CONTRACT's `records`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: i64,
    pub created: i64,
    pub updated: i64,
    pub removed: i64,
    pub conflicted: i64,
    pub skipped: i64,
}

impl Counts {
    /// Adds `other` to these.
    pub fn add(&mut self, other: Counts) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.removed += other.removed;
        self.conflicted += other.conflicted;
        self.skipped += other.skipped;
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunEnd {
    pub status: String,
    pub cursor_after: Option<serde_json::Value>,
    pub provider_calls: i64,
    pub rate_wait_ms: i64,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub log: Vec<String>,
    /// The credential version the run used last (after a refresh mid-run, the refreshed
    /// one); `None` keeps the one written at its start.
    pub credential_version: Option<i64>,
}

/// A stored run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    pub id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
    pub direction: String,
    pub trigger: String,
    pub status: String,
    pub job_id: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub credential_version: Option<i64>,
    pub cursor_before: Option<serde_json::Value>,
    pub cursor_after: Option<serde_json::Value>,
    pub records: Counts,
    pub provider_calls: i64,
    pub rate_wait_ms: i64,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub log: Vec<String>,
}

const COLUMNS: &str = "id, integration_id, workspace_id, provider, data_type, direction, trigger, \
     status, job_id, started_at, finished_at, credential_version, cursor_before, cursor_after, \
     records_read, records_created, records_updated, records_removed, records_conflicted, \
     records_skipped, provider_calls, rate_wait_ms, error_class, error, log";

impl SyncStore {
    /// Writes the row of a run that starts now (status `running`). A run of the same job
    /// still `running` is one whose attempt ended without finishing it (the process died,
    /// or its lease was lost): it is closed as `failed` first.
    pub async fn start_run(&self, run: &NewRun) -> Result<(), SyncStoreError> {
        let now = Utc::now();
        const INTERRUPTED: &str = "interrupted: the attempt ended without finishing the run (process killed or lease lost); the next attempt resumed from the cursor";
        match self.db.pool() {
            Pool::Postgres(pool) => {
                if let Some(job) = run.job_id {
                    sqlx::query(
                        "UPDATE hangar_sync_runs SET status = 'failed', finished_at = $2, \
                         error_class = 'internal', error = $3 WHERE job_id = $1 AND status = 'running'",
                    )
                    .bind(job)
                    .bind(now)
                    .bind(INTERRUPTED)
                    .execute(pool)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO hangar_sync_runs (id, integration_id, workspace_id, provider, \
                     data_type, direction, trigger, status, job_id, started_at, \
                     credential_version, cursor_before) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10, $11)",
                )
                .bind(&run.id)
                .bind(&run.integration_id)
                .bind(&run.workspace_id)
                .bind(&run.provider)
                .bind(&run.data_type)
                .bind(&run.direction)
                .bind(&run.trigger)
                .bind(run.job_id)
                .bind(now)
                .bind(run.credential_version)
                .bind(run.cursor_before.clone().map(Json))
                .execute(pool)
                .await?;
            }
            Pool::Sqlite(pool) => {
                if let Some(job) = run.job_id {
                    sqlx::query(
                        "UPDATE hangar_sync_runs SET status = 'failed', finished_at = ?2, \
                         error_class = 'internal', error = ?3 WHERE job_id = ?1 AND status = 'running'",
                    )
                    .bind(job)
                    .bind(ms(now))
                    .bind(INTERRUPTED)
                    .execute(pool)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO hangar_sync_runs (id, integration_id, workspace_id, provider, \
                     data_type, direction, trigger, status, job_id, started_at, \
                     credential_version, cursor_before) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11)",
                )
                .bind(&run.id)
                .bind(&run.integration_id)
                .bind(&run.workspace_id)
                .bind(&run.provider)
                .bind(&run.data_type)
                .bind(&run.direction)
                .bind(&run.trigger)
                .bind(run.job_id)
                .bind(ms(now))
                .bind(run.credential_version)
                .bind(run.cursor_before.as_ref().map(|c| c.to_string()))
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Ends a run: its status, cursor after, calls, waits, error and log (the counters were
    /// added page by page, in the transactions that applied them).
    pub async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<(), SyncStoreError> {
        let now = Utc::now();
        let log = serde_json::Value::from(end.log.clone());
        match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE hangar_sync_runs SET status = $2, finished_at = $3, cursor_after = $4, \
                     provider_calls = $5, rate_wait_ms = $6, error_class = $7, error = $8, log = $9, \
                     credential_version = COALESCE($10, credential_version) WHERE id = $1",
                )
                .bind(id)
                .bind(&end.status)
                .bind(now)
                .bind(end.cursor_after.clone().map(Json))
                .bind(end.provider_calls)
                .bind(end.rate_wait_ms)
                .bind(&end.error_class)
                .bind(&end.error)
                .bind(Json(log))
                .bind(end.credential_version)
                .execute(pool)
                .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE hangar_sync_runs SET status = ?2, finished_at = ?3, cursor_after = ?4, \
                     provider_calls = ?5, rate_wait_ms = ?6, error_class = ?7, error = ?8, log = ?9, \
                     credential_version = COALESCE(?10, credential_version) WHERE id = ?1",
                )
                .bind(id)
                .bind(&end.status)
                .bind(ms(now))
                .bind(end.cursor_after.as_ref().map(|c| c.to_string()))
                .bind(end.provider_calls)
                .bind(end.rate_wait_ms)
                .bind(&end.error_class)
                .bind(&end.error)
                .bind(log.to_string())
                .bind(end.credential_version)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Adds `counts` to a run's counters (an outbound run's, whose writes are not pages).
    pub async fn add_run_counts(&self, id: &str, counts: &Counts) -> Result<(), SyncStoreError> {
        let mut tx = match self.db.pool() {
            Pool::Postgres(pool) => super::sync_tx::Tx::Pg(pool.begin().await?),
            Pool::Sqlite(pool) => {
                super::sync_tx::Tx::Lite(super::sync_store::begin_immediate(pool).await?)
            }
        };
        tx.add_counts(id, counts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One run, in `workspace` when given.
    pub async fn run(&self, workspace: Option<&str>, id: &str) -> Result<RunRow, SyncStoreError> {
        let runs = self.runs_where(workspace, Some(id), None, 1).await?;
        runs.into_iter()
            .next()
            .ok_or_else(|| SyncStoreError::NotFound(format!("sync run {id}")))
    }

    /// A workspace's runs, newest first, optionally of one integration.
    pub async fn runs(
        &self,
        workspace: &str,
        integration: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, SyncStoreError> {
        self.runs_where(Some(workspace), None, integration, limit)
            .await
    }

    /// Runs, newest first: of `workspace` (every workspace: `None`), of `integration` if
    /// given.
    pub async fn runs_in(
        &self,
        workspace: Option<&str>,
        integration: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, SyncStoreError> {
        self.runs_where(workspace, None, integration, limit).await
    }

    /// The runs of the jobs `job_ids` in `workspace` that started at or after `since`, oldest
    /// first (the runs an event's subscription jobs made: `since` is when the event was
    /// received, so the workspace index bounds the read).
    pub async fn runs_of_jobs(
        &self,
        workspace: &str,
        job_ids: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<RunRow>, SyncStoreError> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_runs WHERE workspace_id = $1 \
                     AND started_at >= $3 AND job_id = ANY($2) ORDER BY started_at, id LIMIT 1000"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(job_ids)
                    .bind(since)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_runs WHERE workspace_id = ?1 \
                     AND started_at >= ?3 AND job_id IN (SELECT value FROM json_each(?2)) \
                     ORDER BY started_at, id LIMIT 1000"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(serde_json::to_string(job_ids).unwrap_or_else(|_| "[]".to_owned()))
                    .bind(ms(since))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }

    async fn runs_where(
        &self,
        workspace: Option<&str>,
        id: Option<&str>,
        integration: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_runs WHERE ($1::text IS NULL OR workspace_id = $1) \
                     AND ($2::text IS NULL OR id = $2) AND ($3::text IS NULL OR integration_id = $3) \
                     ORDER BY started_at DESC, id DESC LIMIT $4"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(id)
                    .bind(integration)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_runs WHERE (?1 IS NULL OR workspace_id = ?1) \
                     AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR integration_id = ?3) \
                     ORDER BY started_at DESC, id DESC LIMIT ?4"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(id)
                    .bind(integration)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }
}

fn counts<R: Row>(row: &R) -> Result<Counts, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Counts {
        read: row.try_get("records_read")?,
        created: row.try_get("records_created")?,
        updated: row.try_get("records_updated")?,
        removed: row.try_get("records_removed")?,
        conflicted: row.try_get("records_conflicted")?,
        skipped: row.try_get("records_skipped")?,
    })
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<RunRow, SyncStoreError> {
    let log: Json<Vec<String>> = row.try_get("log")?;
    Ok(RunRow {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        data_type: row.try_get("data_type")?,
        direction: row.try_get("direction")?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        job_id: row.try_get("job_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        credential_version: row.try_get("credential_version")?,
        cursor_before: row
            .try_get::<Option<Json<serde_json::Value>>, _>("cursor_before")?
            .map(|j| j.0),
        cursor_after: row
            .try_get::<Option<Json<serde_json::Value>>, _>("cursor_after")?
            .map(|j| j.0),
        records: counts(row)?,
        provider_calls: row.try_get("provider_calls")?,
        rate_wait_ms: row.try_get("rate_wait_ms")?,
        error_class: row.try_get("error_class")?,
        error: row.try_get("error")?,
        log: log.0,
    })
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<RunRow, SyncStoreError> {
    let opt_json = |name: &str| -> Result<Option<serde_json::Value>, SyncStoreError> {
        row.try_get::<Option<String>, _>(name)?
            .map(|t| json_text(&t))
            .transpose()
    };
    let log: Vec<String> = serde_json::from_value(json_text(&row.try_get::<String, _>("log")?)?)
        .map_err(|e| SyncStoreError::Corrupt(format!("log: {e}")))?;
    Ok(RunRow {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        data_type: row.try_get("data_type")?,
        direction: row.try_get("direction")?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        job_id: row.try_get("job_id")?,
        started_at: to_time(row.try_get("started_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(to_time),
        credential_version: row.try_get("credential_version")?,
        cursor_before: opt_json("cursor_before")?,
        cursor_after: opt_json("cursor_after")?,
        records: counts(row)?,
        provider_calls: row.try_get("provider_calls")?,
        rate_wait_ms: row.try_get("rate_wait_ms")?,
        error_class: row.try_get("error_class")?,
        error: row.try_get("error")?,
        log,
    })
}
