//! The webhook fan-out: for events just stored, one delivery per subscribed endpoint of their
//! workspace, in the caller's transaction (nothing stored without its deliveries, no delivery
//! without its event), and one `webhook_delivery` job per delivery of an enabled, unpaused
//! endpoint; a paused or disabled endpoint's deliveries are `held` (no job). A delivery is
//! unique per (event row, endpoint), and only new event rows fan out, so the same event twice
//! creates nothing. Also the (re)queueing of existing deliveries: resend, replay, release.
//!
//! On PostgreSQL the events, their deliveries and their jobs are one statement (`events.rs`
//! with [`pg_fan_out_ctes`]): the delivery rows take their job ids from the jobs' identity
//! sequence and the jobs are inserted from the deliveries' `RETURNING`. SQLite (one writer,
//! local) inserts the deliveries, their jobs, then links them, after the events.

use sqlx::SqliteConnection;

use super::rows::now_ms;
use super::{Store, StoreError};
use crate::db::Pool;
use crate::routes::Route;
use crate::webhooks::{KIND, SAFETY_RESOURCES_SQL};

/// Whether endpoint `ep` takes event `e` (PostgreSQL): its filter names the type, or it is
/// "all" and the type is not a safety type unless the creator could subscribe to those.
macro_rules! pg_subscribed {
    () => {
        "(e.type = ANY(ep.event_types) OR (cardinality(ep.event_types) = 0 AND \
          (ep.safety_allowed OR split_part(e.type, '.', 1) NOT IN ({safety}))))"
    };
}

/// The same for SQLite (the filter is a JSON array).
macro_rules! sqlite_subscribed {
    () => {
        "(EXISTS (SELECT 1 FROM json_each(ep.event_types) t WHERE t.value = e.type) OR \
          (ep.event_types = '[]' AND (ep.safety_allowed OR \
           substr(e.type, 1, instr(e.type, '.') - 1) NOT IN ({safety}))))"
    };
}

/// The fan-out as two CTEs over a CTE `e` of the new event rows (`id`, `workspace_id`,
/// `event_id`, `type`), PostgreSQL: `d` the deliveries, `j` their jobs (`RETURNING 1`). The
/// job kind, queue and attempt budget are the parameters `$kind`, `$queue`, `$max`.
pub(super) fn pg_fan_out_ctes(kind: usize, queue: usize, max: usize) -> String {
    format!(
        concat!(
            "d AS (INSERT INTO hangar_webhook_deliveries (id, endpoint_id, workspace_id, \
                 event_row, event_id, event_type, state, job_id) \
             SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), ep.id, e.workspace_id, \
                 e.id, e.event_id, e.type, \
                 CASE WHEN ep.enabled AND ep.paused_at IS NULL THEN 'pending' ELSE 'held' END, \
                 CASE WHEN ep.enabled AND ep.paused_at IS NULL \
                     THEN nextval(pg_get_serial_sequence('hangar_jobs', 'id')) END \
             FROM e JOIN hangar_webhook_endpoints ep ON ep.workspace_id = e.workspace_id \
             WHERE ",
            pg_subscribed!(),
            " ORDER BY e.id, ep.id \
             ON CONFLICT DO NOTHING RETURNING id, workspace_id, job_id), \
             j AS (INSERT INTO hangar_jobs (id, kind, queue, args, state, max_attempts, \
                 priority, run_at, workspace_id, idempotency_key) OVERRIDING SYSTEM VALUE \
             SELECT job_id, ${kind}, ${queue}, jsonb_build_object('delivery_id', id), \
                 'available', ${max}, 0, now(), workspace_id, \
                 'hangar:webhook:' || id || ':' || job_id \
             FROM d WHERE job_id IS NOT NULL ORDER BY job_id RETURNING 1)"
        ),
        safety = SAFETY_RESOURCES_SQL,
        kind = kind,
        queue = queue,
        max = max,
    )
}

/// Fans out the new event rows `rows`; returns how many jobs it created.
pub(crate) async fn sqlite_fan_out(
    conn: &mut SqliteConnection,
    rows: &[i64],
    route: &Route,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    super::event_subscriptions::sqlite_subscribed_jobs(conn, rows).await?;
    let now = now_ms();
    let rows = serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned());
    let sql = format!(
        concat!(
            "INSERT INTO hangar_webhook_deliveries (id, endpoint_id, workspace_id, event_row, \
                 event_id, event_type, state, created_at, updated_at) \
             SELECT 'dlv_' || lower(hex(randomblob(16))), ep.id, e.workspace_id, e.id, \
                 e.event_id, e.type, \
                 CASE WHEN ep.enabled AND ep.paused_at IS NULL THEN 'pending' ELSE 'held' END, \
                 $2, $2 \
             FROM hangar_events e \
             JOIN hangar_webhook_endpoints ep ON ep.workspace_id = e.workspace_id \
             WHERE e.id IN (SELECT value FROM json_each($1)) AND ",
            sqlite_subscribed!(),
            " ORDER BY e.id, ep.id ON CONFLICT DO NOTHING"
        ),
        safety = SAFETY_RESOURCES_SQL
    );
    let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&rows)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if inserted == 0 {
        return Ok(0);
    }
    let pending = "state = 'pending' AND job_id IS NULL \
                   AND event_row IN (SELECT value FROM json_each($1))";
    sqlite_enqueue_for(conn, pending, &rows, route, now).await
}

/// SQLite: one job for each delivery that `filter` selects (over `$1`), linked to it, the
/// delivery set `pending`; returns how many.
async fn sqlite_enqueue_for(
    conn: &mut SqliteConnection,
    filter: &str,
    arg: &str,
    route: &Route,
    now: i64,
) -> Result<u64, StoreError> {
    // A key of this call only: `hangar:webhook:<delivery>:<nonce>`.
    let nonce = format!("{now}{:06}", fastrand::u32(..1_000_000));
    let insert = format!(
        "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, priority, run_at, \
             created_at, updated_at, workspace_id, idempotency_key) \
         SELECT $2, $3, json_object('delivery_id', id), 'available', $4, 0, $5, $5, $5, \
             workspace_id, 'hangar:webhook:' || id || ':' || $6 \
         FROM hangar_webhook_deliveries WHERE {filter} ORDER BY event_row, id"
    );
    let jobs = sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(arg)
        .bind(KIND)
        .bind(&route.queue)
        .bind(route.max_attempts)
        .bind(now)
        .bind(&nonce)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let link = format!(
        "UPDATE hangar_webhook_deliveries SET state = 'pending', updated_at = $5, \
             job_id = (SELECT j.id FROM hangar_jobs j WHERE COALESCE(j.workspace_id, '') = \
                 hangar_webhook_deliveries.workspace_id AND j.kind = $2 \
                 AND j.idempotency_key = 'hangar:webhook:' || hangar_webhook_deliveries.id \
                     || ':' || $6) \
         WHERE {filter}"
    );
    sqlx::query(sqlx::AssertSqlSafe(link))
        .bind(arg)
        .bind(KIND)
        .bind(&route.queue)
        .bind(route.max_attempts)
        .bind(now)
        .bind(&nonce)
        .execute(&mut *conn)
        .await?;
    Ok(jobs)
}

/// Sends the deliveries `$1` again as new jobs (`$2` kind, `$3` queue, `$4` attempts):
/// they become `pending` with the new job (PostgreSQL).
pub(super) const PG_REQUEUE: &str = "WITH d AS (UPDATE hangar_webhook_deliveries \
         SET state = 'pending', updated_at = now(), \
             job_id = nextval(pg_get_serial_sequence('hangar_jobs', 'id')) \
         WHERE id = ANY($1) AND expunged_at IS NULL \
         RETURNING id, workspace_id, job_id, event_row) \
     INSERT INTO hangar_jobs (id, kind, queue, args, state, max_attempts, \
         priority, run_at, workspace_id, idempotency_key) OVERRIDING SYSTEM VALUE \
     SELECT job_id, $2, $3, jsonb_build_object('delivery_id', id), 'available', \
         $4, 0, now(), workspace_id, 'hangar:webhook:' || id || ':' || job_id \
     FROM d ORDER BY event_row, id";

/// [`PG_REQUEUE`] on SQLite, in the caller's transaction.
pub(super) async fn sqlite_requeue(
    conn: &mut SqliteConnection,
    ids: &[String],
    route: &Route,
    now: i64,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    let filter = "expunged_at IS NULL AND id IN (SELECT value FROM json_each($1))";
    sqlite_enqueue_for(conn, filter, &ids, route, now).await
}

impl Store {
    /// Sends the deliveries `ids` again, each as a new job (resend, replay, release of held
    /// deliveries): they become `pending` with the new job; returns how many.
    pub async fn requeue_webhook_deliveries(
        &self,
        ids: &[String],
        route: &Route,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(PG_REQUEUE)
                .bind(ids)
                .bind(KIND)
                .bind(&route.queue)
                .bind(route.max_attempts)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let n = sqlite_requeue(&mut tx, ids, route, now_ms()).await?;
                tx.commit().await?;
                n
            }
        };
        if n > 0 {
            self.wakeups().wake(&route.queue);
        }
        Ok(n)
    }
}
