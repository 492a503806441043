//! Replays in the background (`hangar_webhook_replays`): the row a replay request stores
//! with the count it answered and its job (`webhook_replay`, in one transaction), the batches
//! that job sends again (each in one transaction with its progress: deliveries created so far,
//! the last event row done, when it finished), and the rows the API, the dashboard and the
//! CLI show.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::rows::{now_ms, opt_time, to_time};
use super::webhook_fanout::{PG_REQUEUE, sqlite_requeue};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::routes::Route;

/// The job kind that sends a replay's deliveries again.
pub const REPLAY_KIND: &str = "webhook_replay";

/// A replay and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Replay {
    /// `rpl_…`.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The deliveries created from this time on …
    pub since: DateTime<Utc>,
    /// … and before this one.
    pub until: DateTime<Utc>,
    /// Only those that failed.
    pub failed_only: bool,
    /// How many there were when it was asked (the answer's count).
    pub total: i64,
    /// How many were sent again so far (a delivery that stopped matching meanwhile, e.g. it
    /// succeeded, is not: `created` may end below `total`).
    pub created: i64,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// When its last batch was sent (`null` while it runs).
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a replay request asks.
#[derive(Debug, Clone)]
pub struct NewReplay<'a> {
    /// `rpl_…`.
    pub id: &'a str,
    /// The endpoint.
    pub endpoint_id: &'a str,
    /// Its workspace.
    pub workspace_id: &'a str,
    /// From …
    pub since: DateTime<Utc>,
    /// … to (excluded).
    pub until: DateTime<Utc>,
    /// Only the failed ones.
    pub failed_only: bool,
    /// The count answered.
    pub total: i64,
}

macro_rules! replay_from_row {
    ($row:expr) => {{
        let row = $row;
        Replay {
            id: row.try_get("id")?,
            endpoint_id: row.try_get("endpoint_id")?,
            since: to_time(row.try_get("since")?),
            until: to_time(row.try_get("until")?),
            failed_only: row.try_get("failed_only")?,
            total: row.try_get("total")?,
            created: row.try_get("created")?,
            created_at: to_time(row.try_get("created_at")?),
            finished_at: opt_time(row.try_get("finished_at")?),
        }
    }};
}

const PG_COLUMNS: &str = "id, endpoint_id, failed_only, total, created, \
     (extract(epoch FROM since) * 1000)::bigint AS since, \
     (extract(epoch FROM until) * 1000)::bigint AS until, \
     (extract(epoch FROM created_at) * 1000)::bigint AS created_at, \
     (extract(epoch FROM finished_at) * 1000)::bigint AS finished_at";
const SQLITE_COLUMNS: &str =
    "id, endpoint_id, failed_only, total, created, since, until, created_at, finished_at";

/// The next deliveries of a replay (`$1` endpoint, `$2`/`$3` the range, `$4` failed only,
/// `$5` the last event row done, `$6` how many): the same set `webhook_replay_set` counts.
const PAGE: &str = "SELECT d.id, d.event_row FROM hangar_webhook_deliveries d \
     LEFT JOIN hangar_jobs j ON j.id = d.job_id \
     WHERE d.endpoint_id = $1 AND d.created_at >= $2 AND d.created_at < $3 \
       AND d.expunged_at IS NULL AND d.state <> 'held' \
       AND ($4 = false OR d.state = 'failed' \
           OR (d.state = 'pending' AND j.state IN ('failed', 'cancelled'))) \
       AND d.event_row > $5 \
     ORDER BY d.event_row LIMIT $6";

/// What a batch reads of its replay (endpoint, since, until, failed only, last row, finished).
type PgReplayRow = (String, DateTime<Utc>, DateTime<Utc>, bool, i64, bool);

impl Store {
    /// Stores a replay and enqueues its job (on `route`'s queue), in one transaction.
    pub async fn start_webhook_replay(
        &self,
        new: &NewReplay<'_>,
        route: &Route,
    ) -> Result<(), StoreError> {
        let args = serde_json::json!({"replay_id": new.id}).to_string();
        let key = format!("hangar:webhook_replay:{}", new.id);
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let job: i64 = sqlx::query_scalar(
                    "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, \
                         run_at, workspace_id, idempotency_key) \
                     VALUES ($1, $2, $3::jsonb, 'available', $4, 0, now(), $5, $6) RETURNING id",
                )
                .bind(REPLAY_KIND)
                .bind(&route.queue)
                .bind(&args)
                .bind(route.max_attempts)
                .bind(new.workspace_id)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_replays (id, endpoint_id, workspace_id, since, \
                         until, failed_only, total, job_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(new.id)
                .bind(new.endpoint_id)
                .bind(new.workspace_id)
                .bind(new.since)
                .bind(new.until)
                .bind(new.failed_only)
                .bind(new.total)
                .bind(job)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let mut tx = pool.begin().await?;
                let job: i64 = sqlx::query_scalar(
                    "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, \
                         run_at, created_at, updated_at, workspace_id, idempotency_key) \
                     VALUES ($1, $2, $3, 'available', $4, 0, $5, $5, $5, $6, $7) RETURNING id",
                )
                .bind(REPLAY_KIND)
                .bind(&route.queue)
                .bind(&args)
                .bind(route.max_attempts)
                .bind(now)
                .bind(new.workspace_id)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_replays (id, endpoint_id, workspace_id, since, \
                         until, failed_only, total, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(new.id)
                .bind(new.endpoint_id)
                .bind(new.workspace_id)
                .bind(new.since.timestamp_millis())
                .bind(new.until.timestamp_millis())
                .bind(new.failed_only)
                .bind(new.total)
                .bind(job)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        self.wakeups().wake(&route.queue);
        Ok(())
    }

    /// An endpoint's replays, newest first, at most `limit`.
    pub async fn webhook_replays(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<Replay>, StoreError> {
        self.replays_where("endpoint_id = $1", endpoint_id, limit)
            .await
    }

    /// One replay.
    pub async fn webhook_replay(&self, id: &str) -> Result<Option<Replay>, StoreError> {
        Ok(self.replays_where("id = $1", id, 1).await?.pop())
    }

    async fn replays_where(
        &self,
        filter: &str,
        arg: &str,
        limit: i64,
    ) -> Result<Vec<Replay>, StoreError> {
        let mut replays = Vec::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {PG_COLUMNS} FROM hangar_webhook_replays WHERE {filter} \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(arg)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                {
                    replays.push(replay_from_row!(&row));
                }
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_COLUMNS} FROM hangar_webhook_replays WHERE {filter} \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(arg)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                {
                    replays.push(replay_from_row!(&row));
                }
            }
        }
        Ok(replays)
    }

    /// Sends the next `batch` deliveries of replay `id` again (each a new job on `route`'s
    /// queue) and records the progress, in one transaction; the replay after it (`None`
    /// when it is gone: its endpoint was deleted). A batch shorter than `batch` finishes it.
    pub async fn advance_webhook_replay(
        &self,
        id: &str,
        batch: i64,
        route: &Route,
    ) -> Result<Option<Replay>, StoreError> {
        let sent = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row: Option<PgReplayRow> = sqlx::query_as(
                    "SELECT endpoint_id, since, until, failed_only, last_row, \
                             finished_at IS NOT NULL \
                         FROM hangar_webhook_replays WHERE id = $1 FOR UPDATE",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((endpoint, since, until, failed_only, last_row, finished)) = row else {
                    return Ok(None);
                };
                if finished {
                    0
                } else {
                    let page: Vec<(String, i64)> = sqlx::query_as(PAGE)
                        .bind(&endpoint)
                        .bind(since)
                        .bind(until)
                        .bind(failed_only)
                        .bind(last_row)
                        .bind(batch)
                        .fetch_all(&mut *tx)
                        .await?;
                    let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
                    let sent = if ids.is_empty() {
                        0
                    } else {
                        sqlx::query(PG_REQUEUE)
                            .bind(&ids)
                            .bind(crate::webhooks::KIND)
                            .bind(&route.queue)
                            .bind(route.max_attempts)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    };
                    let last = page.last().map_or(last_row, |(_, row)| *row);
                    sqlx::query(
                        "UPDATE hangar_webhook_replays SET created = created + $2, \
                             last_row = $3, \
                             finished_at = CASE WHEN $4 THEN now() ELSE NULL END \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(i64::try_from(sent).unwrap_or(i64::MAX))
                    .bind(last)
                    .bind(i64::try_from(page.len()).unwrap_or(0) < batch)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    sent
                }
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                // The first statement writes: the transaction holds the write lock from here.
                sqlx::query("UPDATE hangar_webhook_replays SET created = created WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let row: Option<(String, i64, i64, bool, i64, bool)> = sqlx::query_as(
                    "SELECT endpoint_id, since, until, failed_only, last_row, \
                         finished_at IS NOT NULL \
                     FROM hangar_webhook_replays WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((endpoint, since, until, failed_only, last_row, finished)) = row else {
                    return Ok(None);
                };
                if finished {
                    0
                } else {
                    let page: Vec<(String, i64)> = sqlx::query_as(PAGE)
                        .bind(&endpoint)
                        .bind(since)
                        .bind(until)
                        .bind(failed_only)
                        .bind(last_row)
                        .bind(batch)
                        .fetch_all(&mut *tx)
                        .await?;
                    let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
                    let now = now_ms();
                    let sent = sqlite_requeue(&mut tx, &ids, route, now).await?;
                    let last = page.last().map_or(last_row, |(_, row)| *row);
                    let done = i64::try_from(page.len()).unwrap_or(0) < batch;
                    sqlx::query(
                        "UPDATE hangar_webhook_replays SET created = created + $2, \
                             last_row = $3, finished_at = $4 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(i64::try_from(sent).unwrap_or(i64::MAX))
                    .bind(last)
                    .bind(done.then_some(now))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    sent
                }
            }
        };
        if sent > 0 {
            self.wakeups().wake(&route.queue);
        }
        self.webhook_replay(id).await
    }
}
