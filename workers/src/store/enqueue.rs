//! Inserting jobs: one, many in one statement, many with every job's id by idempotency key,
//! and the ingress batch (events and jobs in one transaction). The connection-level
//! functions also run inside a caller's own transaction (see [`crate::client::Conn`]). An
//! idempotency key is unique per (workspace, kind): a taken key returns the existing job.
//! PostgreSQL passes batches as arrays read with `UNNEST`, SQLite as one JSON array read with
//! `json_each`.

use sqlx::{PgConnection, Row, SqliteConnection};

use super::events::{pg_insert_events, sqlite_insert_events};
use super::rows::now_ms;
use super::webhook_fanout::sqlite_fan_out;
use super::{Ingested, Keyed, Store, StoreError};
use crate::db::Pool;
use crate::job::{Enqueued, JobId, JobState, NewJob};
use crate::routes::Route;
use crate::wire::EventEnvelope;

impl Store {
    /// Enqueues one job; with an idempotency key that already exists for its workspace and
    /// kind, returns that job instead.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        let enqueued = match self.pool() {
            Pool::Postgres(pool) => pg_enqueue(&mut *pool.acquire().await?, job).await?,
            Pool::Sqlite(pool) => sqlite_enqueue(&mut *pool.acquire().await?, job).await?,
        };
        if enqueued.created {
            self.wakeups().wake(&job.queue);
        }
        Ok(enqueued)
    }

    /// Enqueues many jobs in one statement (jobs whose idempotency key exists are skipped).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let n = match self.pool() {
            Pool::Postgres(pool) => pg_enqueue_many(&mut *pool.acquire().await?, jobs).await?,
            Pool::Sqlite(pool) => sqlite_enqueue_many(&mut *pool.acquire().await?, jobs).await?,
        };
        self.wake_queues(jobs);
        Ok(n)
    }

    /// Writes a batch of ingress entries in one transaction: events once per
    /// `(workspace_id, id)` with their webhook deliveries (jobs routed by `webhooks`, the
    /// route of `webhook_delivery`), jobs once per (workspace, kind, idempotency key). Nothing
    /// is written unless all of it is (the Redis consumer acknowledges the entries only after
    /// this returns).
    pub async fn ingest(
        &self,
        events: &[EventEnvelope],
        jobs: &[NewJob],
        webhooks: &Route,
    ) -> Result<Ingested, StoreError> {
        let (events_new, jobs_new, deliveries) = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let (e, d) = pg_insert_events(&mut tx, events, webhooks).await?;
                let j = pg_enqueue_many(&mut tx, jobs).await?;
                tx.commit().await?;
                (e, j, d)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let e = sqlite_insert_events(&mut tx, events).await?;
                let d = sqlite_fan_out(&mut tx, &e, webhooks).await?;
                let j = sqlite_enqueue_many(&mut tx, jobs).await?;
                tx.commit().await?;
                (e.len() as u64, j, d)
            }
        };
        if jobs_new > 0 {
            self.wake_queues(jobs);
        }
        if deliveries > 0 {
            self.wakeups().wake(&webhooks.queue);
        }
        Ok(Ingested {
            events_new,
            events_duplicate: events.len() as u64 - events_new,
            jobs_new,
            jobs_duplicate: jobs.len() as u64 - jobs_new,
        })
    }

    /// Wakes the pools of every queue of `jobs`, once each.
    fn wake_queues(&self, jobs: &[NewJob]) {
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            self.wakeups().wake(queue);
        }
    }
}

// One job. The state is `available` unless `run_at` is in the future.

pub(crate) async fn pg_enqueue(
    conn: &mut PgConnection,
    job: &NewJob,
) -> Result<Enqueued, StoreError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             workspace_id, idempotency_key) \
         VALUES ($1, $2, $3, \
             CASE WHEN $4::timestamptz IS NULL OR $4 <= now() THEN 'available' ELSE 'scheduled' END, \
             $5, $6, COALESCE($4, now()), $7, $8) \
         ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.queue)
    .bind(&job.args)
    .bind(job.run_at)
    .bind(job.max_attempts)
    .bind(job.priority)
    .bind(&job.workspace_id)
    .bind(&job.idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok(Enqueued {
            id: JobId(id),
            created: true,
        });
    }
    // The caller's own job: the key is taken in this workspace (and kind), never another's.
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM hangar_jobs \
         WHERE COALESCE(workspace_id, '') = COALESCE($1, '') AND kind = $2 AND idempotency_key = $3",
    )
    .bind(&job.workspace_id)
    .bind(&job.kind)
    .bind(&job.idempotency_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Enqueued {
        id: JobId(id),
        created: false,
    })
}

pub(crate) async fn sqlite_enqueue(
    conn: &mut SqliteConnection,
    job: &NewJob,
) -> Result<Enqueued, StoreError> {
    let now = now_ms();
    let run_at = job.run_at.map_or(now, |t| t.timestamp_millis());
    let state = if run_at <= now {
        JobState::Available
    } else {
        JobState::Scheduled
    };
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10) \
         ON CONFLICT (COALESCE(workspace_id, ''), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.queue)
    .bind(job.args.to_string())
    .bind(state.as_str())
    .bind(job.max_attempts)
    .bind(job.priority)
    .bind(run_at)
    .bind(now)
    .bind(&job.workspace_id)
    .bind(&job.idempotency_key)
    // Stepped to its end, not stopped at the first row: an autocommit statement with
    // RETURNING commits only when it finishes, so a failed commit (a full disk) surfaces
    // here instead of the id of a row that was rolled back.
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .next();
    if let Some(id) = inserted {
        return Ok(Enqueued {
            id: JobId(id),
            created: true,
        });
    }
    // The caller's own job: the key is taken in this workspace (and kind), never another's.
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM hangar_jobs \
         WHERE COALESCE(workspace_id, '') = COALESCE(?1, '') AND kind = ?2 AND idempotency_key = ?3",
    )
    .bind(&job.workspace_id)
    .bind(&job.kind)
    .bind(&job.idempotency_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Enqueued {
        id: JobId(id),
        created: false,
    })
}

// Many jobs in one statement (existing workspace + kind + idempotency key skipped).

macro_rules! pg_insert_many_sql {
    () => {
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             workspace_id, idempotency_key) \
         SELECT kind, queue, args, \
             CASE WHEN run_at IS NULL OR run_at <= now() THEN 'available' ELSE 'scheduled' END, \
             max_attempts, priority, COALESCE(run_at, now()), workspace_id, idempotency_key \
         FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::int[], \
             $6::smallint[], $7::text[], $8::text[]) \
             AS t(kind, queue, args, run_at, max_attempts, priority, workspace_id, idempotency_key) \
         ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
}

macro_rules! sqlite_insert_many_sql {
    () => {
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
             value ->> 5, value ->> 6, ?2, ?2, value ->> 7, value ->> 8 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (COALESCE(workspace_id, ''), kind, idempotency_key) \
             WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
}

/// The jobs as the arrays of `pg_insert_many_sql!`, in its parameter order.
fn pg_bind_many<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    jobs: &'q [NewJob],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| &j.args).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.workspace_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
}

/// The jobs as one JSON array of rows for `json_each`, with the time they were stamped.
fn sqlite_job_rows(jobs: &[NewJob]) -> (String, i64) {
    let now = now_ms();
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            let run_at = job.run_at.map_or(now, |t| t.timestamp_millis());
            let state = if run_at <= now {
                JobState::Available
            } else {
                JobState::Scheduled
            };
            serde_json::json!([
                job.kind,
                job.queue,
                job.args.to_string(),
                state.as_str(),
                job.max_attempts,
                job.priority,
                run_at,
                job.workspace_id,
                job.idempotency_key
            ])
        })
        .collect();
    (serde_json::Value::Array(rows).to_string(), now)
}

/// Inserts jobs in one statement; returns how many were inserted.
pub(crate) async fn pg_enqueue_many(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<u64, StoreError> {
    let result = pg_bind_many(sqlx::query(pg_insert_many_sql!()), jobs)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

/// Inserts jobs in one statement; returns how many were inserted.
pub(crate) async fn sqlite_enqueue_many(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
) -> Result<u64, StoreError> {
    let (rows, now) = sqlite_job_rows(jobs);
    let result = sqlx::query(sqlite_insert_many_sql!())
        .bind(rows)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

// Many jobs with each job's id by (workspace, kind, idempotency key), the existing job's
// where the key was taken. Every job must have a key.

/// Adds `(id, workspace_id, kind, idempotency_key)` rows to `keyed`.
fn keyed_rows<R>(keyed: &mut Keyed, rows: &[R]) -> Result<(), StoreError>
where
    R: Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    for row in rows {
        keyed.insert(
            row.try_get("workspace_id")?,
            row.try_get("kind")?,
            row.try_get("idempotency_key")?,
            row.try_get("id")?,
        );
    }
    Ok(())
}

pub(crate) async fn pg_enqueue_keyed(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<Keyed, StoreError> {
    let rows = pg_bind_many(
        sqlx::query(concat!(
            pg_insert_many_sql!(),
            " RETURNING id, workspace_id, kind, idempotency_key"
        )),
        jobs,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut keyed = Keyed::default();
    keyed_rows(&mut keyed, &rows)?;
    keyed.created = rows.len() as u64;
    if keyed.ids.len() < jobs.len() {
        let workspaces: Vec<Option<&str>> =
            jobs.iter().map(|j| j.workspace_id.as_deref()).collect();
        let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
        let existing = sqlx::query(
            "SELECT j.id, j.workspace_id, j.kind, j.idempotency_key FROM hangar_jobs j \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(workspace_id, kind, key) \
               ON COALESCE(j.workspace_id, '') = COALESCE(k.workspace_id, '') \
              AND j.kind = k.kind AND j.idempotency_key = k.key",
        )
        .bind(workspaces)
        .bind(kinds)
        .bind(keys)
        .fetch_all(&mut *conn)
        .await?;
        keyed_rows(&mut keyed, &existing)?;
    }
    Ok(keyed)
}

pub(crate) async fn sqlite_enqueue_keyed(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
) -> Result<Keyed, StoreError> {
    let (rows, now) = sqlite_job_rows(jobs);
    let inserted = sqlx::query(concat!(
        sqlite_insert_many_sql!(),
        " RETURNING id, workspace_id, kind, idempotency_key"
    ))
    .bind(&rows)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut keyed = Keyed::default();
    keyed_rows(&mut keyed, &inserted)?;
    keyed.created = inserted.len() as u64;
    if keyed.ids.len() < jobs.len() {
        let existing = sqlx::query(
            "SELECT j.id, j.workspace_id, j.kind, j.idempotency_key FROM hangar_jobs j \
             JOIN json_each(?1) AS k \
               ON COALESCE(j.workspace_id, '') = COALESCE(k.value ->> 7, '') \
              AND j.kind = k.value ->> 0 AND j.idempotency_key = k.value ->> 8",
        )
        .bind(&rows)
        .fetch_all(&mut *conn)
        .await?;
        keyed_rows(&mut keyed, &existing)?;
    }
    Ok(keyed)
}
