//! A released slot wakes an endpoint's waiting deliveries without reading its other ones or
//! their jobs (PostgreSQL). Before the deliveries' first ANALYZE — a fresh install under its
//! first burst — PostgreSQL planned the old wake-up (the waiting deliveries joined with their
//! scheduled jobs inside one ordered search) as a hash join fed by every runnable job (5 003
//! rows read here to find one), on every release, holding the endpoint's lock. Now a release searches only when the gate has put a delivery
//! back since the last search came up short (`waiters_since`), and the search reads the
//! partial index of waiting deliveries before joining their jobs.

use std::time::Duration;

use hangar_workers::job::JobState;
use hangar_workers::store::{Gate, GateAsk, Store};
use hangar_workers::webhooks::{Limits, endpoint};
use hangar_workers::wire::parse_event_body;
use serde_json::json;

use crate::history_plans::flush_stats;
use crate::support::{Backend, TestDb};
use crate::webhooks_support::{trip_endpoint, webhook_context};

/// Rows of the deliveries and of the jobs read so far (sequential scans and fetches by
/// index, bitmap scans included).
async fn rows_read(db: &TestDb, store: &Store) -> i64 {
    flush_stats(store).await;
    db.query_i64(
        "SELECT COALESCE(sum(COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0)), 0)::bigint \
         FROM pg_stat_user_tables \
         WHERE relname IN ('hangar_webhook_deliveries', 'hangar_jobs')",
    )
    .await
}

fn ask(job: &hangar_workers::job::ClaimedJob, endpoint_id: &str) -> GateAsk {
    GateAsk {
        delivery_id: job.args["delivery_id"]
            .as_str()
            .expect("delivery")
            .to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        job_id: job.id.0,
        lease_token: job.lease_token,
        retry: false,
        slot_ttl: Duration::from_secs(90),
        workspace_share: 25,
        retry_share: 20,
    }
}

#[tokio::test]
async fn a_release_reads_only_the_waiting_deliveries_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    // Never analyzed while the test runs, as on a fresh install.
    db.sql("ALTER TABLE hangar_webhook_deliveries SET (autovacuum_enabled = false)")
        .await;
    let context = webhook_context(&store);
    let limits = Limits {
        max_in_flight: Some(1),
        ..Limits::default()
    };
    let (ep, _) = endpoint::create(
        &context,
        &trip_endpoint("ws_1", "http://127.0.0.1:9/hook", limits),
    )
    .await
    .expect("endpoint");
    let route = context.route();
    for n in 1..=2 {
        let event = parse_event_body(
            json!({"id": format!("evt_{n}"), "type": "trip.created", "workspace_id": "ws_1",
                "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_1"}})
            .to_string()
            .as_bytes(),
        )
        .expect("event");
        assert!(store.publish_event(&event, &route).await.expect("publish"));
    }
    let jobs = store
        .claim(&route.queue, "test", 10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 2);
    let (first, second) = (ask(&jobs[0], &ep.id), ask(&jobs[1], &ep.id));
    assert!(matches!(
        store.webhook_gate(&first).await.expect("gate"),
        Gate::Go { .. }
    ));
    // One in flight at most: the second waits (put back, its job scheduled).
    let gate = store.webhook_gate(&second).await.expect("gate");
    assert!(matches!(gate, Gate::Wait { .. }), "{gate:?}");

    // The endpoint's other 5 000 deliveries, pending with their jobs, as in a burst.
    db.sql(&format!(
        "WITH e AS (INSERT INTO hangar_events (workspace_id, event_id, type, occurred_at, data) \
             SELECT 'ws_1', 'evt_bulk_' || g, 'trip.created', now(), '{{}}' \
             FROM generate_series(1, 5000) g RETURNING id, event_id, type), \
         j AS (INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, run_at) \
             SELECT 'webhook_delivery', '{queue}', \
                 jsonb_build_object('delivery_id', 'dlv_bulk_' || e.id), 'available', 6, now() \
             FROM e RETURNING id, args->>'delivery_id' AS delivery) \
         INSERT INTO hangar_webhook_deliveries (id, endpoint_id, workspace_id, event_row, \
             event_id, event_type, state, job_id) \
         SELECT 'dlv_bulk_' || e.id, '{endpoint}', 'ws_1', e.id, e.event_id, e.type, 'pending', j.id \
         FROM e JOIN j ON j.delivery = 'dlv_bulk_' || e.id",
        queue = route.queue,
        endpoint = ep.id,
    ))
    .await;
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'hangar_webhook_deliveries' \
             AND last_analyze IS NULL AND last_autoanalyze IS NULL"
        )
        .await,
        1,
        "the deliveries have no statistics yet"
    );

    // The release wakes the waiting delivery, reading it and little else.
    let before = rows_read(&db, &store).await;
    store
        .release_webhook_slot(&first.delivery_id, &ep.id)
        .await
        .expect("release");
    let read = rows_read(&db, &store).await - before;
    let woken = store.job(jobs[1].id).await.expect("job");
    assert_eq!(woken.state, JobState::Available, "the waiter is woken");
    assert!(
        read < 200,
        "the release read {read} rows beside the endpoint's 5 002 deliveries and their jobs"
    );

    // Nothing waits now: the next release searches nothing.
    let again = ask(
        &store
            .claim(&route.queue, "test", 1, Duration::from_secs(30))
            .await
            .expect("claim")[0],
        &ep.id,
    );
    assert!(matches!(
        store.webhook_gate(&again).await.expect("gate"),
        Gate::Go { .. }
    ));
    let before = rows_read(&db, &store).await;
    store
        .release_webhook_slot(&again.delivery_id, &ep.id)
        .await
        .expect("release");
    let read = rows_read(&db, &store).await - before;
    assert!(read < 10, "a release with no waiter read {read} rows");
}
