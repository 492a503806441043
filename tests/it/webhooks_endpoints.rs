//! Webhook endpoints through the API, on both backends: URLs refused at creation when private
//! targets are not allowed (loopback, private, link-local, IPv4-mapped IPv6, plain http),
//! unknown event types named, the safety role rules (and which "all" endpoints get safety
//! events), personal data refused before anything fans out, workspace isolation.

use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{ANY_PORT, Backend, TestDb};
use crate::webhooks_support::{Hangar, POOLS, event, token, until};

async fn refusals(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_ALLOW_PRIVATE_TARGETS", "0");
    let hangar = Hangar::start_with(&db, command).await;
    let owner = token(&db, "owner");
    let path = "/api/v1/workspaces/ws_1/webhook-endpoints";
    for url in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[fe80::1]/hook",
        "http://example.com/hook",
    ] {
        let (status, answer) = hangar
            .call("POST", path, &owner, Some(json!({"url": url})))
            .await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_endpoint", "{url}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("url: "),
            "{url}: {answer}"
        );
    }
    let (status, answer) = hangar
        .call(
            "POST",
            path,
            &owner,
            Some(json!({"url": "https://example.com/hook", "event_types": ["trip.created", "trip.exploded"]})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'trip.exploded'")
    );
    let (status, _) = hangar
        .call(
            "POST",
            path,
            &owner,
            Some(json!({"url": "https://example.com/hook", "secret": "x"})),
        )
        .await;
    assert_eq!(status, 422, "unknown fields are refused");
    let (listed_status, listed) = hangar.call("GET", path, &owner, None).await;
    assert_eq!(listed_status, 200);
    assert_eq!(listed, json!([]), "nothing was created");

    // A name is accepted at creation; what it resolves to is checked at every connect: a
    // name resolving to loopback is refused then, a client error (not retried).
    let local = hangar
        .create(&owner, "ws_1", json!({"url": "https://localhost:9/hook"}))
        .await;
    let id = local["id"].as_str().expect("id").to_owned();
    hangar
        .publish(&owner, &event("evt_l", "trip.created", "ws_1"))
        .await;
    until("the refused attempt", || async {
        hangar
            .deliveries(&owner, "ws_1", &id)
            .await
            .first()
            .is_some_and(|d| d["state"] == "failed")
    })
    .await;
    let deliveries = hangar.deliveries(&owner, "ws_1", &id).await;
    let attempts = deliveries[0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "not retried: {attempts:?}");
    assert_eq!(attempts[0]["error_class"], "client");
    let error = attempts[0]["error"].as_str().expect("error");
    assert!(
        error.contains("refused") && error.contains("127.0.0.1"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_urls_and_unknown_types_are_refused_at_creation_postgres() {
    refusals(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_urls_and_unknown_types_are_refused_at_creation_sqlite() {
    refusals(Backend::Sqlite).await;
}

async fn safety_roles(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let (owner, admin, safety, operator) = (
        token(&db, "owner"),
        token(&db, "admin"),
        token(&db, "safety_manager"),
        token(&db, "operator"),
    );
    let receiver = Receiver::start().await;
    let path = "/api/v1/workspaces/ws_1/webhook-endpoints";
    let body =
        |p: &str, types: serde_json::Value| json!({"url": receiver.url(p), "event_types": types});

    // Safety types need safety_manager (or owner); the others admin (or owner).
    let (status, answer) = hangar
        .call(
            "POST",
            path,
            &admin,
            Some(body("/a", json!(["hazard.identified"]))),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("safety_manager")
    );
    let (status, _) = hangar
        .call(
            "POST",
            path,
            &safety,
            Some(body("/s", json!(["trip.created"]))),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = hangar
        .call("POST", path, &safety, Some(body("/s", json!([]))))
        .await;
    assert_eq!(status, 403, "an 'all' endpoint needs admin");
    let (status, _) = hangar
        .call(
            "POST",
            path,
            &operator,
            Some(body("/o", json!(["trip.created"]))),
        )
        .await;
    assert_eq!(status, 403);
    let safety_ep = hangar
        .create(
            &safety,
            "ws_1",
            body("/safety", json!(["hazard.identified"])),
        )
        .await;
    let admin_all = hangar
        .create(&admin, "ws_1", body("/admin-all", json!([])))
        .await;
    let owner_all = hangar
        .create(&owner, "ws_1", body("/owner-all", json!([])))
        .await;
    assert_eq!(admin_all["safety_allowed"], false);
    assert_eq!(owner_all["safety_allowed"], true);
    // An admin may not change the safety endpoint.
    let (status, _) = hangar
        .call(
            "PATCH",
            &format!("{path}/{}", safety_ep["id"].as_str().unwrap()),
            &admin,
            Some(json!({"url": receiver.url("/stolen")})),
        )
        .await;
    assert_eq!(status, 403);

    // A safety event reaches the safety endpoint and the owner's "all", not the admin's.
    hangar
        .publish(&owner, &event("evt_s1", "hazard.identified", "ws_1"))
        .await;
    hangar
        .publish(&owner, &event("evt_t1", "trip.created", "ws_1"))
        .await;
    // Another workspace's event reaches none of them.
    hangar
        .publish(&owner, &event("evt_o1", "trip.created", "ws_2"))
        .await;
    until("four deliveries", || async { receiver.hits().len() >= 4 }).await;
    let on = |p: &str| {
        let mut ids: Vec<String> = receiver
            .hits_on(p)
            .iter()
            .map(|h| h.headers["webhook-id"].clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(on("/safety"), ["evt_s1"]);
    assert_eq!(on("/owner-all"), ["evt_s1", "evt_t1"]);
    assert_eq!(on("/admin-all"), ["evt_t1"]);
    assert!(receiver.hits_on("/stolen").is_empty());

    // Personal data is refused at the entrance: nothing stored, nothing sent.
    let mut pii = event("evt_p1", "trip.created", "ws_1");
    pii["data"]["email"] = json!("pilot@example.com");
    let (status, answer) = hangar
        .call("POST", "/api/v1/events", &owner, Some(pii))
        .await;
    assert_eq!(status, 422, "{answer}");
    let id = admin_all["id"].as_str().unwrap();
    assert_eq!(hangar.deliveries(&owner, "ws_1", id).await.len(), 1);

    // A token of another workspace sees none of ws_1's endpoints.
    let other = crate::support::stdout_ok(&db.run(&[
        "tokens",
        "create",
        "--role",
        "owner",
        "--workspace",
        "ws_2",
    ]))
    .trim()
    .to_owned();
    let (status, _) = hangar.call("GET", path, &other, None).await;
    assert_eq!(status, 403);
    let (status, _) = hangar
        .call(
            "GET",
            "/api/v1/workspaces/ws_2/webhook-endpoints",
            &other,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = hangar
        .call(
            "GET",
            &format!("/api/v1/workspaces/ws_2/webhook-endpoints/{id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(status, 404, "another workspace's endpoint is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_types_need_the_safety_role_and_all_filters_follow_their_creator_postgres() {
    safety_roles(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_types_need_the_safety_role_and_all_filters_follow_their_creator_sqlite() {
    safety_roles(Backend::Sqlite).await;
}
