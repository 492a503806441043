//! What the attempt log keeps and for how long, on both backends: an expunged delivery's
//! exchange is erased and it can no longer be resent; attempts past their retention are
//! deleted while the delivery stays; an answer is kept to its first 16 KiB, and no more is read.

use std::time::Duration;

use hangar_workers::webhooks::retention::AttemptPruner;
use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb};
use crate::webhooks_support::{Hangar, event, token, until};

async fn expunge_and_retention(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let created = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/script/x/500")}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    hangar
        .publish(&owner, &event("evt_a", "trip.created", "ws_1"))
        .await;
    hangar
        .publish(&owner, &event("evt_b", "trip.updated", "ws_1"))
        .await;
    until("both delivered", || async {
        hangar
            .deliveries(&owner, "ws_1", &id)
            .await
            .iter()
            .filter(|d| d["state"] == "succeeded")
            .count()
            == 2
    })
    .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    let with_failure = deliveries
        .iter()
        .find(|d| d["attempts"].as_array().is_some_and(|a| a.len() == 2))
        .expect("the delivery that met the 500");
    let attempt = &with_failure["attempts"][0];
    assert_eq!(attempt["response_body"], "scripted");
    assert_eq!(attempt["body_truncated"], false);
    assert_eq!(attempt["body_size"], 8);
    assert!(attempt["response_headers"]["content-length"].is_string());
    assert!(attempt["request_headers"]["x-planeconnection-event"].is_string());
    assert!(attempt["total_ms"].as_i64().is_some() && attempt["first_byte_ms"].as_i64().is_some());

    // Expunge: the exchange is erased, the delivery can no longer be sent.
    let delivery = with_failure["id"].as_str().expect("id").to_owned();
    let (status, _) = hangar
        .call(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/expunge"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let after = hangar.deliveries(&owner, "ws_1", &id).await;
    let expunged = after
        .iter()
        .find(|d| d["id"] == delivery.as_str())
        .expect("still listed");
    assert!(expunged["expunged_at"].is_string());
    for attempt in expunged["attempts"].as_array().expect("attempts") {
        assert_eq!(attempt["request_headers"], json!({}));
        assert!(attempt["response_headers"].is_null() && attempt["response_body"].is_null());
    }
    let (status, answer) = hangar
        .call(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/resend"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    let (status, _) = hangar
        .call("POST", "/api/v1/deliveries/dlv_nope/expunge", &owner, None)
        .await;
    assert_eq!(status, 404);

    // Retention: attempts older than it go, the deliveries stay. The server's own pruner
    // holds the lease (a pass at start, renewed each minute): another pruner does nothing
    // until it lapses, which the test makes happen at once.
    let store = db.store().await;
    let zero = AttemptPruner::new(store.clone(), "test").retention(Duration::ZERO);
    assert_eq!(
        zero.run_once().await.expect("prune"),
        0,
        "the lease is the server's"
    );
    let lapse = "DELETE FROM hangar_maintenance_leases WHERE name = 'prune:webhook_attempts'";
    db.sql(lapse).await;
    let kept = AttemptPruner::new(store.clone(), "test")
        .run_once()
        .await
        .expect("prune");
    assert_eq!(kept, 0, "nothing is 30 days old");
    db.sql(lapse).await;
    let pruned = zero.run_once().await.expect("prune");
    assert_eq!(pruned, 3);
    let after = hangar.deliveries(&owner, "ws_1", &id).await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|d| d["attempts"] == json!([])));
    assert!(after.iter().all(|d| d["attempt_count"].as_i64() >= Some(1)));

    // Inbound pushes past the retention go with them once processed; one whose job has not
    // finished stays.
    let (now, headers) = if db.url.starts_with("postgres") {
        ("now()".to_owned(), "'{}'::jsonb")
    } else {
        (chrono::Utc::now().timestamp_millis().to_string(), "'{}'")
    };
    for (key, state) in [("evt_done", "processed"), ("evt_open", "received")] {
        db.sql(&format!(
            "INSERT INTO hangar_inbound_events (workspace_id, provider, event_id, dedup_key, \
                 body, headers, received_at, state) \
             VALUES ('ws_1', 'stripe', '{key}', '{key}', '{{}}', {headers}, {now}, '{state}')"
        ))
        .await;
    }
    db.sql(lapse).await;
    assert_eq!(zero.run_once().await.expect("prune"), 1);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_inbound_events WHERE event_id = 'evt_open'")
            .await,
        1
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_inbound_events")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_erases_the_exchange_and_retention_prunes_attempts_postgres() {
    expunge_and_retention(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_erases_the_exchange_and_retention_prunes_attempts_sqlite() {
    expunge_and_retention(Backend::Sqlite).await;
}

/// A receiver answering 500 with a 100 000-byte body (`/big`) or a body that never ends
/// (`/endless`).
async fn big_answers() -> String {
    use axum::body::{Body, Bytes};
    use axum::http::StatusCode;
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/big",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(100_000)) }),
        )
        .route(
            "/endless",
            post(|| async {
                let chunks = futures_util::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(Bytes::from_static(&[b'y'; 4096]))
                });
                (StatusCode::INTERNAL_SERVER_ERROR, Body::from_stream(chunks))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

async fn response_excerpt(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let base = big_answers().await;
    let mut ids = Vec::new();
    for path in ["/big", "/endless"] {
        let created = hangar
            .create(&owner, "ws_1", json!({"url": format!("{base}{path}")}))
            .await;
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    hangar
        .publish(&owner, &event("evt_big", "trip.created", "ws_1"))
        .await;
    for (id, size) in ids.iter().zip([Some(100_000), None]) {
        until("an attempt logged", || async {
            hangar
                .deliveries(&owner, "ws_1", id)
                .await
                .first()
                .is_some_and(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
        })
        .await;
        let deliveries = hangar.deliveries(&owner, "ws_1", id).await;
        let attempt = &deliveries[0]["attempts"][0];
        assert_eq!(attempt["status"], 500);
        assert_eq!(attempt["body_truncated"], true, "{id}");
        assert_eq!(
            attempt["body_size"],
            json!(size),
            "the declared size, else unknown"
        );
        let body = attempt["response_body"].as_str().expect("excerpt");
        assert_eq!(body.len(), 16 * 1024, "exactly the first 16 KiB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_keeps_16_kib_of_the_answer_and_reads_no_more_postgres() {
    response_excerpt(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_keeps_16_kib_of_the_answer_and_reads_no_more_sqlite() {
    response_excerpt(Backend::Sqlite).await;
}
