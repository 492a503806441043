//! Per-endpoint limits on both backends, as a receiver sees them: the settings in the
//! endpoint's JSON (checked, the error naming the field), the concurrency limit (the receiver
//! counts requests in flight), the rate limit, and waiting that uses no attempt; a dead
//! endpoint (never answering) does not hold a healthy one's deliveries behind its timeouts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, wait_for};
use crate::webhooks_support::{Hangar, POOLS, token, until};

fn trip_event(id: &str, event_type: &str, trip: &str) -> Value {
    json!({"id": id, "type": event_type, "workspace_id": "ws_1",
        "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": trip}})
}

async fn all_succeeded(hangar: &Hangar, owner: &str, id: &str, n: usize) -> bool {
    let deliveries = hangar.deliveries(owner, "ws_1", id).await;
    deliveries.len() == n && deliveries.iter().all(|d| d["state"] == "succeeded")
}

async fn settings_concurrency_and_rate(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let path = "/api/v1/workspaces/ws_1/webhook-endpoints";

    // Bad settings are refused, the message naming the field.
    for (body, field) in [
        (json!({"max_in_flight": 0}), "max_in_flight"),
        (json!({"max_in_flight": 101}), "max_in_flight"),
        (json!({"rate_limit_per_s": 0}), "rate_limit_per_s"),
        (json!({"ordering_key": "trip_id"}), "ordering_key"),
        (json!({"ordering_key": "/a~2"}), "ordering_key"),
    ] {
        let mut body = body;
        body["url"] = json!(receiver.url("/x"));
        let (status, answer) = hangar.call("POST", path, &owner, Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }

    // The defaults, then a PATCH that sets and one that clears.
    let plain = hangar
        .create(&owner, "ws_1", json!({"url": receiver.url("/x")}))
        .await;
    assert_eq!(plain["max_in_flight"], 10);
    assert_eq!(plain["rate_limit_per_s"], Value::Null);
    assert_eq!(plain["ordering_key"], Value::Null);
    assert_eq!(plain["circuit"], "closed");
    assert_eq!(plain["circuit_open_until"], Value::Null);
    let plain_id = plain["id"].as_str().expect("id");
    let one = format!("{path}/{plain_id}");
    let (status, changed) = hangar
        .call(
            "PATCH",
            &one,
            &owner,
            Some(json!({"max_in_flight": 3, "rate_limit_per_s": 7, "ordering_key": "/trip_id"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["max_in_flight"],
            &changed["rate_limit_per_s"],
            &changed["ordering_key"]
        ),
        (&json!(3), &json!(7), &json!("/trip_id"))
    );
    let (_, cleared) = hangar
        .call(
            "PATCH",
            &one,
            &owner,
            Some(json!({"rate_limit_per_s": null, "description": "d"})),
        )
        .await;
    assert_eq!(cleared["rate_limit_per_s"], Value::Null);
    assert_eq!(cleared["ordering_key"], "/trip_id", "absent fields stay");
    assert_eq!(cleared["max_in_flight"], 3);
    let (status, _) = hangar.call("DELETE", &one, &owner, None).await;
    assert_eq!(status, 204);

    // Two in flight at most: eight deliveries to a receiver that takes 300 ms each.
    let slow = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/slow/300"), "event_types": ["trip.created"],
                "max_in_flight": 2}),
        )
        .await;
    let slow_id = slow["id"].as_str().expect("id").to_owned();
    // Three a second at most (a burst of one second's worth).
    let rated = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/rated"), "event_types": ["trip.updated"],
                "rate_limit_per_s": 2}),
        )
        .await;
    let rated_id = rated["id"].as_str().expect("id").to_owned();
    for n in 0..8 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_c{n}"), "trip.created", "t"),
            )
            .await;
    }
    for n in 0..5 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_r{n}"), "trip.updated", "t"),
            )
            .await;
    }
    until("the eight slow deliveries", || {
        all_succeeded(&hangar, &owner, &slow_id, 8)
    })
    .await;
    until("the five rated deliveries", || {
        all_succeeded(&hangar, &owner, &rated_id, 5)
    })
    .await;
    assert_eq!(receiver.peak("/slow/300"), 2, "two in flight at most");
    let slow_hits = receiver.hits_on("/slow/300");
    assert_eq!(slow_hits.len(), 8);
    // A waiting delivery sleeps until the earliest slot would expire (90 s): each release
    // wakes the next one, so four rounds of 300 ms take seconds, not minutes.
    let span = slow_hits[7].at - slow_hits[0].at;
    assert!(
        span < Duration::from_secs(15),
        "woken by releases: {span:?}"
    );
    // Two at once, then one every 500 ms: the fifth goes 1.5 s after the first.
    let rated_hits = receiver.hits_on("/rated");
    assert_eq!(rated_hits.len(), 5);
    let span = rated_hits[4].at - rated_hits[0].at;
    assert!(span >= Duration::from_millis(1400), "{span:?}");
    // Waiting for a slot or the rate used no attempt.
    for id in [&slow_id, &rated_id] {
        for d in hangar.deliveries(&owner, "ws_1", id).await {
            assert_eq!(d["attempt_count"], 1, "{d}");
            assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{d}");
        }
    }
    // And no slot is left taken.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM hangar_webhook_slots WHERE delivery_id IS NOT NULL")
            .await,
        0
    );
    // The slots are the endpoint's two rows, taken and freed in place eight times (not a
    // row per delivery).
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM hangar_webhook_slots WHERE endpoint_id = '{slow_id}'"
        ))
        .await,
        2
    );
}

#[tokio::test]
async fn settings_concurrency_and_rate_postgres() {
    settings_concurrency_and_rate(Backend::Postgres).await;
}

#[tokio::test]
async fn settings_concurrency_and_rate_sqlite() {
    settings_concurrency_and_rate(Backend::Sqlite).await;
}

/// The milliseconds from each delivery's creation to its success.
async fn latencies(hangar: &Hangar, owner: &str, id: &str) -> Vec<i64> {
    hangar
        .deliveries(owner, "ws_1", id)
        .await
        .iter()
        .map(|d| {
            let at = |field: &str| {
                chrono::DateTime::parse_from_rfc3339(d[field].as_str().expect(field)).expect("time")
            };
            (at("delivered_at") - at("created_at")).num_milliseconds()
        })
        .collect()
}

async fn dead_endpoint_does_not_delay_a_healthy_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Four slots in this process: without the endpoint's limit the dead endpoint's requests
    // would take them all, each for the client's 30 s timeout.
    let pools = POOLS.replace(
        "kinds = [\"webhook_delivery\"]",
        "kinds = [\"webhook_delivery\"]\nconcurrency = 4",
    );
    db.pools(&pools);
    let (serve, base) = crate::support::serve_http(&db).await;
    let hangar = Hangar::attach(serve, base);
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let dead = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/hang"), "event_types": ["trip.created"],
                "max_in_flight": 2}),
        )
        .await;
    let dead_id = dead["id"].as_str().expect("id").to_owned();
    let healthy = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/ok"), "event_types": ["trip.updated"]}),
        )
        .await;
    let healthy_id = healthy["id"].as_str().expect("id").to_owned();

    // Alone: the healthy endpoint's latency.
    for n in 0..5 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_a{n}"), "trip.updated", "t"),
            )
            .await;
    }
    until("the healthy deliveries alone", || {
        all_succeeded(&hangar, &owner, &healthy_id, 5)
    })
    .await;
    let alone = latencies(&hangar, &owner, &healthy_id).await;

    // The dead endpoint's deliveries first, then the healthy one's.
    for n in 0..6 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_d{n}"), "trip.created", "t"),
            )
            .await;
    }
    until("the dead endpoint's requests out", || async {
        receiver.hits_on("/hang").len() >= 2
    })
    .await;
    for n in 0..5 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_b{n}"), "trip.updated", "t"),
            )
            .await;
    }
    // Well before the dead requests time out (30 s), the healthy ones are all delivered.
    wait_for(
        "the healthy deliveries beside the dead ones",
        Duration::from_secs(20),
        || async {
            all_succeeded(&hangar, &owner, &healthy_id, 10)
                .await
                .then_some(())
        },
    )
    .await;
    let beside = latencies(&hangar, &owner, &healthy_id).await;
    let dead_deliveries = hangar.deliveries(&owner, "ws_1", &dead_id).await;
    assert_eq!(dead_deliveries.len(), 6);
    assert!(
        dead_deliveries
            .iter()
            .all(|d| d["state"] == "pending" && d["attempt_count"] == 0),
        "the dead endpoint's attempts are still out: {dead_deliveries:?}"
    );
    assert_eq!(receiver.hits_on("/hang").len(), 2, "two in flight, no more");
    // The dead endpoint's four others wait without polling: their jobs are parked until its
    // first slot would expire (90 s after it was taken), to be woken by a release sooner.
    let parked = if db.url.starts_with("postgres") {
        format!(
            "SELECT count(*) FROM hangar_jobs j JOIN hangar_webhook_deliveries d \
             ON d.job_id = j.id WHERE d.endpoint_id = '{dead_id}' AND j.state = 'scheduled' \
             AND j.attempt = 0 AND j.run_at > now() + interval '45 seconds'"
        )
    } else {
        format!(
            "SELECT count(*) FROM hangar_jobs j JOIN hangar_webhook_deliveries d \
             ON d.job_id = j.id WHERE d.endpoint_id = '{dead_id}' AND j.state = 'scheduled' \
             AND j.attempt = 0 AND j.run_at > {}",
            chrono::Utc::now().timestamp_millis() + 45_000
        )
    };
    assert_eq!(db.query_i64(&parked).await, 4, "parked, not polled");
    eprintln!("healthy latency ms alone {alone:?}, beside a dead endpoint {beside:?}");
}

#[tokio::test]
async fn dead_endpoint_does_not_delay_a_healthy_one_postgres() {
    dead_endpoint_does_not_delay_a_healthy_one(Backend::Postgres).await;
}

#[tokio::test]
async fn dead_endpoint_does_not_delay_a_healthy_one_sqlite() {
    dead_endpoint_does_not_delay_a_healthy_one(Backend::Sqlite).await;
}

/// The workspace's share of the delivery slots comes from the pool file
/// (`webhook_workspace_share`): with 1, an endpoint allowed 5 in flight gets 1.
async fn the_workspace_share_is_a_pool_setting(backend: Backend) {
    let db = TestDb::new(backend).await;
    let pools = POOLS.replace(
        "kinds = [\"webhook_delivery\"]",
        "kinds = [\"webhook_delivery\"]\nwebhook_workspace_share = 1",
    );
    db.pools(&pools);
    let (serve, base) = crate::support::serve_http(&db).await;
    let hangar = Hangar::attach(serve, base);
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let slow = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/slow/200"), "event_types": ["trip.created"],
                "max_in_flight": 5}),
        )
        .await;
    let slow_id = slow["id"].as_str().expect("id").to_owned();
    for n in 0..4 {
        hangar
            .publish(
                &owner,
                &trip_event(&format!("evt_s{n}"), "trip.created", "t"),
            )
            .await;
    }
    until("the four deliveries", || {
        all_succeeded(&hangar, &owner, &slow_id, 4)
    })
    .await;
    assert_eq!(receiver.peak("/slow/200"), 1, "the workspace's one slot");
}

#[tokio::test]
async fn webhooks_the_workspace_share_is_a_pool_setting_postgres() {
    the_workspace_share_is_a_pool_setting(Backend::Postgres).await;
}

#[tokio::test]
async fn webhooks_the_workspace_share_is_a_pool_setting_sqlite() {
    the_workspace_share_is_a_pool_setting(Backend::Sqlite).await;
}
