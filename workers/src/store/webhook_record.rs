//! The record of delivery attempts, a batch of them in one transaction (`webhooks/batch.rs`
//! gathers this process's attempts): the attempt rows, the deliveries' states, the
//! endpoints' health counters and circuits, the slots' release with the wake-up of waiting
//! deliveries, and the retry lane of the failed ones; about seven statements whatever the
//! batch's size. The endpoints' rows are locked first, in id order, and their counters are
//! moved here attempt by attempt, in the batch's order, as the one-by-one updates did.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::rows::{now_ms, opt_time};
use super::webhook_gate::{
    CircuitState, circuit_after_attempt, relaxed_commit, release_pg, release_sqlite,
};
use super::{AttemptOutcome, AttemptRow, HealthMove, Store, StoreError};
use crate::db::Pool;
use crate::webhooks::endpoint::CIRCUIT_AFTER;

/// A failed delivery's job is retried behind every fresh one: the claim order is priority
/// first, so a backlog of due retries never delays a new event (the retry lane; its share of
/// the slots is capped by the gate).
const RETRY_LANE_PG: &str =
    "UPDATE hangar_jobs SET priority = 1 WHERE id = ANY($1) AND priority < 1";

/// An endpoint's counters as the batch moves them (times in ms).
struct Counters {
    streak: i32,
    failing_since: Option<i64>,
    last_success: Option<i64>,
    last_failure: Option<i64>,
    circuit: CircuitState,
    max_in_flight: i32,
    wake: i64,
}

type EndpointRow = (
    String,
    i32,
    Option<i64>,
    String,
    Option<i64>,
    Option<i64>,
    i32,
);

fn counters(rows: Vec<EndpointRow>) -> HashMap<String, Counters> {
    rows.into_iter()
        .map(
            |(id, streak, failing_since, state, opened_at, open_until, max)| {
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

fn endpoints_of(attempts: &[AttemptRow]) -> Vec<String> {
    let mut ids: Vec<String> = attempts.iter().map(|a| a.endpoint_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
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
        let endpoint_ids = endpoints_of(attempts);
        let deliveries: Vec<String> = attempts.iter().map(|a| a.delivery_id.clone()).collect();
        let failed: Vec<i64> = attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Failed)
            .map(|a| a.job_id)
            .collect();
        let (moves, woken) = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // The job's result, written after this with a flushed commit, flushes it too.
                relaxed_commit(&mut tx).await?;
                let now_time = Utc::now();
                let now = now_time.timestamp_millis();
                let ms = |t: &str| format!("(extract(epoch FROM {t}) * 1000)::bigint");
                // NO KEY UPDATE: an ingress batch that inserts deliveries of these endpoints
                // (a key-share lock through the foreign key) is not held up by it.
                let sql = format!(
                    "SELECT id, failure_streak, {}, circuit_state, {}, {}, max_in_flight \
                     FROM hangar_webhook_endpoints WHERE id = ANY($1) ORDER BY id \
                     FOR NO KEY UPDATE",
                    ms("failing_since"),
                    ms("circuit_opened_at"),
                    ms("circuit_open_until")
                );
                let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&endpoint_ids)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut endpoints = counters(rows);
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
                .await?;
                let wakes: Vec<(&str, i64)> = endpoints
                    .iter()
                    .map(|(id, c)| (id.as_str(), c.wake))
                    .collect();
                let woken = release_pg(&mut tx, &deliveries, &wakes).await?;
                if !failed.is_empty() {
                    sqlx::query(RETRY_LANE_PG)
                        .bind(&failed)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                (moves, woken)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
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
                    .execute(&mut *tx)
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
                    .execute(&mut *tx)
                    .await?;
                }
                let mut rows = Vec::with_capacity(endpoint_ids.len());
                for id in &endpoint_ids {
                    let row: Option<EndpointRow> = sqlx::query_as(
                        "SELECT id, failure_streak, failing_since, circuit_state, \
                             circuit_opened_at, circuit_open_until, max_in_flight \
                         FROM hangar_webhook_endpoints WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
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
                    .execute(&mut *tx)
                    .await?;
                }
                let wakes: Vec<(&str, i64)> = endpoints
                    .iter()
                    .map(|(id, c)| (id.as_str(), c.wake))
                    .collect();
                let woken = release_sqlite(&mut tx, &deliveries, &wakes).await?;
                for job in &failed {
                    sqlx::query(
                        "UPDATE hangar_jobs SET priority = 1 WHERE id = $1 AND priority < 1",
                    )
                    .bind(job)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                (moves, woken)
            }
        };
        self.wake_woken(&woken);
        Ok(moves)
    }
}
