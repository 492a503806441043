//! Endpoint health and the operator's tools, on both backends: degraded after failures with
//! an alert resolved by the next success, disabled after 5 days failing without a success,
//! pause and resume releasing held deliveries, resend and replay (the route and the CLI,
//! dry run first), `hangar webhooks endpoints list|show`, and the metrics.

use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, stdout_ok};
use crate::webhooks_support::{Hangar, event, token, until};

async fn open_alerts(hangar: &Hangar, owner: &str) -> Value {
    hangar
        .call("GET", "/api/v1/alerts?state=open", owner, None)
        .await
        .1
}

async fn health_and_tools(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    // 500 four times (three failed attempts make it degraded), then 200.
    let created = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/script/deg/500,500,500,500"), "description": "ops"}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let ep_path = format!("/api/v1/workspaces/ws_1/webhook-endpoints/{id}");
    hangar
        .publish(&owner, &event("evt_1", "trip.created", "ws_1"))
        .await;
    until("degraded", || async {
        open_alerts(&hangar, &owner)
            .await
            .to_string()
            .contains("webhook_degraded")
    })
    .await;
    until("recovered", || async {
        receiver.hits_on("/script/deg").len() == 5
            && hangar.endpoint(&owner, "ws_1", &id).await["health"] == "healthy"
    })
    .await;
    let endpoint = hangar.endpoint(&owner, "ws_1", &id).await;
    assert_eq!(endpoint["failure_streak"], 0);
    assert!(endpoint["last_success_at"].is_string());
    until("the degraded alert resolved", || async {
        !open_alerts(&hangar, &owner)
            .await
            .to_string()
            .contains("webhook_degraded")
    })
    .await;

    // Pause: held; resume: released, and the answer counts them.
    let (status, paused) = hangar
        .call("POST", &format!("{ep_path}/pause"), &owner, None)
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["health"], "paused");
    hangar
        .publish(&owner, &event("evt_2", "trip.created", "ws_1"))
        .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    assert_eq!(deliveries[0]["state"], "held", "{deliveries:?}");
    let (status, resumed) = hangar
        .call("POST", &format!("{ep_path}/resume"), &owner, None)
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["released"], 1);
    until("the held delivery sent", || async {
        receiver.hits_on("/script/deg").len() == 6
    })
    .await;

    // Resend one delivery: a new attempt with the same delivery id and body.
    let first = receiver.hits_on("/script/deg")[0].clone();
    let delivery = first.headers["x-planeconnection-delivery-id"].clone();
    let (status, answer) = hangar
        .call(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/resend"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    until("the resend", || async {
        receiver.hits_on("/script/deg").len() == 7
    })
    .await;
    let resent = receiver.hits_on("/script/deg")[6].clone();
    assert_eq!(resent.headers["x-planeconnection-delivery-id"], delivery);
    assert_eq!(resent.body, first.body);

    // Replay: the route counts first (dry run), then sends; the CLI does the same.
    let since = "2000-01-01T00:00:00Z";
    let (status, dry) = hangar
        .call(
            "POST",
            &format!("{ep_path}/replay"),
            &owner,
            Some(json!({"since": since, "dry_run": true})),
        )
        .await;
    assert_eq!((status, dry["count"].clone()), (202, json!(2)), "{dry}");
    assert_eq!(
        receiver.hits_on("/script/deg").len(),
        7,
        "a dry run sends nothing"
    );
    let (status, none) = hangar
        .call(
            "POST",
            &format!("{ep_path}/replay"),
            &owner,
            Some(json!({"since": since, "failed_only": true})),
        )
        .await;
    assert_eq!(
        (status, none["count"].clone()),
        (202, json!(0)),
        "nothing failed"
    );
    let cli = stdout_ok(&db.run(&[
        "webhooks",
        "replay",
        &id,
        "--since",
        since,
        "--dry-run",
        "--json",
    ]));
    assert_eq!(serde_json::from_str::<Value>(&cli).unwrap()["count"], 2);
    let cli = stdout_ok(&db.run(&["webhooks", "replay", &id, "--since", since]));
    // The CLI prints the count, then the background job's progress until it is done.
    assert!(cli.contains("2 deliveries to send again"), "{cli}");
    assert!(
        cli.contains("2 / 2 sent again") && cli.contains(" done"),
        "{cli}"
    );
    until("the replay", || async {
        receiver.hits_on("/script/deg").len() == 9
    })
    .await;
    let bad = db.run(&["webhooks", "replay", &id, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));

    // The operator's listing: health, streak, no secret.
    let listed = stdout_ok(&db.run(&["webhooks", "endpoints", "list"]));
    assert!(
        listed.contains(&id) && listed.contains("healthy"),
        "{listed}"
    );
    assert!(!listed.contains("whsec_"));
    let shown = stdout_ok(&db.run(&["webhooks", "endpoints", "show", &id, "--json"]));
    let shown: Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(shown["endpoint"]["id"], id.as_str());
    assert_eq!(shown["deliveries"].as_array().map(Vec::len), Some(2));
    // The table form names the circuit and the limits.
    let table = stdout_ok(&db.run(&["webhooks", "endpoints", "show", &id]));
    assert!(table.contains("circuit: closed"), "{table}");
    assert!(
        table.contains("limits: 10 in flight, unlimited rate, unordered"),
        "{table}"
    );

    // Five days failing without a success: disabled, with an alert.
    let failing = hangar
        .create(&owner, "ws_1", json!({"url": receiver.url("/status/503")}))
        .await;
    let failing_id = failing["id"].as_str().expect("id").to_owned();
    let six_days_ago = match backend {
        Backend::Postgres => "now() - interval '6 days'".to_owned(),
        Backend::Sqlite => (chrono::Utc::now() - chrono::Duration::days(6))
            .timestamp_millis()
            .to_string(),
    };
    db.sql(&format!(
        "UPDATE hangar_webhook_endpoints SET failing_since = {six_days_ago}, failure_streak = 40 \
         WHERE id = '{failing_id}'"
    ))
    .await;
    hangar
        .publish(&owner, &event("evt_3", "trip.created", "ws_1"))
        .await;
    until("disabled after 5 days failing", || async {
        hangar.endpoint(&owner, "ws_1", &failing_id).await["health"] == "disabled"
    })
    .await;
    let endpoint = hangar.endpoint(&owner, "ws_1", &failing_id).await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("5 days")),
        "{endpoint}"
    );
    assert!(
        open_alerts(&hangar, &owner)
            .await
            .to_string()
            .contains(&failing_id)
    );

    // The metrics: deliveries by outcome, endpoints by health, the latency histogram.
    let metrics = reqwest::get(format!("{}/metrics", hangar.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "hangar_webhook_deliveries_total{outcome=\"delivered\"}",
        "hangar_webhook_deliveries_total{outcome=\"server\"}",
        "hangar_webhook_endpoints{health=\"disabled\"} 1",
        "hangar_webhook_endpoints{health=\"healthy\"} 1",
        "hangar_webhook_delivery_latency_seconds",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_steps_down_and_up_and_operators_resend_and_replay_postgres() {
    health_and_tools(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_steps_down_and_up_and_operators_resend_and_replay_sqlite() {
    health_and_tools(Backend::Sqlite).await;
}
