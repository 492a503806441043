//! Outbound deliveries as a receiver sees them, on both backends: the contract's bytes and
//! headers verified by the Standard Webhooks reference crate and by a plain HMAC check, the
//! same body and delivery id across retries, both secrets during a rotation, 410 disabling
//! the endpoint with its held deliveries released when it is enabled again, and the fan-out
//! from the Redis ingress; redirects are not followed.

use serde_json::json;

use crate::receiver::{Hit, Receiver};
use crate::support::{Backend, TestDb, TestRedis};
use crate::webhooks_support::{Hangar, event, plane_verifies, standard_verifies, token, until};

async fn retries_and_rotation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let created = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/script/retry/500,503"), "event_types": ["trip.created"]}),
        )
        .await;
    let old_secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(old_secret.starts_with("whsec_"));
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("ep_"), "{id}");
    assert_eq!(created["health"], "healthy");
    // The secret is shown on create only.
    let shown = hangar.endpoint(&owner, "ws_1", &id).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert!(!shown.to_string().contains(&old_secret));

    // Two 5xx, then 200: three attempts of one delivery.
    hangar
        .publish(&owner, &event("evt_1", "trip.created", "ws_1"))
        .await;
    // Not subscribed: no delivery.
    hangar
        .publish(&owner, &event("evt_2", "invoice.paid", "ws_1"))
        .await;
    until("three attempts", || async {
        receiver.hits_on("/script/retry").len() >= 3
    })
    .await;
    let hits = receiver.hits_on("/script/retry");
    assert_eq!(hits.len(), 3, "one delivery, three attempts");
    let first = &hits[0];
    assert_eq!(
        first.body,
        r#"{"id":"evt_1","type":"trip.created","workspace_id":"ws_1","timestamp":"2026-11-22T10:00:00Z","data":{"n":1,"trip_id":"trip_42"}}"#
    );
    for hit in &hits {
        assert_eq!(hit.body, first.body, "byte-identical body on every attempt");
        assert_eq!(
            hit.headers["x-planeconnection-delivery-id"],
            first.headers["x-planeconnection-delivery-id"],
            "one delivery id across retries"
        );
        assert_eq!(hit.headers["content-type"], "application/json");
        assert_eq!(hit.headers["x-planeconnection-event"], "trip.created");
        assert_eq!(hit.headers["webhook-id"], "evt_1");
        assert!(
            standard_verifies(hit, &old_secret),
            "Standard Webhooks verifies"
        );
        assert!(plane_verifies(hit, &old_secret), "HMAC verifies");
    }
    let delivery_id = first.headers["x-planeconnection-delivery-id"].clone();
    assert!(delivery_id.starts_with("dlv_"), "{delivery_id}");

    // The delivery with its three attempts, signatures redacted.
    until("the delivery succeeded", || async {
        hangar
            .deliveries(&owner, "ws_1", &id)
            .await
            .first()
            .is_some_and(|d| d["state"] == "succeeded")
    })
    .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    assert_eq!(delivery["id"], delivery_id);
    let attempts = delivery["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[0]["error_class"], "server");
    assert_eq!(attempts[2]["status"], 200);
    assert!(
        attempts[2]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    let logged = attempts[0]["request_headers"].to_string();
    assert!(logged.contains("v1=<redacted>"), "{logged}");
    assert!(!logged.contains(&old_secret));
    assert!(
        !logged.contains(hits[0].headers["x-planeconnection-signature"].trim_start_matches("v1=")),
        "no signature value in the log"
    );

    // Rotation: the new secret and the old one both sign during the grace.
    let (status, rotated) = hangar
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws_1/webhook-endpoints/{id}/rotate-secret"),
            &owner,
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    hangar
        .publish(&owner, &event("evt_3", "trip.created", "ws_1"))
        .await;
    let during = wait_hit(&receiver, "evt_3").await;
    assert!(
        standard_verifies(&during, &new_secret),
        "the new secret verifies"
    );
    assert!(
        standard_verifies(&during, &old_secret),
        "the old secret still verifies"
    );
    assert!(plane_verifies(&during, &new_secret) && plane_verifies(&during, &old_secret));
    assert_eq!(
        during.headers["x-planeconnection-signature"]
            .split(',')
            .count(),
        2
    );
    assert_eq!(during.headers["webhook-signature"].split(' ').count(), 2);

    // Revoked now: only the newest secret signs.
    let (status, revoked) = hangar
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws_1/webhook-endpoints/{id}/rotate-secret"),
            &owner,
            Some(json!({"revoke_now": true})),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let newest = revoked["secret"].as_str().expect("secret").to_owned();
    hangar
        .publish(&owner, &event("evt_4", "trip.created", "ws_1"))
        .await;
    let after = wait_hit(&receiver, "evt_4").await;
    assert!(standard_verifies(&after, &newest));
    assert!(!standard_verifies(&after, &new_secret) && !plane_verifies(&after, &old_secret));

    // The same event id again creates nothing.
    hangar
        .publish(&owner, &event("evt_4", "trip.created", "ws_1"))
        .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    assert_eq!(deliveries.len(), 3, "evt_1, evt_3, evt_4 once each");
}

/// The first request whose body is event `id`'s.
async fn wait_hit(receiver: &Receiver, id: &str) -> Hit {
    let needle = format!(r#""id":"{id}""#);
    until(&format!("the delivery of {id}"), || async {
        receiver.hits().iter().any(|h| h.body.contains(&needle))
    })
    .await;
    receiver
        .hits()
        .into_iter()
        .find(|h| h.body.contains(&needle))
        .expect("hit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_body_and_id_and_a_rotation_signs_with_both_secrets_postgres() {
    retries_and_rotation(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_body_and_id_and_a_rotation_signs_with_both_secrets_sqlite() {
    retries_and_rotation(Backend::Sqlite).await;
}

async fn gone_holds_and_releases(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let mut command = db.command(&["serve", "--bind", crate::support::ANY_PORT]);
    redis.env(&mut command);
    db.pools(crate::webhooks_support::POOLS);
    let hangar = Hangar::start_with(&db, command).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let created = hangar
        .create(&owner, "ws_1", json!({"url": receiver.url("/status/410")}))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();

    // From the Redis ingress: the event fans out to the endpoint, which answers 410.
    redis.xadd(
        &json!({"kind": "event", "event": event("evt_r1", "trip.created", "ws_1")}).to_string(),
    );
    until("the endpoint disabled", || async {
        hangar.endpoint(&owner, "ws_1", &id).await["health"] == "disabled"
    })
    .await;
    let endpoint = hangar.endpoint(&owner, "ws_1", &id).await;
    assert_eq!(endpoint["enabled"], false);
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    assert_eq!(
        receiver.hits_on("/status/410").len(),
        1,
        "410 is not retried"
    );
    let (_, alerts) = hangar.call("GET", "/api/v1/alerts", &owner, None).await;
    let alert = alerts
        .as_array()
        .and_then(|a| a.iter().find(|a| a["kind"] == "channel_disabled"))
        .unwrap_or_else(|| panic!("a channel_disabled alert: {alerts}"));
    assert_eq!(alert["workspace_id"], "ws_1");

    // Disabled: new events are held, not sent, not dropped.
    hangar
        .publish(&owner, &event("evt_h1", "trip.created", "ws_1"))
        .await;
    redis.xadd(
        &json!({"kind": "event", "event": event("evt_h2", "trip.updated", "ws_1")}).to_string(),
    );
    until("two held deliveries", || async {
        hangar
            .deliveries(&owner, "ws_1", &id)
            .await
            .iter()
            .filter(|d| d["state"] == "held")
            .count()
            == 2
    })
    .await;
    assert_eq!(receiver.hits().len(), 1);

    // Enabled again at a working URL: the route answers how many it released, all arrive.
    let (status, changed) = hangar
        .call(
            "PATCH",
            &format!("/api/v1/workspaces/ws_1/webhook-endpoints/{id}"),
            &owner,
            Some(json!({"url": receiver.url("/ok"), "enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["released"], 2);
    assert_eq!(changed["health"], "healthy");
    until("the held deliveries arrive", || async {
        receiver.hits_on("/ok").len() == 2
    })
    .await;
    // In any order: ordering per endpoint is a later slice.
    let mut ids: Vec<String> = receiver
        .hits_on("/ok")
        .iter()
        .map(|h| h.headers["webhook-id"].clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["evt_h1", "evt_h2"]);
    let (_, alerts) = hangar
        .call("GET", "/api/v1/alerts?state=open", &owner, None)
        .await;
    assert!(
        !alerts.to_string().contains("channel_disabled"),
        "the alert is resolved on enabling: {alerts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_and_held_deliveries_are_released_postgres() {
    gone_holds_and_releases(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_and_held_deliveries_are_released_sqlite() {
    gone_holds_and_releases(Backend::Sqlite).await;
}

async fn redirects_fail(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{StatusCode, header};
    use axum::routing::post;
    let followed = Arc::new(AtomicUsize::new(0));
    let seen = followed.clone();
    let app = axum::Router::new()
        .route(
            "/moved",
            post(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, "/target")],
                )
            }),
        )
        .route(
            "/target",
            post(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::OK }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let created = hangar
        .create(&owner, "ws_1", json!({"url": format!("{base}/moved")}))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    hangar
        .publish(&owner, &event("evt_m", "trip.created", "ws_1"))
        .await;
    until("the redirect failed", || async {
        hangar
            .deliveries(&owner, "ws_1", &id)
            .await
            .first()
            .is_some_and(|d| d["state"] == "failed")
    })
    .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    let attempts = deliveries[0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "a redirect is not retried");
    assert_eq!(attempts[0]["status"], 301);
    assert_eq!(attempts[0]["error_class"], "client");
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect is not followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_postgres() {
    redirects_fail(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_sqlite() {
    redirects_fail(Backend::Sqlite).await;
}
