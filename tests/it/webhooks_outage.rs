//! A receiver down for three days, in controlled time (the test moves the jobs' `run_at` and
//! the circuit's times back through the database instead of sleeping), on both backends:
//! with the built-in retry schedule every delivery arrives afterwards, in event order per
//! ordering key; while it is down only the first delivery of each key is tried, the circuit
//! opens (visible in the endpoint's JSON) and keeps the probes rare, and nothing is disabled.

use std::time::Duration;

use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, wait_for};
use crate::webhooks_support::{Hangar, token};

/// The built-in `webhooks` pool's retry schedule (10 s doubling to 12 h, 20 retries), polled
/// fast.
const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
poll_interval_ms = 100

[[pool]]
name = "webhooks"
queue = "webhooks"
kinds = ["webhook_delivery"]
poll_interval_ms = 100
max_attempts = 21

[pool.retry.timeout]
max_retries = 20
base_delay_ms = 10000
max_delay_ms = 43200000

[pool.retry.server]
max_retries = 20
base_delay_ms = 10000
max_delay_ms = 43200000
"#;

const DAY_MS: i64 = 86_400_000;

/// SQL of each dialect: jobs running or due now; ms to the next `run_at`; a shift back.
struct Clock {
    backend: Backend,
}

impl Clock {
    fn busy(&self) -> String {
        let now = match self.backend {
            Backend::Postgres => "now()",
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        };
        format!(
            "SELECT count(*) FROM hangar_jobs WHERE kind = 'webhook_delivery' \
             AND (state = 'running' OR (state IN ('available', 'scheduled', 'retryable') \
             AND run_at <= {now}))"
        )
    }

    /// Ms to the next `run_at` of a waiting job: 0 when one is already due (it became due
    /// after the last settle), -1 when no job waits at all.
    fn next_ms(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => {
                "SELECT CASE WHEN min(run_at) IS NULL THEN -1 \
                     ELSE GREATEST((extract(epoch FROM min(run_at) - now()) * 1000)::bigint, 0) END \
                 FROM hangar_jobs WHERE kind = 'webhook_delivery' \
                 AND state IN ('available', 'scheduled', 'retryable')"
            }
            Backend::Sqlite => {
                "SELECT COALESCE(max(min(run_at) - \
                     CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 0), -1) \
                 FROM hangar_jobs WHERE kind = 'webhook_delivery' \
                 AND state IN ('available', 'scheduled', 'retryable')"
            }
        }
    }

    /// Moves every waiting job and the endpoints' circuit and failure times `ms` earlier:
    /// the same as `ms` passing.
    fn shift(&self, ms: i64) -> String {
        let back = |column: &str| match self.backend {
            Backend::Postgres => {
                format!(
                    "{column} = {column} - make_interval(secs => {ms}::double precision / 1000)"
                )
            }
            Backend::Sqlite => format!("{column} = {column} - {ms}"),
        };
        format!(
            "UPDATE hangar_jobs SET {} WHERE kind = 'webhook_delivery' \
                 AND state IN ('available', 'scheduled', 'retryable'); \
             UPDATE hangar_webhook_endpoints SET {}, {}, {};",
            back("run_at"),
            back("circuit_open_until"),
            back("circuit_opened_at"),
            back("failing_since"),
        )
    }
}

fn event_of(hit: &crate::receiver::Hit) -> (String, String) {
    let body: Value = serde_json::from_str(&hit.body).expect("json");
    (
        body["data"]["trip_id"].as_str().expect("trip").to_owned(),
        body["id"].as_str().expect("id").to_owned(),
    )
}

async fn three_days_down(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let (serve, base) = crate::support::serve_http(&db).await;
    let hangar = Hangar::attach(serve, base);
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    receiver.set_down("outage", true);
    let created = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/switch/outage"), "event_types": ["trip.created"],
                "ordering_key": "/trip_id"}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    for (n, trip) in ["A", "B", "A", "B", "A", "B"].iter().enumerate() {
        let event = json!({"id": format!("evt_{}", n + 1), "type": "trip.created",
            "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z",
            "data": {"trip_id": trip}});
        hangar.publish(&owner, &event).await;
    }

    let clock = Clock { backend };
    let mut elapsed: i64 = 0;
    let mut down_hits = None;
    let mut saw_open = false;
    for _ in 0..600 {
        // Let every due job run to its end (sent, retried or put back to wait).
        wait_for(
            "the due jobs to settle",
            Duration::from_secs(30),
            || async { (db.query_i64(&clock.busy()).await == 0).then_some(()) },
        )
        .await;
        if down_hits.is_none() && elapsed >= 3 * DAY_MS {
            down_hits = Some(receiver.hits_on("/switch/outage").len());
            receiver.set_down("outage", false);
        }
        if down_hits.is_none() && !saw_open && elapsed > 3_600_000 {
            let endpoint = hangar.endpoint(&owner, "ws_1", &id).await;
            assert_ne!(endpoint["circuit"], "closed", "{endpoint}");
            assert!(endpoint["circuit_open_until"].is_string(), "{endpoint}");
            saw_open = true;
        }
        let next = db.query_i64(clock.next_ms()).await;
        if next < 0 {
            break; // Nothing left to run.
        }
        if next > 0 {
            db.sql(&clock.shift(next)).await;
            elapsed += next;
        }
    }
    let Some(down_hits) = down_hits else {
        let failed = db
            .query_i64(
                "SELECT count(*) FROM hangar_jobs WHERE kind = 'webhook_delivery' \
                 AND state = 'failed'",
            )
            .await;
        let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
        panic!("nothing left to run after {elapsed} ms: {failed} failed jobs; {deliveries:?}");
    };
    assert!(saw_open, "the circuit opened during the outage");
    let hits = receiver.hits_on("/switch/outage");
    eprintln!(
        "{} requests in {:.1} days down, {} after",
        down_hits,
        elapsed as f64 / DAY_MS as f64,
        hits.len() - down_hits
    );
    // While down: only the first delivery of each key was tried, both keys were (B was not
    // held back by A), and the open circuit kept the tries few.
    let tried: std::collections::BTreeSet<(String, String)> =
        hits[..down_hits].iter().map(event_of).collect();
    let heads: std::collections::BTreeSet<(String, String)> = [
        ("A".to_owned(), "evt_1".to_owned()),
        ("B".to_owned(), "evt_2".to_owned()),
    ]
    .into();
    assert_eq!(tried, heads);
    assert!(down_hits < 40, "{down_hits} tries in three days");
    // Afterwards: each once, in event order per key.
    let after: Vec<(String, String)> = hits[down_hits..].iter().map(event_of).collect();
    for (trip, order) in [
        ("A", ["evt_1", "evt_3", "evt_5"]),
        ("B", ["evt_2", "evt_4", "evt_6"]),
    ] {
        let got: Vec<&str> = after
            .iter()
            .filter(|(t, _)| t == trip)
            .map(|(_, e)| e.as_str())
            .collect();
        assert_eq!(got, order, "trip {trip}");
    }
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    assert_eq!(deliveries.len(), 6);
    for d in &deliveries {
        assert_eq!(d["state"], "succeeded", "{d}");
    }
    let endpoint = hangar.endpoint(&owner, "ws_1", &id).await;
    assert_eq!(endpoint["circuit"], "closed", "{endpoint}");
    assert_eq!(endpoint["enabled"], true, "{endpoint}");
    assert_eq!(endpoint["health"], "healthy", "{endpoint}");
}

#[tokio::test]
async fn a_receiver_down_three_days_gets_everything_in_order_postgres() {
    three_days_down(Backend::Postgres).await;
}

#[tokio::test]
async fn a_receiver_down_three_days_gets_everything_in_order_sqlite() {
    three_days_down(Backend::Sqlite).await;
}
