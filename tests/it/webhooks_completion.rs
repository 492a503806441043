//! A successful delivery's attempt record written in its job's completion transaction
//! (`store/completion.rs`, `store/webhook_record.rs`), on both backends: a completion refused
//! by its lease fence records nothing (no attempt row, the delivery still pending, its slot
//! still held); the accepted one records the attempt, marks the delivery succeeded, frees the
//! slot, resets the endpoint's failure streak and resolves its degraded alert, all at once.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::store::{
    AttemptOutcome, AttemptRow, Completion, CompletionWrite, Gate, GateAsk, NewAlert,
};
use hangar_workers::webhooks::endpoint;
use hangar_workers::wire::parse_event_body;
use serde_json::json;

use crate::support::{Backend, TestDb};
use crate::webhooks_support::{trip_endpoint, webhook_context};

async fn recorded_with_the_completion(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let context = webhook_context(&store);
    let (ep, _) = endpoint::create(
        &context,
        &trip_endpoint("ws_1", "http://127.0.0.1:9/hook", Default::default()),
    )
    .await
    .expect("endpoint");
    let event = parse_event_body(
        json!({"id": "evt_c1", "type": "trip.created", "workspace_id": "ws_1",
            "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_1"}})
        .to_string()
        .as_bytes(),
    )
    .expect("event");
    let route = context.route();
    assert!(store.publish_event(&event, &route).await.expect("publish"));
    let jobs = store
        .claim(&route.queue, "test", 10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1, "one delivery, one job");
    let job = &jobs[0];
    let delivery = job.args["delivery_id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let gate = store
        .webhook_gate(&GateAsk {
            delivery_id: delivery.clone(),
            endpoint_id: ep.id.clone(),
            job_id: job.id.0,
            lease_token: job.lease_token,
            retry: false,
            slot_ttl: Duration::from_secs(90),
            workspace_share: 25,
            retry_share: 20,
        })
        .await
        .expect("gate");
    assert!(matches!(gate, Gate::Go { .. }), "{gate:?}");
    // The endpoint had been failing: three in a row, with its degraded alert open.
    db.sql(&format!(
        "UPDATE hangar_webhook_endpoints SET failure_streak = 3 WHERE id = '{}'",
        ep.id
    ))
    .await;
    let incident = format!("webhook:{}:degraded", ep.id);
    store
        .raise_alerts(&[NewAlert {
            workspace_id: Some("ws_1".to_owned()),
            kind: AlertKind::WebhookDegraded,
            severity: Severity::Warning,
            message: "degraded".to_owned(),
            incident_key: incident.clone(),
            integration: None,
        }])
        .await
        .expect("alert");

    let record = AttemptRow {
        delivery_id: delivery.clone(),
        endpoint_id: ep.id.clone(),
        job_id: job.id.0,
        started_at: Utc::now(),
        address: Some("127.0.0.1:9".to_owned()),
        request_headers: "{}".to_owned(),
        status: Some(200),
        response_headers: Some("{}".to_owned()),
        response_body: Some("ok".to_owned()),
        body_truncated: false,
        body_size: Some(2),
        total_ms: 3,
        first_byte_ms: Some(2),
        error_class: None,
        error: None,
        outcome: AttemptOutcome::Succeeded,
    };
    let write = [CompletionWrite::WebhookAttempt(Box::new(record))];
    let completion = |lease_token| Completion {
        id: job.id,
        lease_token,
        attempt: job.attempt,
        finished_at: Utc::now(),
    };
    let count = |sql: String| {
        let db = &db;
        async move { db.query_i64(&sql).await }
    };
    let attempts =
        format!("SELECT count(*) FROM hangar_webhook_attempts WHERE delivery_id = '{delivery}'");
    let pending = format!(
        "SELECT count(*) FROM hangar_webhook_deliveries WHERE id = '{delivery}' AND state = 'pending'"
    );
    let slots =
        format!("SELECT count(*) FROM hangar_webhook_slots WHERE delivery_id = '{delivery}'");
    let open = format!(
        "SELECT count(*) FROM hangar_alerts WHERE incident_key = '{incident}' AND resolved_at IS NULL"
    );

    // Fenced out (another lease token): nothing of the attempt is written.
    let rejected = store
        .complete_writing(&[completion(job.lease_token ^ 1)], &write)
        .await
        .expect("complete");
    assert_eq!(rejected, vec![job.id], "the stale completion is refused");
    assert_eq!(
        count(attempts.clone()).await,
        0,
        "no attempt row for a fenced-out run"
    );
    assert_eq!(
        count(pending.clone()).await,
        1,
        "the delivery is still pending"
    );
    assert_eq!(count(slots.clone()).await, 1, "its slot is still held");
    assert_eq!(
        count(open.clone()).await,
        1,
        "the degraded alert stays open"
    );

    // Accepted: the attempt, the delivery's state, the slot, the health, the alert, at once.
    let rejected = store
        .complete_writing(&[completion(job.lease_token)], &write)
        .await
        .expect("complete");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(count(attempts.clone()).await, 1, "one attempt row");
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM hangar_webhook_attempts WHERE delivery_id = '{delivery}' \
             AND status = 200 AND attempt = 1"
        ))
        .await,
        1,
        "the attempt row has its status and number"
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM hangar_webhook_deliveries WHERE id = '{delivery}' \
             AND state = 'succeeded' AND attempts = 1 AND delivered_at IS NOT NULL"
        ))
        .await,
        1,
        "the delivery succeeded"
    );
    assert_eq!(count(slots).await, 0, "its slot is free");
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM hangar_webhook_endpoints WHERE id = '{}' AND failure_streak = 0",
            ep.id
        ))
        .await,
        1,
        "the success reset the endpoint's streak"
    );
    assert_eq!(count(open).await, 0, "the degraded alert is resolved");
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM hangar_jobs WHERE id = {} AND state = 'completed'",
            job.id.0
        ))
        .await,
        1,
        "the job is completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_success_is_recorded_with_its_completion_and_only_if_fenced_in_postgres() {
    recorded_with_the_completion(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_success_is_recorded_with_its_completion_and_only_if_fenced_in_sqlite() {
    recorded_with_the_completion(Backend::Sqlite).await;
}
