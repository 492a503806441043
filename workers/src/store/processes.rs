//! The processes that run pools (`hangar_processes`): each `serve` and `worker` upserts its
//! row at start and on every heartbeat, and deletes it when it stops cleanly; rows a process
//! killed outright left behind are shown as gone, then deleted by any heartbeat a day later.
//! With the running jobs' `leased_by`, this is the dashboard's, the API's and the CLI's
//! workers list: which processes are alive and which jobs each runs now.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::{millis, now_ms, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::job::JobId;

/// Rows whose heartbeat is older than this are deleted.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);

/// What a process says of itself on each heartbeat.
#[derive(Debug, Clone)]
pub struct ProcessBeat {
    /// `host:pid`, the `leased_by` of its jobs.
    pub id: String,
    /// The machine's name.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// Hangar's version.
    pub version: String,
    /// `serve` or `worker`.
    pub command: String,
    /// The pools it runs.
    pub pools: Vec<String>,
}

/// One process as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessRow {
    /// `host:pid`.
    pub id: String,
    /// The machine's name.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// Hangar's version.
    pub version: String,
    /// `serve` or `worker`.
    pub command: String,
    /// The pools it runs.
    pub pools: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// A job running now, and who runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    /// The job.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// The attempt under way.
    pub attempt: i32,
    /// Its workspace.
    pub workspace_id: Option<String>,
    /// The process holding its lease (`host:pid`).
    pub leased_by: Option<String>,
    /// When this attempt was claimed.
    pub attempted_at: Option<DateTime<Utc>>,
}

type PgProcess = (
    String,
    String,
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);
type SqliteProcess = (String, String, i64, String, String, String, i64, i64);
type PgRunning = (
    i64,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);
type SqliteRunning = (
    i64,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn pools_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Store {
    /// Records `beat` (the first one sets `started_at`), and deletes the rows of processes
    /// silent for a day.
    pub async fn heartbeat_process(&self, beat: &ProcessBeat) -> Result<(), StoreError> {
        let pools = serde_json::to_string(&beat.pools).unwrap_or_else(|_| "[]".to_owned());
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO hangar_processes \
                         (id, host, pid, version, command, pools, started_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, now(), now()) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), \
                         version = EXCLUDED.version, pools = EXCLUDED.pools",
                )
                .bind(&beat.id)
                .bind(&beat.host)
                .bind(beat.pid)
                .bind(&beat.version)
                .bind(&beat.command)
                .bind(&pools)
                .execute(pool)
                .await?;
                sqlx::query(
                    "DELETE FROM hangar_processes \
                     WHERE heartbeat_at < now() - make_interval(secs => $1)",
                )
                .bind(FORGET_AFTER.as_secs_f64())
                .execute(pool)
                .await?;
            }
            Pool::Sqlite(pool) => {
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO hangar_processes \
                         (id, host, pid, version, command, pools, started_at, heartbeat_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
                         version = excluded.version, pools = excluded.pools",
                )
                .bind(&beat.id)
                .bind(&beat.host)
                .bind(beat.pid)
                .bind(&beat.version)
                .bind(&beat.command)
                .bind(&pools)
                .bind(now)
                .execute(pool)
                .await?;
                sqlx::query("DELETE FROM hangar_processes WHERE heartbeat_at < ?1")
                    .bind(now - millis(FORGET_AFTER))
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes the row of process `id` (it is stopping cleanly).
    pub async fn remove_process(&self, id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM hangar_processes WHERE id = $1";
        match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop)?,
            Pool::Sqlite(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// The processes seen in the last day, the latest heartbeat first.
    pub async fn processes(&self) -> Result<Vec<ProcessRow>, StoreError> {
        let sql = "SELECT id, host, pid, version, command, pools, started_at, heartbeat_at \
                   FROM hangar_processes ORDER BY heartbeat_at DESC, id";
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let rows: Vec<PgProcess> = sqlx::query_as(sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(
                        |(id, host, pid, version, command, pools, started, beat)| ProcessRow {
                            id,
                            host,
                            pid,
                            version,
                            command,
                            pools: pools_of(&pools),
                            started_at: started,
                            heartbeat_at: beat,
                        },
                    )
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let rows: Vec<SqliteProcess> = sqlx::query_as(sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(
                        |(id, host, pid, version, command, pools, started, beat)| ProcessRow {
                            id,
                            host,
                            pid,
                            version,
                            command,
                            pools: pools_of(&pools),
                            started_at: to_time(started),
                            heartbeat_at: to_time(beat),
                        },
                    )
                    .collect()
            }
        })
    }

    /// Up to `limit` running jobs, oldest attempt first, with the process that holds each.
    pub async fn running_jobs(&self, limit: i64) -> Result<Vec<RunningJob>, StoreError> {
        let sql = "SELECT id, kind, queue, attempt, workspace_id, leased_by, attempted_at \
                   FROM hangar_jobs WHERE state = 'running' ORDER BY attempted_at, id LIMIT $1";
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let rows: Vec<PgRunning> = sqlx::query_as(sql).bind(limit).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|(id, kind, queue, attempt, ws, by, at)| RunningJob {
                        id: JobId(id),
                        kind,
                        queue,
                        attempt,
                        workspace_id: ws,
                        leased_by: by,
                        attempted_at: at,
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let rows: Vec<SqliteRunning> =
                    sqlx::query_as(sql).bind(limit).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|(id, kind, queue, attempt, ws, by, at)| RunningJob {
                        id: JobId(id),
                        kind,
                        queue,
                        attempt,
                        workspace_id: ws,
                        leased_by: by,
                        attempted_at: at.map(to_time),
                    })
                    .collect()
            }
        })
    }
}
