//! Releasing slots, in the transaction of the attempts that held them (or of a handler that
//! stopped before sending): the slots are deleted, and each endpoint's oldest waiting
//! deliveries whose jobs are scheduled are made runnable now, as many as it was told to wake
//! (the circuit's moves decide how many: `rules::circuit_after_attempt`). Returns the queues
//! of the jobs woken, so this process's pools of those queues look at once (PostgreSQL's
//! trigger also NOTIFYs every process).

use super::super::StoreError;
use super::super::rows::now_ms;

/// Frees the slots of (endpoint, delivery) pairs, in place (`slots.rs`).
const FREE_PG: &str = "UPDATE hangar_webhook_slots s SET delivery_id = NULL, expires_at = NULL, \
         retry = false, probe = false \
     FROM unnest($1::text[], $2::text[]) AS x(ep, id) \
     WHERE s.endpoint_id = x.ep AND s.delivery_id = x.id";

const FREE_SQLITE: &str = "UPDATE hangar_webhook_slots SET delivery_id = NULL, \
         expires_at = NULL, retry = 0, probe = 0 \
     WHERE endpoint_id = $1 AND delivery_id = $2";

/// Wakes, per endpoint `$1`, its `$2` oldest waiting deliveries whose jobs are scheduled.
/// The waiting ones are read from their partial index alone, at most 64 more than asked, and
/// only then joined with their jobs: joined inside the ordered search, the plan PostgreSQL
/// made before the deliveries' first ANALYZE read every delivery of the endpoint (tens of
/// milliseconds a release, holding the endpoint's lock). The 64 are for waiting rows whose
/// jobs are not scheduled (woken and not yet run again, or cancelled while waiting): past
/// that many, a waiter is left to its own timer (at most the slot's expiry).
const WAKE_PG: &str = "UPDATE hangar_jobs j SET state = 'available', run_at = now(), \
         updated_at = now() \
     FROM (SELECT w.ep, w.job_id FROM ( \
         SELECT x.ep, x.n, c.job_id, \
             row_number() OVER (PARTITION BY x.ep ORDER BY c.event_row) AS k \
         FROM unnest($1::text[], $2::bigint[]) AS x(ep, n) \
         CROSS JOIN LATERAL (SELECT d.job_id, d.event_row FROM hangar_webhook_deliveries d \
             WHERE d.endpoint_id = x.ep AND d.waiting IS NOT NULL \
             ORDER BY d.event_row LIMIT x.n + 64) AS c \
         JOIN hangar_jobs s ON s.id = c.job_id AND s.state = 'scheduled') AS w \
         WHERE w.k <= w.n) AS woken \
     WHERE j.id = woken.job_id AND j.state = 'scheduled' \
     RETURNING j.queue, woken.ep";

/// The endpoints whose every waiting delivery was woken: a release looks for waiters again
/// only after the gate puts one back (`$1` the endpoints).
const NO_WAITERS_PG: &str =
    "UPDATE hangar_webhook_endpoints SET waiters_since = NULL WHERE id = ANY($1)";

const WAKE_SQLITE: &str = "UPDATE hangar_jobs SET state = 'available', run_at = $3, \
         updated_at = $3 \
     WHERE state = 'scheduled' AND id IN ( \
         SELECT d.job_id FROM hangar_webhook_deliveries d JOIN hangar_jobs s ON s.id = d.job_id \
         WHERE d.endpoint_id = $1 AND d.waiting IS NOT NULL AND s.state = 'scheduled' \
         ORDER BY d.event_row LIMIT $2) \
     RETURNING queue";

/// The endpoints of `wakes` that had fewer waiters than they were to wake.
fn drained<'a>(wakes: &[&(&'a str, i64)], woken: &[(String, String)]) -> Vec<&'a str> {
    wakes
        .iter()
        .filter(|(ep, n)| (woken.iter().filter(|(_, w)| w == ep).count() as i64) < *n)
        .map(|(ep, _)| *ep)
        .collect()
}

fn distinct(mut queues: Vec<String>) -> Vec<String> {
    queues.sort();
    queues.dedup();
    queues
}

/// Frees the slots of `held` (endpoint, delivery) and wakes, per endpoint of `wakes`, `n`
/// waiting deliveries (PostgreSQL); returns the queues woken. `wakes` names only endpoints
/// flagged with waiters (`waiters_since`, set by the gate when it puts a delivery back, under
/// the endpoint's lock that the caller holds too: no put-back is missed); an endpoint with
/// fewer waiters than `n` has them all woken and loses its flag. So a release where nothing
/// waits runs no search at all (the search's plan also depends on the deliveries' statistics:
/// before their first ANALYZE, PostgreSQL read every delivery of the endpoint).
pub(crate) async fn release_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    held: &[(&str, &str)],
    wakes: &[(&str, i64)],
) -> Result<Vec<String>, StoreError> {
    let endpoints: Vec<&str> = held.iter().map(|(ep, _)| *ep).collect();
    let deliveries: Vec<&str> = held.iter().map(|(_, id)| *id).collect();
    sqlx::query(FREE_PG)
        .bind(&endpoints)
        .bind(&deliveries)
        .execute(&mut **tx)
        .await?;
    let wakes: Vec<&(&str, i64)> = wakes.iter().filter(|(_, n)| *n > 0).collect();
    if wakes.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints: Vec<&str> = wakes.iter().map(|(ep, _)| *ep).collect();
    let counts: Vec<i64> = wakes.iter().map(|(_, n)| *n).collect();
    let woken: Vec<(String, String)> = sqlx::query_as(WAKE_PG)
        .bind(&endpoints)
        .bind(&counts)
        .fetch_all(&mut **tx)
        .await?;
    let drained = drained(&wakes, &woken);
    if !drained.is_empty() {
        sqlx::query(NO_WAITERS_PG)
            .bind(&drained)
            .execute(&mut **tx)
            .await?;
    }
    Ok(distinct(
        woken.into_iter().map(|(queue, _)| queue).collect(),
    ))
}

/// [`release_pg`] on SQLite.
pub(crate) async fn release_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    held: &[(&str, &str)],
    wakes: &[(&str, i64)],
) -> Result<Vec<String>, StoreError> {
    for (endpoint, delivery) in held {
        sqlx::query(FREE_SQLITE)
            .bind(endpoint)
            .bind(delivery)
            .execute(&mut **tx)
            .await?;
    }
    let now = now_ms();
    let mut queues = Vec::new();
    for (endpoint, n) in wakes.iter().filter(|(_, n)| *n > 0) {
        let woken: Vec<String> = sqlx::query_scalar(WAKE_SQLITE)
            .bind(endpoint)
            .bind(n)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        if (woken.len() as i64) < *n {
            sqlx::query("UPDATE hangar_webhook_endpoints SET waiters_since = NULL WHERE id = $1")
                .bind(endpoint)
                .execute(&mut **tx)
                .await?;
        }
        queues.extend(woken);
    }
    Ok(distinct(queues))
}
