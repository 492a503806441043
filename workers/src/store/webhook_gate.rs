//! The gate of delivery attempts: whether each may send now under its endpoint's limits,
//! counted in the database so every worker process shares them (`hangar_webhook_slots`: a
//! numbered slot row per request an endpoint may have out, held by one delivery with an
//! expiry that frees the slot of a process that died; see `slots.rs` for why rows are
//! updated in place rather than inserted and deleted).
//!
//! One transaction per batch of asks (`webhooks/batch.rs` gathers the asks of this process's
//! attempts), holding the rows of their endpoints (PostgreSQL `FOR NO KEY UPDATE`, in id
//! order; SQLite's single writer), about seven statements whatever the batch's size: the
//! circuit (open: wait until `circuit_open_until`; then one probe at a time), the ordering key
//! (an earlier open delivery of the same endpoint with the same key in its event's data:
//! wait), the endpoint's concurrency, the workspace's share of the slots, the retry lane's
//! share, the rate (GCRA over `rate_next_at`, a burst of one second's worth); each ask of the
//! batch counts the slots the earlier ones took. A delivery that must wait names why in
//! `waiting`, and its job is put back to `scheduled` in the same transaction (its attempt
//! given back), so a slot released after the gate always finds it there and wakes it: waiting
//! for this endpoint's slots lasts until the earliest one expires at most, the release of a
//! slot wakes the oldest waiting delivery of its endpoint (all of them, up to the
//! concurrency, when a probe closes the circuit), and nothing polls meanwhile. The workspace
//! and retry counts are not serialized across endpoints: two processes may overshoot them by
//! a batch each, never the endpoint's own.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

mod release;
mod rules;
mod slots;

pub(super) use release::{release_pg, release_sqlite};
pub use rules::ordering_paths;
pub(crate) use rules::{CircuitState, circuit_after_attempt};
use rules::{Facts, apply, decide};
use slots::{Taken, Tally};

use super::rows::{millis, now_ms};
use super::{Store, StoreError};
use crate::db::Pool;

/// What a delivery asks the gate.
#[derive(Debug, Clone)]
pub struct GateAsk {
    /// The delivery.
    pub delivery_id: String,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The job of this attempt: put back to `scheduled` when it must wait.
    pub job_id: i64,
    /// The job's lease (the put-back is fenced by it).
    pub lease_token: i64,
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
    /// Do not send: the job was put back to run after this long (sooner if woken).
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
            workspace_id: row.try_get("workspace_id")?,
            max_in_flight: row.try_get("max_in_flight")?,
            rate: row.try_get("rate_limit_per_s")?,
            ordering_path: row.try_get("ordering_key_path")?,
            circuit: row.try_get("circuit_state")?,
            open_until: row.try_get("open_until")?,
            rate_next_at: row.try_get("rate_next_at")?,
            endpoint_slots: 0,
            probes: 0,
            workspace_slots: row.try_get("workspace_slots")?,
            retry_slots: row.try_get("retry_slots")?,
            next_free: None,
        }
    }};
}

/// Keeps one row of the facts' statement (either dialect's row): the endpoint's facts, its
/// place in `$index` and its slots' tally.
macro_rules! keep_facts {
    ($row:expr, $now:expr, $facts:ident, $index:ident, $tallies:ident) => {{
        let row = $row;
        let id: String = row.try_get("id")?;
        let slots: Option<String> = row.try_get("slots")?;
        let (f, tally) = facts_and_tally(facts_from_row!(row), slots.as_deref(), $now);
        $index.insert(id.clone(), $facts.len());
        $facts.push(f);
        $tallies.insert(id, tally);
    }};
}

/// Reads one endpoint's facts and its slots' tally from a row of the facts' statement.
fn facts_and_tally(facts: Facts, slots_json: Option<&str>, now: i64) -> (Facts, Tally) {
    let tally = slots::tally(&slots::parse(slots_json), facts.max_in_flight, now);
    let facts = Facts {
        endpoint_slots: tally.held,
        probes: tally.probes,
        next_free: tally.next_free,
        ..facts
    };
    (facts, tally)
}

/// The shares' counts of an endpoint `ep`'s facts, `$2` being now (a re-asking delivery's own
/// slot is freed before). The retry lane's is the same for every row: PostgreSQL and SQLite
/// run it once.
const SHARE_COUNTS: &str = "(SELECT count(*) FROM hangar_webhook_slots s \
         WHERE s.workspace_id = ep.workspace_id AND s.delivery_id IS NOT NULL \
           AND s.expires_at >= $2) AS workspace_slots, \
     (SELECT count(*) FROM hangar_webhook_slots s \
         WHERE s.retry AND s.delivery_id IS NOT NULL AND s.expires_at >= $2) AS retry_slots";

/// An earlier delivery of the same endpoint, still open, whose event has the same value at
/// the ordering path (`$3`) as this delivery's event (`$2` its row): its job's `run_at`.
const PREDECESSOR: &str = "SELECT {run_at} AS run_at FROM hangar_webhook_deliveries d \
     JOIN hangar_events e ON e.id = d.event_row LEFT JOIN hangar_jobs j ON j.id = d.job_id \
     WHERE d.endpoint_id = $1 AND d.event_row < $2 AND d.state IN ('pending', 'held') \
       AND d.expunged_at IS NULL \
       AND (d.state = 'held' OR j.state IN ('available', 'scheduled', 'retryable', 'running')) \
       AND {key_of_e} = (SELECT {key_of_me} FROM hangar_events me WHERE me.id = $2) \
     ORDER BY d.event_row LIMIT 1";

/// What a batch decided, to be written.
#[derive(Default)]
struct Outcome {
    gates: Vec<Gate>,
    /// The slots the asks that go take, numbered by [`slots::assign`].
    gos: Vec<Taken>,
    /// (delivery, reason) of every ask: `None` once it goes.
    waiting: Vec<(String, Option<String>)>,
    /// (job, lease token, ms) of the jobs put back.
    put_back: Vec<(i64, i64, i64)>,
    /// The endpoints of the asks put back: flagged with waiters (`waiters_since`), so their
    /// next releases look for them.
    waited: Vec<String>,
}

/// Decides every ask in order over `facts` (by endpoint), `predecessor` giving the ordering
/// rule's answer of an ask.
fn decide_all(
    asks: &[GateAsk],
    facts: &mut [Facts],
    index: &HashMap<String, usize>,
    predecessors: &[Option<Option<i64>>],
    now: i64,
) -> Outcome {
    let mut out = Outcome::default();
    for (ask, predecessor) in asks.iter().zip(predecessors) {
        let Some(&at) = index.get(&ask.endpoint_id) else {
            // The endpoint is gone: the handler skips the delivery.
            out.gates.push(Gate::Go { probe: false });
            continue;
        };
        let d = decide(ask, &facts[at], now, *predecessor);
        let expires = now + millis(ask.slot_ttl);
        apply(facts, at, ask, &d, expires);
        match &d.gate {
            Gate::Go { probe } => {
                out.gos.push(Taken {
                    endpoint_id: ask.endpoint_id.clone(),
                    number: 0,
                    workspace_id: facts[at].workspace_id.clone(),
                    delivery_id: ask.delivery_id.clone(),
                    retry: ask.retry,
                    probe: *probe,
                    expires,
                });
                out.waiting.push((ask.delivery_id.clone(), None));
            }
            Gate::Wait { after, reason } => {
                out.waiting
                    .push((ask.delivery_id.clone(), Some((*reason).to_owned())));
                out.put_back
                    .push((ask.job_id, ask.lease_token, millis(*after)));
                if !out.waited.contains(&ask.endpoint_id) {
                    out.waited.push(ask.endpoint_id.clone());
                }
            }
        }
        out.gates.push(d.gate);
    }
    out
}

fn endpoints_of(asks: &[GateAsk]) -> Vec<String> {
    let mut endpoints: Vec<String> = asks.iter().map(|a| a.endpoint_id.clone()).collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

impl Store {
    /// Asks the gate for one delivery (see [`Store::webhook_gates`]).
    pub async fn webhook_gate(&self, ask: &GateAsk) -> Result<Gate, StoreError> {
        let mut gates = self.webhook_gates(std::slice::from_ref(ask)).await?;
        Ok(gates.pop().unwrap_or(Gate::Go { probe: false }))
    }

    /// Asks the gate for a batch of deliveries, in one transaction (see the module doc); a
    /// `Go` holds a slot until [`Store::record_webhook_attempts`] or
    /// [`Store::release_webhook_slot`] frees it, a `Wait` has put the ask's job back.
    pub async fn webhook_gates(&self, asks: &[GateAsk]) -> Result<Vec<Gate>, StoreError> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let endpoints = endpoints_of(asks);
        let ids: Vec<String> = asks.iter().map(|a| a.delivery_id.clone()).collect();
        let mut facts = Vec::with_capacity(endpoints.len());
        let mut index = HashMap::new();
        let mut tallies: HashMap<String, Tally> = HashMap::new();
        let mut predecessors = vec![None; asks.len()];
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                relaxed_commit(&mut tx).await?;
                let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_else(Utc::now);
                // The locks first, the counts in a later statement: a statement that waited
                // for a lock would count with the snapshot it took before waiting.
                sqlx::query(
                    "SELECT id FROM hangar_webhook_endpoints WHERE id = ANY($1) ORDER BY id \
                     FOR NO KEY UPDATE",
                )
                .bind(&endpoints)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query(slots::FREE_ASKING_PG)
                    .bind(&endpoints)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                let sql = format!(
                    "SELECT ep.id, ep.workspace_id, ep.max_in_flight, ep.rate_limit_per_s, \
                         ep.ordering_key_path, ep.circuit_state, \
                         (extract(epoch FROM ep.circuit_open_until) * 1000)::bigint AS open_until, \
                         (extract(epoch FROM ep.rate_next_at) * 1000)::bigint AS rate_next_at, \
                         (SELECT json_agg(json_build_array(s.slot, s.delivery_id IS NOT NULL, \
                             s.probe, (extract(epoch FROM s.expires_at) * 1000)::bigint))::text \
                             FROM hangar_webhook_slots s WHERE s.endpoint_id = ep.id) AS slots, \
                         {SHARE_COUNTS} \
                     FROM hangar_webhook_endpoints ep WHERE ep.id = ANY($1)"
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&endpoints)
                    .bind(at)
                    .fetch_all(&mut *tx)
                    .await?
                {
                    keep_facts!(&row, now, facts, index, tallies);
                }
                if facts.iter().any(|f| f.ordering_path.is_some()) {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT id, event_row FROM hangar_webhook_deliveries WHERE id = ANY($1)",
                    )
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
                    let event_rows: HashMap<String, i64> = rows.into_iter().collect();
                    for (i, ask) in asks.iter().enumerate() {
                        let path = index
                            .get(&ask.endpoint_id)
                            .and_then(|&at| facts[at].ordering_path.as_deref());
                        let (Some(path), Some(event_row)) =
                            (path, event_rows.get(&ask.delivery_id))
                        else {
                            continue;
                        };
                        let (pg_path, _) = ordering_paths(path);
                        let sql = PREDECESSOR
                            .replace("{run_at}", "(extract(epoch FROM j.run_at) * 1000)::bigint")
                            .replace("{key_of_e}", "(e.body::jsonb #>> $3)")
                            .replace("{key_of_me}", "(me.body::jsonb #>> $3)");
                        predecessors[i] =
                            sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                                .bind(&ask.endpoint_id)
                                .bind(event_row)
                                .bind(pg_path)
                                .fetch_optional(&mut *tx)
                                .await?;
                    }
                }
                let before: Vec<Facts> = facts.clone();
                let out = decide_all(asks, &mut facts, &index, &predecessors, now);
                let ms_time = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms);
                for (f, (old, id)) in facts.iter().zip(before.iter().zip(index_ids(&index))) {
                    if f.circuit != old.circuit || f.rate_next_at != old.rate_next_at {
                        sqlx::query(
                            "UPDATE hangar_webhook_endpoints SET circuit_state = $2, \
                                 rate_next_at = $3 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&f.circuit)
                        .bind(f.rate_next_at.and_then(ms_time))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let taken = slots::assign(&out.gos, &mut tallies);
                if !taken.is_empty() {
                    macro_rules! column {
                        ($f:expr) => {
                            taken.iter().map($f).collect::<Vec<_>>()
                        };
                    }
                    sqlx::query(slots::TAKE_PG)
                        .bind(column!(|t| t.endpoint_id.clone()))
                        .bind(column!(|t| t.number))
                        .bind(column!(|t| t.workspace_id.clone()))
                        .bind(column!(|t| t.delivery_id.clone()))
                        .bind(column!(|t| t.retry))
                        .bind(column!(|t| t.probe))
                        .bind(column!(|t| ms_time(t.expires).unwrap_or(at)))
                        .execute(&mut *tx)
                        .await?;
                }
                let (wait_ids, reasons): (Vec<String>, Vec<Option<String>>) =
                    out.waiting.iter().cloned().unzip();
                sqlx::query(
                    "UPDATE hangar_webhook_deliveries d SET waiting = x.reason \
                     FROM unnest($1::text[], $2::text[]) AS x(id, reason) \
                     WHERE d.id = x.id AND d.waiting IS DISTINCT FROM x.reason",
                )
                .bind(&wait_ids)
                .bind(&reasons)
                .execute(&mut *tx)
                .await?;
                if !out.put_back.is_empty() {
                    let mut back = out.put_back.clone();
                    back.sort_unstable();
                    let jobs: Vec<i64> = back.iter().map(|b| b.0).collect();
                    let tokens: Vec<i64> = back.iter().map(|b| b.1).collect();
                    let secs: Vec<f64> = back.iter().map(|b| b.2 as f64 / 1000.0).collect();
                    sqlx::query(
                        "UPDATE hangar_jobs j SET state = 'scheduled', attempt = j.attempt - 1, \
                             run_at = now() + make_interval(secs => x.secs), updated_at = now(), \
                             lease_token = NULL, lease_expires_at = NULL \
                         FROM unnest($1::bigint[], $2::bigint[], $3::float8[]) \
                             AS x(id, token, secs) \
                         WHERE j.id = x.id AND j.lease_token = x.token AND j.state = 'running'",
                    )
                    .bind(&jobs)
                    .bind(&tokens)
                    .bind(&secs)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET waiters_since = $2 \
                         WHERE id = ANY($1) AND waiters_since IS NULL",
                    )
                    .bind(&out.waited)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(out.gates)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let endpoints_json = serde_json::to_string(&endpoints).unwrap_or_default();
                let ids_json = serde_json::to_string(&ids).unwrap_or_default();
                // The first statement writes: the transaction holds the write lock from here.
                sqlx::query(slots::FREE_ASKING_SQLITE)
                    .bind(&endpoints_json)
                    .bind(&ids_json)
                    .execute(&mut *tx)
                    .await?;
                let sql = format!(
                    "SELECT ep.id, ep.workspace_id, ep.max_in_flight, ep.rate_limit_per_s, \
                         ep.ordering_key_path, ep.circuit_state, \
                         ep.circuit_open_until AS open_until, ep.rate_next_at, \
                         (SELECT json_group_array(json_array(s.slot, s.delivery_id IS NOT NULL, \
                             s.probe, s.expires_at)) \
                             FROM hangar_webhook_slots s WHERE s.endpoint_id = ep.id) AS slots, \
                         {SHARE_COUNTS} \
                     FROM hangar_webhook_endpoints ep \
                     WHERE ep.id IN (SELECT value FROM json_each($1))"
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&endpoints_json)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?
                {
                    keep_facts!(&row, now, facts, index, tallies);
                }
                for (i, ask) in asks.iter().enumerate() {
                    let Some(path) = index
                        .get(&ask.endpoint_id)
                        .and_then(|&at| facts[at].ordering_path.clone())
                    else {
                        continue;
                    };
                    let event_row: Option<i64> = sqlx::query_scalar(
                        "SELECT event_row FROM hangar_webhook_deliveries WHERE id = $1",
                    )
                    .bind(&ask.delivery_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(event_row) = event_row else { continue };
                    let (_, sqlite_path) = ordering_paths(&path);
                    let sql = PREDECESSOR
                        .replace("{run_at}", "j.run_at")
                        .replace("{key_of_e}", "json_extract(e.body, $3)")
                        .replace("{key_of_me}", "json_extract(me.body, $3)");
                    predecessors[i] =
                        sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                            .bind(&ask.endpoint_id)
                            .bind(event_row)
                            .bind(sqlite_path)
                            .fetch_optional(&mut *tx)
                            .await?;
                }
                let before: Vec<Facts> = facts.clone();
                let out = decide_all(asks, &mut facts, &index, &predecessors, now);
                for (f, (old, id)) in facts.iter().zip(before.iter().zip(index_ids(&index))) {
                    if f.circuit != old.circuit || f.rate_next_at != old.rate_next_at {
                        sqlx::query(
                            "UPDATE hangar_webhook_endpoints SET circuit_state = $2, \
                                 rate_next_at = $3 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&f.circuit)
                        .bind(f.rate_next_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                for t in slots::assign(&out.gos, &mut tallies) {
                    sqlx::query(slots::TAKE_SQLITE)
                        .bind(&t.endpoint_id)
                        .bind(t.number)
                        .bind(&t.workspace_id)
                        .bind(&t.delivery_id)
                        .bind(t.retry)
                        .bind(t.probe)
                        .bind(t.expires)
                        .execute(&mut *tx)
                        .await?;
                }
                for (id, reason) in &out.waiting {
                    sqlx::query(
                        "UPDATE hangar_webhook_deliveries SET waiting = $2 \
                         WHERE id = $1 AND waiting IS NOT $2",
                    )
                    .bind(id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                }
                for (job, token, ms) in &out.put_back {
                    sqlx::query(
                        "UPDATE hangar_jobs SET state = 'scheduled', attempt = attempt - 1, \
                             run_at = $3 + $4, updated_at = $3, lease_token = NULL, \
                             lease_expires_at = NULL \
                         WHERE id = $1 AND lease_token = $2 AND state = 'running'",
                    )
                    .bind(job)
                    .bind(token)
                    .bind(now)
                    .bind(ms)
                    .execute(&mut *tx)
                    .await?;
                }
                for endpoint in &out.waited {
                    sqlx::query(
                        "UPDATE hangar_webhook_endpoints SET waiters_since = $2 \
                         WHERE id = $1 AND waiters_since IS NULL",
                    )
                    .bind(endpoint)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(out.gates)
            }
        }
    }

    /// Frees a delivery's slot without an attempt (its handler stopped before sending) and
    /// wakes the next waiting delivery of its endpoint.
    pub async fn release_webhook_slot(
        &self,
        delivery_id: &str,
        endpoint_id: &str,
    ) -> Result<(), StoreError> {
        let woken = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Under the endpoint's lock, as the gate's put-backs: none is missed.
                let waiters: Option<bool> = sqlx::query_scalar(
                    "SELECT waiters_since IS NOT NULL FROM hangar_webhook_endpoints \
                     WHERE id = $1 FOR NO KEY UPDATE",
                )
                .bind(endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                let wakes: &[(&str, i64)] = if waiters == Some(true) {
                    &[(endpoint_id, 1)]
                } else {
                    &[]
                };
                let woken = release_pg(&mut tx, &[(endpoint_id, delivery_id)], wakes).await?;
                tx.commit().await?;
                woken
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let woken =
                    release_sqlite(&mut tx, &[(endpoint_id, delivery_id)], &[(endpoint_id, 1)])
                        .await?;
                tx.commit().await?;
                woken
            }
        };
        self.wake_woken(&woken);
        Ok(())
    }

    /// Wakes this process's pools of the queues whose jobs a release made runnable.
    pub(super) fn wake_woken(&self, queues: &[String]) {
        for queue in queues {
            self.wakeups().wake(queue);
        }
    }
}

/// Lets this transaction's commit return before its WAL is flushed (PostgreSQL). Safe for the
/// gate and the attempts' record: what they write is made durable by the job's own result,
/// written after them with a flushed commit (WAL is flushed in order), and a database crash
/// before that loses only soft state the engine recovers anyway (a slot expires, a lease
/// runs out and the job is rescued; at-least-once). It takes a flush wait off every
/// delivery's path, twice.
pub(super) async fn relaxed_commit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The endpoint ids of `index` in the order of their facts.
fn index_ids(index: &HashMap<String, usize>) -> Vec<&String> {
    let mut ids: Vec<(&String, usize)> = index.iter().map(|(id, at)| (id, *at)).collect();
    ids.sort_by_key(|(_, at)| *at);
    ids.into_iter().map(|(id, _)| id).collect()
}

/// How long an open circuit first waits before its probe.
pub const CIRCUIT_COOLDOWN: Duration = Duration::from_secs(60);
/// The longest wait of an open circuit.
pub const CIRCUIT_COOLDOWN_MAX: Duration = Duration::from_secs(43_200);
