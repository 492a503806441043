//! The record of delivery attempts, a batch of them in one transaction: the attempt rows, the
//! deliveries' states, the endpoints' health counters and circuits, the slots' release with
//! the wake-up of waiting deliveries, and the retry lane of the failed ones; about seven
//! statements whatever the batch's size. The endpoints' rows are locked first, in id order,
//! and their counters are moved here attempt by attempt, in the batch's order, as the
//! one-by-one updates did.
//!
//! Two callers. A successful attempt is recorded in its job's completion transaction (the
//! pool's completer, `store/completion.rs`, through [`record_completed_pg`] /
//! [`record_completed_sqlite`]): only if the completion passes its lease fence, with the
//! degraded alert its success resolves, and one commit for the delivery instead of two. A
//! failed attempt is recorded in a batch of its own (`webhooks/batch.rs`,
//! [`Store::record_webhook_attempts`]) before its failure is decided, since the handler moves
//! the endpoint's health by it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::rows::{now_ms, opt_time};
use super::webhook_gate::{
    CircuitState, circuit_after_attempt, relaxed_commit, release_pg, release_sqlite,
};
use super::{AttemptOutcome, AttemptRow, HealthMove, Store, StoreError};
use crate::db::Pool;
use crate::webhooks::endpoint::{CIRCUIT_AFTER, DEGRADED_AFTER};
use crate::webhooks::health::degraded_incident;

/// A failed delivery's job is retried behind every fresh one: the claim order is priority
/// first, so a backlog of due retries never delays a new event (the retry lane; its share of
/// the slots is capped by the gate).
const RETRY_LANE_PG: &str =
    "UPDATE hangar_jobs SET priority = 1 WHERE id = ANY($1) AND priority < 1";

/// An endpoint's counters as the batch moves them (times in ms).
pub(super) struct Counters {
    streak: i32,
    failing_since: Option<i64>,
    last_success: Option<i64>,
    last_failure: Option<i64>,
    circuit: CircuitState,
    max_in_flight: i32,
    wake: i64,
    /// Whether deliveries of the endpoint were put back to wait since its queue of waiters
    /// was last found empty (`waiters_since`): only then does a release look for them.
    waiters: bool,
}

type EndpointRow = (
    String,
    i32,
    Option<i64>,
    String,
    Option<i64>,
    Option<i64>,
    i32,
    bool,
);

fn counters(rows: Vec<EndpointRow>) -> HashMap<String, Counters> {
    rows.into_iter()
        .map(
            |(id, streak, failing_since, state, opened_at, open_until, max, waiters)| {
                (
                    id,
                    Counters {
                        streak,
                        failing_since,
                        last_success: None,
                        last_failure: None,
                        circuit: CircuitState {
                            state,
                            opened_at,
                            open_until,
                        },
                        max_in_flight: max,
                        wake: 0,
                        waiters,
                    },
                )
            },
        )
        .collect()
}

/// Moves the counters attempt by attempt; the health moves, in order.
fn step(
    attempts: &[AttemptRow],
    endpoints: &mut HashMap<String, Counters>,
    now: i64,
) -> Vec<HealthMove> {
    attempts
        .iter()
        .map(|a| {
            let Some(e) = endpoints.get_mut(&a.endpoint_id) else {
                return HealthMove {
                    streak_before: 0,
                    failing_since: None,
                };
            };
            let before = e.streak;
            let success = a.outcome == AttemptOutcome::Succeeded;
            if success {
                e.streak = 0;
                e.failing_since = None;
                e.last_success = Some(now);
            } else {
                e.streak += 1;
                e.failing_since.get_or_insert(now);
                e.last_failure = Some(now);
            }
            e.wake += circuit_after_attempt(
                &mut e.circuit,
                success,
                e.streak,
                CIRCUIT_AFTER,
                e.max_in_flight,
                now,
            );
            HealthMove {
                streak_before: before,
                failing_since: opt_time(e.failing_since),
            }
        })
        .collect()
}

fn state_of(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "pending",
        AttemptOutcome::FailedForGood => "failed",
    }
}

pub(super) fn endpoints_of(attempts: &[AttemptRow]) -> Vec<String> {
    let mut ids: Vec<String> = attempts.iter().map(|a| a.endpoint_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The counters of `attempts`' endpoints, their rows locked in id order (PostgreSQL). Every
/// transaction that locks several endpoints takes them in this order, before any job row.
pub(super) async fn lock_counters_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    attempts: &[AttemptRow],
) -> Result<HashMap<String, Counters>, StoreError> {
    let endpoint_ids = endpoints_of(attempts);
    let ms = |t: &str| format!("(extract(epoch FROM {t}) * 1000)::bigint");
    // NO KEY UPDATE: an ingress batch that inserts deliveries of these endpoints
    // (a key-share lock through the foreign key) is not held up by it.
    let sql = format!(
        "SELECT id, failure_streak, {}, circuit_state, {}, {}, max_in_flight, \
             waiters_since IS NOT NULL \
         FROM hangar_webhook_endpoints WHERE id = ANY($1) ORDER BY id \
         FOR NO KEY UPDATE",
        ms("failing_since"),
        ms("circuit_opened_at"),
        ms("circuit_open_until")
    );
    let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&endpoint_ids)
        .fetch_all(&mut **tx)
        .await?;
    Ok(counters(rows))
}

/// Writes `attempts` (PostgreSQL), their endpoints' counters locked by [`lock_counters_pg`];
/// returns each attempt's health move, in order, and the queues of the jobs woken.
pub(super) async fn write_attempts_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    attempts: &[AttemptRow],
    mut endpoints: HashMap<String, Counters>,
) -> Result<(Vec<HealthMove>, Vec<String>), StoreError> {
    endpoints.retain(|id, _| attempts.iter().any(|a| &a.endpoint_id == id));
    let deliveries: Vec<String> = attempts.iter().map(|a| a.delivery_id.clone()).collect();
    let failed = failed_jobs(attempts);
    let now_time = Utc::now();
    let now = now_time.timestamp_millis();
    macro_rules! column {
        ($f:expr) => {
            attempts.iter().map($f).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO hangar_webhook_attempts (delivery_id, job_id, attempt, \
             started_at, address, request_headers, status, response_headers, \
             response_body, body_truncated, body_size, total_ms, first_byte_ms, \
             error_class, error) \
         SELECT x.id, x.job, d.attempts + 1, x.started, x.address, x.req, x.status, \
             x.resp, x.body, x.truncated, x.size, x.total, x.first_byte, x.class, \
             x.error \
         FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], \
             $5::text[], $6::int4[], $7::text[], $8::text[], $9::bool[], \
             $10::int8[], $11::int4[], $12::int4[], $13::text[], $14::text[]) \
             AS x(id, job, started, address, req, status, resp, body, truncated, \
                 size, total, first_byte, class, error) \
         JOIN hangar_webhook_deliveries d ON d.id = x.id",
    )
    .bind(&deliveries)
    .bind(column!(|a| a.job_id))
    .bind(column!(|a| a.started_at))
    .bind(column!(|a| a.address.clone()))
    .bind(column!(|a| a.request_headers.clone()))
    .bind(column!(|a| a.status))
    .bind(column!(|a| a.response_headers.clone()))
    .bind(column!(|a| a.response_body.clone()))
    .bind(column!(|a| a.body_truncated))
    .bind(column!(|a| a.body_size))
    .bind(column!(|a| a.total_ms))
    .bind(column!(|a| a.first_byte_ms))
    .bind(column!(|a| a.error_class.map(str::to_owned)))
    .bind(column!(|a| a.error.clone()))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE hangar_webhook_deliveries d SET attempts = d.attempts + 1, \
             last_status = x.status, last_error = x.error, updated_at = $5, \
             state = CASE WHEN d.state = 'pending' THEN x.state ELSE d.state END, \
             delivered_at = CASE WHEN x.state = 'succeeded' THEN $5 \
                 ELSE d.delivered_at END \
         FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[]) \
             AS x(id, status, error, state) \
         WHERE d.id = x.id",
    )
    .bind(&deliveries)
    .bind(column!(|a| a.status))
    .bind(column!(|a| a.error.clone()))
    .bind(column!(|a| state_of(a.outcome).to_owned()))
    .bind(now_time)
    .execute(&mut **tx)
    .await?;
    let moves = step(attempts, &mut endpoints, now);
    let t = |ms: Option<i64>| ms.and_then(DateTime::<Utc>::from_timestamp_millis);
    let ids: Vec<&String> = endpoints.keys().collect();
    let e = |id: &&String| &endpoints[*id];
    sqlx::query(
        "UPDATE hangar_webhook_endpoints ep SET failure_streak = x.streak, \
             failing_since = x.failing_since, \
             last_success_at = COALESCE(x.success, ep.last_success_at), \
             last_failure_at = COALESCE(x.failure, ep.last_failure_at), \
             circuit_state = x.circuit, circuit_opened_at = x.opened, \
             circuit_open_until = x.until \
         FROM unnest($1::text[], $2::int4[], $3::timestamptz[], \
             $4::timestamptz[], $5::timestamptz[], $6::text[], $7::timestamptz[], \
             $8::timestamptz[]) \
             AS x(id, streak, failing_since, success, failure, circuit, opened, until) \
         WHERE ep.id = x.id",
    )
    .bind(&ids)
    .bind(ids.iter().map(|id| e(id).streak).collect::<Vec<_>>())
    .bind(
        ids.iter()
            .map(|id| t(e(id).failing_since))
            .collect::<Vec<_>>(),
    )
    .bind(
        ids.iter()
            .map(|id| t(e(id).last_success))
            .collect::<Vec<_>>(),
    )
    .bind(
        ids.iter()
            .map(|id| t(e(id).last_failure))
            .collect::<Vec<_>>(),
    )
    .bind(
        ids.iter()
            .map(|id| e(id).circuit.state.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        ids.iter()
            .map(|id| t(e(id).circuit.opened_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        ids.iter()
            .map(|id| t(e(id).circuit.open_until))
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    let wakes: Vec<(&str, i64)> = endpoints
        .iter()
        .filter(|(_, c)| c.waiters)
        .map(|(id, c)| (id.as_str(), c.wake))
        .collect();
    let held: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| (a.endpoint_id.as_str(), a.delivery_id.as_str()))
        .collect();
    let woken = release_pg(tx, &held, &wakes).await?;
    if !failed.is_empty() {
        sqlx::query(RETRY_LANE_PG)
            .bind(&failed)
            .execute(&mut **tx)
            .await?;
    }
    Ok((moves, woken))
}

/// Writes `attempts` (SQLite: the first statement writes, so the transaction holds the
/// database's write lock from there); returns each attempt's health move, in order, and the
/// queues of the jobs woken.
pub(super) async fn write_attempts_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    attempts: &[AttemptRow],
) -> Result<(Vec<HealthMove>, Vec<String>), StoreError> {
    let endpoint_ids = endpoints_of(attempts);
    let failed = failed_jobs(attempts);
    let now = now_ms();
    for a in attempts {
        // The first statement writes: the transaction holds the write lock.
        sqlx::query(
            "INSERT INTO hangar_webhook_attempts (delivery_id, job_id, attempt, \
                 started_at, address, request_headers, status, response_headers, \
                 response_body, body_truncated, body_size, total_ms, first_byte_ms, \
                 error_class, error) \
             SELECT $1, $2, attempts + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14 FROM hangar_webhook_deliveries WHERE id = $1",
        )
        .bind(&a.delivery_id)
        .bind(a.job_id)
        .bind(a.started_at.timestamp_millis())
        .bind(&a.address)
        .bind(&a.request_headers)
        .bind(a.status)
        .bind(&a.response_headers)
        .bind(&a.response_body)
        .bind(a.body_truncated)
        .bind(a.body_size)
        .bind(a.total_ms)
        .bind(a.first_byte_ms)
        .bind(a.error_class)
        .bind(&a.error)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE hangar_webhook_deliveries SET attempts = attempts + 1, \
                 last_status = $2, last_error = $3, updated_at = $4, \
                 state = CASE WHEN state = 'pending' THEN $5 ELSE state END, \
                 delivered_at = CASE WHEN $5 = 'succeeded' THEN $4 \
                     ELSE delivered_at END \
             WHERE id = $1",
        )
        .bind(&a.delivery_id)
        .bind(a.status)
        .bind(&a.error)
        .bind(now)
        .bind(state_of(a.outcome))
        .execute(&mut **tx)
        .await?;
    }
    let mut rows = Vec::with_capacity(endpoint_ids.len());
    for id in &endpoint_ids {
        let row: Option<EndpointRow> = sqlx::query_as(
            "SELECT id, failure_streak, failing_since, circuit_state, \
                 circuit_opened_at, circuit_open_until, max_in_flight, \
                 waiters_since IS NOT NULL \
             FROM hangar_webhook_endpoints WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        rows.extend(row);
    }
    let mut endpoints = counters(rows);
    let moves = step(attempts, &mut endpoints, now);
    for (id, e) in &endpoints {
        sqlx::query(
            "UPDATE hangar_webhook_endpoints SET failure_streak = $2, \
                 failing_since = $3, \
                 last_success_at = COALESCE($4, last_success_at), \
                 last_failure_at = COALESCE($5, last_failure_at), \
                 circuit_state = $6, circuit_opened_at = $7, \
                 circuit_open_until = $8 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(e.streak)
        .bind(e.failing_since)
        .bind(e.last_success)
        .bind(e.last_failure)
        .bind(&e.circuit.state)
        .bind(e.circuit.opened_at)
        .bind(e.circuit.open_until)
        .execute(&mut **tx)
        .await?;
    }
    let wakes: Vec<(&str, i64)> = endpoints
        .iter()
        .filter(|(_, c)| c.waiters)
        .map(|(id, c)| (id.as_str(), c.wake))
        .collect();
    let held: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| (a.endpoint_id.as_str(), a.delivery_id.as_str()))
        .collect();
    let woken = release_sqlite(tx, &held, &wakes).await?;
    for job in &failed {
        sqlx::query("UPDATE hangar_jobs SET priority = 1 WHERE id = $1 AND priority < 1")
            .bind(job)
            .execute(&mut **tx)
            .await?;
    }
    Ok((moves, woken))
}

/// The failed attempts' jobs (for the retry lane).
fn failed_jobs(attempts: &[AttemptRow]) -> Vec<i64> {
    attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Failed)
        .map(|a| a.job_id)
        .collect()
}

/// The attempts of the jobs in `accepted` (their completion passed its fence).
fn of_accepted(attempts: &[AttemptRow], accepted: &[i64]) -> Vec<AttemptRow> {
    attempts
        .iter()
        .filter(|a| accepted.contains(&a.job_id))
        .cloned()
        .collect()
}

/// The degraded alerts the successes among `attempts` resolve: an endpoint that had failed
/// [`DEGRADED_AFTER`] times in a row before one of them has recovered.
fn recovered(attempts: &[AttemptRow], moves: &[HealthMove]) -> Vec<String> {
    let mut keys: Vec<String> = attempts
        .iter()
        .zip(moves)
        .filter(|(a, m)| {
            a.outcome == AttemptOutcome::Succeeded && m.streak_before >= DEGRADED_AFTER
        })
        .map(|(a, _)| degraded_incident(&a.endpoint_id))
        .collect();
    keys.sort();
    keys.dedup();
    for key in &keys {
        tracing::info!(incident = %key, "webhook endpoint recovered");
    }
    keys
}

/// Records, in a completion's transaction (PostgreSQL), the attempts of the jobs whose
/// completion was `accepted`, with `locked` (their endpoints' counters, locked by
/// [`lock_counters_pg`] before the jobs' update), and resolves the degraded alerts their
/// successes end; a fenced-out job's attempt is not recorded. Returns the queues woken.
pub(super) async fn record_completed_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    attempts: &[AttemptRow],
    locked: HashMap<String, Counters>,
    accepted: &[i64],
) -> Result<Vec<String>, StoreError> {
    let mine = of_accepted(attempts, accepted);
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let (moves, woken) = write_attempts_pg(tx, &mine, locked).await?;
    let keys = recovered(&mine, &moves);
    if !keys.is_empty() {
        sqlx::query(
            "UPDATE hangar_alerts SET resolved_at = now() \
             WHERE incident_key = ANY($1) AND resolved_at IS NULL",
        )
        .bind(&keys)
        .execute(&mut **tx)
        .await?;
    }
    Ok(woken)
}

/// [`record_completed_pg`] on SQLite (no lock to take first: the completion's update holds
/// the write lock).
pub(super) async fn record_completed_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    attempts: &[AttemptRow],
    accepted: &[i64],
) -> Result<Vec<String>, StoreError> {
    let mine = of_accepted(attempts, accepted);
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let (moves, woken) = write_attempts_sqlite(tx, &mine).await?;
    for key in recovered(&mine, &moves) {
        sqlx::query(
            "UPDATE hangar_alerts SET resolved_at = $2 WHERE incident_key = $1 AND resolved_at IS NULL",
        )
        .bind(&key)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    }
    Ok(woken)
}

impl Store {
    /// Records one attempt (see [`Store::record_webhook_attempts`]).
    pub async fn record_webhook_attempt(&self, a: &AttemptRow) -> Result<HealthMove, StoreError> {
        let mut moves = self
            .record_webhook_attempts(std::slice::from_ref(a))
            .await?;
        Ok(moves.pop().unwrap_or(HealthMove {
            streak_before: 0,
            failing_since: None,
        }))
    }

    /// Records a batch of attempts, their deliveries' new states, their endpoints' health
    /// counters and circuits, and frees their slots, in one transaction; returns each
    /// attempt's counters around it, in order.
    pub async fn record_webhook_attempts(
        &self,
        attempts: &[AttemptRow],
    ) -> Result<Vec<HealthMove>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let (moves, woken) = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // The job's result, written after this with a flushed commit, flushes it too.
                relaxed_commit(&mut tx).await?;
                let locked = lock_counters_pg(&mut tx, attempts).await?;
                let written = write_attempts_pg(&mut tx, attempts, locked).await?;
                tx.commit().await?;
                written
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let written = write_attempts_sqlite(&mut tx, attempts).await?;
                tx.commit().await?;
                written
            }
        };
        self.wake_woken(&woken);
        Ok(moves)
    }
}
