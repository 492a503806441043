//! The gate of a delivery attempt: whether it may send now under its endpoint's limits,
//! counted in the database so every worker process shares them (`hangar_webhook_inflight`,
//! one row per request out, with an expiry that frees the slot of a process that died).
//!
//! One transaction per ask, holding the endpoint row (PostgreSQL `FOR NO KEY UPDATE`; SQLite's
//! single writer): the circuit (open: wait until `circuit_open_until`; then one probe at a
//! time), the ordering key (an earlier open delivery of the same endpoint with the same key
//! in its event's data: wait), the endpoint's concurrency, the workspace's share of the
//! slots, the retry lane's share, the rate (GCRA over `rate_next_at`, a burst of one
//! second's worth). A delivery that must wait names why in `waiting`; a released slot wakes
//! the oldest waiting delivery of its endpoint (all of them, up to the concurrency, when a
//! probe closes the circuit). The workspace and retry counts are not serialized across
//! endpoints: two processes may overshoot them by one slot each, never the endpoint's own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

mod rules;

pub use rules::ordering_paths;
use rules::{Facts, decide};

use super::rows::{millis, now_ms};
use super::{Store, StoreError};
use crate::db::Pool;

/// What a delivery asks the gate.
#[derive(Debug, Clone)]
pub struct GateAsk<'a> {
    /// The delivery.
    pub delivery_id: &'a str,
    /// Its endpoint.
    pub endpoint_id: &'a str,
    /// Whether this attempt is a retry (the retry lane's share applies).
    pub retry: bool,
    /// How long a slot stays taken if its holder never releases it.
    pub slot_ttl: Duration,
    /// Slots one workspace may hold at once, over all its endpoints.
    pub workspace_share: i64,
    /// Slots retries may hold at once, over every endpoint.
    pub retry_share: i64,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Send now; `probe` when this is the one request through a half-open circuit.
    Go {
        /// Whether it is the circuit's probe.
        probe: bool,
    },
    /// Do not send: ask again after this long (sooner if woken).
    Wait {
        /// How long.
        after: Duration,
        /// `circuit`, `ordering`, `concurrency`, `workspace`, `retry_lane` or `rate`.
        reason: &'static str,
    },
}

macro_rules! facts_from_row {
    ($row:expr) => {{
        let row = $row;
        Facts {
            max_in_flight: row.try_get("max_in_flight")?,
            rate: row.try_get("rate_limit_per_s")?,
            ordering_path: row.try_get("ordering_key_path")?,
            circuit: row.try_get("circuit_state")?,
            open_until: row.try_get("open_until")?,
            rate_next_at: row.try_get("rate_next_at")?,
            endpoint_slots: row.try_get("endpoint_slots")?,
            probes: row.try_get("probes")?,
            workspace_slots: row.try_get("workspace_slots")?,
            retry_slots: row.try_get("retry_slots")?,
            event_row: row.try_get("event_row")?,
        }
    }};
}

const COUNTS: &str = "(SELECT count(*) FROM hangar_webhook_inflight s \
         WHERE s.endpoint_id = ep.id) AS endpoint_slots, \
     (SELECT count(*) FROM hangar_webhook_inflight s \
         WHERE s.endpoint_id = ep.id AND s.probe) AS probes, \
     (SELECT count(*) FROM hangar_webhook_inflight s \
         WHERE s.workspace_id = ep.workspace_id) AS workspace_slots, \
     (SELECT count(*) FROM hangar_webhook_inflight s WHERE s.retry) AS retry_slots, \
     (SELECT event_row FROM hangar_webhook_deliveries WHERE id = $2) AS event_row";

/// An earlier delivery of the same endpoint, still open, whose event has the same value at
/// the ordering path (`$3`) as this delivery's event (`$2` its row): its job's `run_at`.
const PREDECESSOR: &str = "SELECT {run_at} AS run_at FROM hangar_webhook_deliveries d \
     JOIN hangar_events e ON e.id = d.event_row LEFT JOIN hangar_jobs j ON j.id = d.job_id \
     WHERE d.endpoint_id = $1 AND d.event_row < $2 AND d.state IN ('pending', 'held') \
       AND d.expunged_at IS NULL \
       AND (d.state = 'held' OR j.state IN ('available', 'scheduled', 'retryable', 'running')) \
       AND {key_of_e} = (SELECT {key_of_me} FROM hangar_events me WHERE me.id = $2) \
     ORDER BY d.event_row LIMIT 1";

impl Store {
    /// Asks the gate for a slot (see the module doc); a `Go` holds a slot until
    /// [`Store::record_webhook_attempt`] or [`Store::release_webhook_slot`] frees it.
    pub async fn webhook_gate(&self, ask: &GateAsk<'_>) -> Result<Gate, StoreError> {
        let now = now_ms();
        let ttl = millis(ask.slot_ttl);
        let Some(decision) = (match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_else(Utc::now);
                let sql = format!(
                    "SELECT ep.max_in_flight, ep.rate_limit_per_s, ep.ordering_key_path, \
                         ep.circuit_state, \
                         (extract(epoch FROM ep.circuit_open_until) * 1000)::bigint AS open_until, \
                         (extract(epoch FROM ep.rate_next_at) * 1000)::bigint AS rate_next_at, \
                         {COUNTS} \
                     FROM hangar_webhook_endpoints ep WHERE ep.id = $1"
                );
                // The lock first, the counts in a later statement: a statement that waited
                // for the lock would count with the snapshot it took before waiting.
                sqlx::query(
                    "SELECT 1 FROM hangar_webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE",
                )
                .bind(ask.endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM hangar_webhook_inflight WHERE expires_at < $1 OR delivery_id = $2",
                )
                .bind(at)
                .bind(ask.delivery_id)
                .execute(&mut *tx)
                .await?;
                let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ask.endpoint_id)
                    .bind(ask.delivery_id)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(Gate::Go { probe: false });
                };
                let facts = facts_from_row!(&row);
                let predecessor = match (&facts.ordering_path, facts.event_row) {
                    (Some(path), Some(event_row)) => {
                        let (pg_path, _) = ordering_paths(path);
                        let sql = PREDECESSOR
                            .replace("{run_at}", "(extract(epoch FROM j.run_at) * 1000)::bigint")
                            .replace("{key_of_e}", "(e.body::jsonb #>> $3)")
                            .replace("{key_of_me}", "(me.body::jsonb #>> $3)");
                        sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                            .bind(ask.endpoint_id)
                            .bind(event_row)
                            .bind(pg_path)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    _ => None,
                };
                let decision = decide(ask, &facts, now, predecessor);
                let ms_time = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms);
                if decision.half_open {
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET circuit_state = 'half_open' \
                         WHERE id = $1",
                    )
                    .bind(ask.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(next) = decision.rate_next_at {
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET rate_next_at = $2 WHERE id = $1",
                    )
                    .bind(ask.endpoint_id)
                    .bind(ms_time(next))
                    .execute(&mut *tx)
                    .await?;
                }
                let waiting = match &decision.gate {
                    Gate::Go { probe } => {
                        sqlx::query(
                            "INSERT INTO hangar_webhook_inflight (delivery_id, endpoint_id, \
                                 workspace_id, retry, probe, expires_at) \
                             SELECT $1, endpoint_id, workspace_id, $2, $3, $4 \
                             FROM hangar_webhook_deliveries WHERE id = $1",
                        )
                        .bind(ask.delivery_id)
                        .bind(ask.retry)
                        .bind(*probe)
                        .bind(ms_time(now + ttl))
                        .execute(&mut *tx)
                        .await?;
                        None
                    }
                    Gate::Wait { reason, .. } => Some(*reason),
                };
                sqlx::query("UPDATE hangar_webhook_deliveries SET waiting = $2 WHERE id = $1")
                    .bind(ask.delivery_id)
                    .bind(waiting)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some(decision)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                // The first statement writes: the transaction holds the write lock from here.
                sqlx::query(
                    "DELETE FROM hangar_webhook_inflight WHERE expires_at < $1 OR delivery_id = $2",
                )
                .bind(now)
                .bind(ask.delivery_id)
                .execute(&mut *tx)
                .await?;
                let sql = format!(
                    "SELECT ep.max_in_flight, ep.rate_limit_per_s, ep.ordering_key_path, \
                         ep.circuit_state, ep.circuit_open_until AS open_until, ep.rate_next_at, \
                         {COUNTS} \
                     FROM hangar_webhook_endpoints ep WHERE ep.id = $1"
                );
                let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ask.endpoint_id)
                    .bind(ask.delivery_id)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(Gate::Go { probe: false });
                };
                let facts = facts_from_row!(&row);
                let predecessor = match (&facts.ordering_path, facts.event_row) {
                    (Some(path), Some(event_row)) => {
                        let (_, sqlite_path) = ordering_paths(path);
                        let sql = PREDECESSOR
                            .replace("{run_at}", "j.run_at")
                            .replace("{key_of_e}", "json_extract(e.body, $3)")
                            .replace("{key_of_me}", "json_extract(me.body, $3)");
                        sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                            .bind(ask.endpoint_id)
                            .bind(event_row)
                            .bind(sqlite_path)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    _ => None,
                };
                let decision = decide(ask, &facts, now, predecessor);
                if decision.half_open {
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET circuit_state = 'half_open' \
                         WHERE id = $1",
                    )
                    .bind(ask.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(next) = decision.rate_next_at {
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET rate_next_at = $2 WHERE id = $1",
                    )
                    .bind(ask.endpoint_id)
                    .bind(next)
                    .execute(&mut *tx)
                    .await?;
                }
                let waiting = match &decision.gate {
                    Gate::Go { probe } => {
                        sqlx::query(
                            "INSERT INTO hangar_webhook_inflight (delivery_id, endpoint_id, \
                                 workspace_id, retry, probe, expires_at) \
                             SELECT $1, endpoint_id, workspace_id, $2, $3, $4 \
                             FROM hangar_webhook_deliveries WHERE id = $1",
                        )
                        .bind(ask.delivery_id)
                        .bind(ask.retry)
                        .bind(*probe)
                        .bind(now + ttl)
                        .execute(&mut *tx)
                        .await?;
                        None
                    }
                    Gate::Wait { reason, .. } => Some(*reason),
                };
                sqlx::query("UPDATE hangar_webhook_deliveries SET waiting = $2 WHERE id = $1")
                    .bind(ask.delivery_id)
                    .bind(waiting)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some(decision)
            }
        }) else {
            return Ok(Gate::Go { probe: false });
        };
        Ok(decision.gate)
    }

    /// Frees a delivery's slot without an attempt (its handler stopped before sending) and
    /// wakes the next waiting delivery of its endpoint.
    pub async fn release_webhook_slot(
        &self,
        delivery_id: &str,
        endpoint_id: &str,
    ) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                release_pg(&mut tx, delivery_id, endpoint_id, None, 0).await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                release_sqlite(&mut tx, delivery_id, endpoint_id, None, 0).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// How long an open circuit first waits before its probe.
pub const CIRCUIT_COOLDOWN: Duration = Duration::from_secs(60);
/// The longest wait of an open circuit.
pub const CIRCUIT_COOLDOWN_MAX: Duration = Duration::from_secs(43_200);

const CLOSE: &str = "UPDATE hangar_webhook_endpoints SET circuit_state = 'closed', \
     circuit_open_until = NULL WHERE id = $1 AND circuit_state <> 'closed' \
     RETURNING max_in_flight";
const OPEN: &str = "UPDATE hangar_webhook_endpoints SET circuit_state = 'open', \
     circuit_opened_at = $2, circuit_open_until = $3 \
     WHERE id = $1 AND circuit_state = 'closed' AND failure_streak >= $4";
/// A failed probe opens the circuit again for as long as it has been open so far (at least
/// the cooldown, at most [`CIRCUIT_COOLDOWN_MAX`]): the waits double, and a receiver down for
/// days costs a probe every 12 hours, not every minute.
const REOPEN_PG: &str = "UPDATE hangar_webhook_endpoints SET circuit_state = 'open', \
     circuit_open_until = $2 + LEAST(GREATEST($2 - COALESCE(circuit_opened_at, $2), \
         make_interval(secs => $3)), make_interval(secs => $4)) \
     WHERE id = $1 AND circuit_state = 'half_open'";
const REOPEN_SQLITE: &str = "UPDATE hangar_webhook_endpoints SET circuit_state = 'open', \
     circuit_open_until = $2 + min(max($2 - COALESCE(circuit_opened_at, $2), $3), $4) \
     WHERE id = $1 AND circuit_state = 'half_open'";
const WAKE: &str = "UPDATE hangar_jobs SET state = 'available', run_at = $3 \
     WHERE state = 'scheduled' AND id IN ( \
         SELECT job_id FROM hangar_webhook_deliveries \
         WHERE endpoint_id = $1 AND waiting IS NOT NULL AND job_id IS NOT NULL \
         ORDER BY event_row LIMIT $2)";
const FREE: &str = "DELETE FROM hangar_webhook_inflight WHERE delivery_id = $1";

/// In an attempt's transaction (PostgreSQL): frees the delivery's slot, moves the circuit
/// (`Some(true)`: a success closes it; `Some(false)`: a failure opens it again from
/// half-open, or from closed once the streak reached `circuit_after`) and wakes the oldest waiting
/// deliveries of the endpoint: one, or as many as its concurrency when the circuit closed.
pub(super) async fn release_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    delivery_id: &str,
    endpoint_id: &str,
    success: Option<bool>,
    circuit_after: i32,
) -> Result<(), StoreError> {
    let now = Utc::now();
    sqlx::query(FREE)
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?;
    let mut wake: i64 = 1;
    match success {
        Some(true) => {
            let closed: Option<i32> = sqlx::query_scalar(CLOSE)
                .bind(endpoint_id)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(max) = closed {
                wake = i64::from(max.max(1));
            }
        }
        Some(false) => {
            let until = now + chrono::Duration::from_std(CIRCUIT_COOLDOWN).unwrap_or_default();
            let reopened = sqlx::query(REOPEN_PG)
                .bind(endpoint_id)
                .bind(now)
                .bind(CIRCUIT_COOLDOWN.as_secs_f64())
                .bind(CIRCUIT_COOLDOWN_MAX.as_secs_f64())
                .execute(&mut **tx)
                .await?
                .rows_affected();
            let opened = sqlx::query(OPEN)
                .bind(endpoint_id)
                .bind(now)
                .bind(until)
                .bind(circuit_after)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if opened + reopened > 0 {
                wake = 0;
            }
        }
        None => {}
    }
    if wake > 0 {
        sqlx::query(WAKE)
            .bind(endpoint_id)
            .bind(wake)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// [`release_pg`] on SQLite.
pub(super) async fn release_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    delivery_id: &str,
    endpoint_id: &str,
    success: Option<bool>,
    circuit_after: i32,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(FREE)
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?;
    let mut wake: i64 = 1;
    match success {
        Some(true) => {
            let closed: Option<i32> = sqlx::query_scalar(CLOSE)
                .bind(endpoint_id)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(max) = closed {
                wake = i64::from(max.max(1));
            }
        }
        Some(false) => {
            let reopened = sqlx::query(REOPEN_SQLITE)
                .bind(endpoint_id)
                .bind(now)
                .bind(millis(CIRCUIT_COOLDOWN))
                .bind(millis(CIRCUIT_COOLDOWN_MAX))
                .execute(&mut **tx)
                .await?
                .rows_affected();
            let opened = sqlx::query(OPEN)
                .bind(endpoint_id)
                .bind(now)
                .bind(now + millis(CIRCUIT_COOLDOWN))
                .bind(circuit_after)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if opened + reopened > 0 {
                wake = 0;
            }
        }
        None => {}
    }
    if wake > 0 {
        sqlx::query(WAKE)
            .bind(endpoint_id)
            .bind(wake)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
