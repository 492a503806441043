//! The `inbound_event` job on both backends: a verified push becomes a catalog event that
//! fans out to the workspace's webhook endpoint (signed like any delivery); a second safety
//! report under the same id is recorded and published beside the first, never over it; a
//! QuickBooks change without an integration is recorded as such; who may set which
//! provider's material, and that it is never shown again.

use chrono::Utc;
use serde_json::{Value, json};

use crate::inbound_support::{configure, envelope, intuit, plane, push, start, stripe};
use crate::support::{Backend, Receiver, TestDb};
use crate::webhooks_support::{plane_verifies, token, until};

const WS: &str = "ws_proc";

async fn pushes_become_events_and_safety_reports_are_appended(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    // An owner's "all" endpoint receives safety events too.
    let endpoint = hangar
        .create(&owner, WS, json!({"url": receiver.url("/in")}))
        .await;
    let endpoint_secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let (_, asap) = configure(&hangar, &owner, WS, "asap", json!({})).await;
    let secret = asap["credentials"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    configure(
        &hangar,
        &owner,
        WS,
        "stripe",
        json!({"signing_secret": "whsec_s"}),
    )
    .await;
    configure(
        &hangar,
        &owner,
        WS,
        "quickbooks",
        json!({"verifier_token": "vt"}),
    )
    .await;

    let first = envelope(
        "rep_1",
        "safety_report.submitted",
        json!({"safety_report_id": "sr_1", "revision": 1}),
    );
    let (status, answer) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, Utc::now(), &first),
        &first,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    until("the safety report delivered to the endpoint", || async {
        receiver.hits_on("/in").len() == 1
    })
    .await;
    let hit = &receiver.hits_on("/in")[0];
    assert_eq!(
        hit.headers["x-planeconnection-event"],
        "safety_report.submitted"
    );
    assert!(
        plane_verifies(hit, &endpoint_secret),
        "signed like any delivery"
    );
    let delivered: Value = serde_json::from_str(&hit.body).expect("json");
    assert_eq!(delivered["workspace_id"], WS);
    assert_eq!(delivered["data"]["safety_report_id"], "sr_1");

    // A second report under the same id, with other content: kept beside the first.
    let second = envelope(
        "rep_1",
        "safety_report.submitted",
        json!({"safety_report_id": "sr_1", "revision": 2}),
    );
    let (status, answer) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, Utc::now(), &second),
        &second,
    )
    .await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(false)),
        "{answer}"
    );
    // The very same report again is a duplicate.
    let (status, answer) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, Utc::now(), &second),
        &second,
    )
    .await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    until("the second report delivered too", || async {
        receiver.hits_on("/in").len() == 2
    })
    .await;
    let bodies: Vec<Value> = receiver
        .hits_on("/in")
        .iter()
        .map(|h| serde_json::from_str(&h.body).expect("json"))
        .collect();
    assert_eq!(bodies[0]["data"]["revision"], 1);
    assert_eq!(bodies[1]["data"]["revision"], 2);
    assert_ne!(
        bodies[0]["id"], bodies[1]["id"],
        "two events, neither replaces the other"
    );

    // Stripe's invoice.paid becomes the catalog's invoice.paid, with ids only.
    let paid = r#"{"id":"evt_p1","type":"invoice.paid","created":1795000000,"data":{"object":{"id":"in_9","customer_email":"payer@example.com","metadata":{"invoice_id":"inv_9"}}}}"#;
    let (status, answer) = push(
        &hangar,
        "stripe",
        WS,
        &stripe("whsec_s", Utc::now().timestamp(), paid),
        paid,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    until("invoice.paid delivered", || async {
        receiver.hits_on("/in").len() == 3
    })
    .await;
    let hit = &receiver.hits_on("/in")[2];
    assert_eq!(hit.headers["x-planeconnection-event"], "invoice.paid");
    let body: Value = serde_json::from_str(&hit.body).expect("json");
    assert_eq!(body["id"], "stripe:evt_p1");
    assert_eq!(body["data"]["invoice_id"], "inv_9");
    assert!(
        !hit.body.contains("payer@example.com"),
        "no personal data: {}",
        hit.body
    );

    // A QuickBooks payment change: no integration in this workspace, said on the row.
    let qbo = r#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"name":"Payment","id":"5","operation":"Update","lastUpdated":"2026-11-22T10:00:00Z"}]}}]}"#;
    let (status, _) = push(&hangar, "quickbooks", WS, &intuit("vt", qbo), qbo).await;
    assert_eq!(status, 200);
    let store = db.store().await;
    until("every push processed", || async {
        let rows = store.inbound_events(WS, None, 10).await.expect("rows");
        rows.len() == 4 && rows.iter().all(|r| r.state == "processed")
    })
    .await;
    let rows = store.inbound_events(WS, None, 10).await.expect("rows");
    let reports: Vec<_> = rows.iter().filter(|r| r.event_id == "rep_1").collect();
    assert_eq!(reports.len(), 2, "both reports kept");
    assert!(reports.iter().all(|r| r.safety));
    let qbo_row = rows
        .iter()
        .find(|r| r.provider == "quickbooks")
        .expect("qbo");
    let outcome = qbo_row.outcome.as_deref().expect("outcome");
    assert!(outcome.contains("no quickbooks integration"), "{outcome}");
    // The listing route shows them to the roles that manage each provider.
    let (status, listed) = hangar
        .call(
            "GET",
            &format!("/api/v1/workspaces/{WS}/inbound-events"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().expect("list").len(), 4);
    let admin = token(&db, "admin");
    let (_, listed) = hangar
        .call(
            "GET",
            &format!("/api/v1/workspaces/{WS}/inbound-events"),
            &admin,
            None,
        )
        .await;
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .all(|e| e["provider"] != "asap"),
        "an admin does not read the safety provider's pushes: {listed}"
    );
}

#[tokio::test]
async fn pushes_become_events_and_safety_reports_are_appended_on_postgres() {
    pushes_become_events_and_safety_reports_are_appended(Backend::Postgres).await;
}

#[tokio::test]
async fn pushes_become_events_and_safety_reports_are_appended_on_sqlite() {
    pushes_become_events_and_safety_reports_are_appended(Backend::Sqlite).await;
}

#[tokio::test]
async fn roles_follow_the_provider_category_and_material_is_never_shown_again() {
    let db = TestDb::new(Backend::Sqlite).await;
    let hangar = start(&db).await;
    let (admin, safety, viewer) = (
        token(&db, "admin"),
        token(&db, "safety_manager"),
        token(&db, "viewer"),
    );
    let (status, answer) = configure(&hangar, &admin, WS, "asap", json!({})).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("forbidden")),
        "{answer}"
    );
    let (status, answer) = configure(&hangar, &safety, WS, "asap", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let secret = answer["credentials"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let (status, answer) = configure(
        &hangar,
        &safety,
        WS,
        "stripe",
        json!({"signing_secret": "whsec_x"}),
    )
    .await;
    assert_eq!(status, 403, "billing needs admin or owner: {answer}");
    let (status, answer) = configure(
        &hangar,
        &admin,
        WS,
        "stripe",
        json!({"signing_secret": "whsec_x"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = configure(&hangar, &admin, WS, "quickbooks", json!({})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("verifier_token")
    );
    let (status, answer) = configure(&hangar, &admin, WS, "nope", json!({})).await;
    assert_eq!(status, 404, "{answer}");
    let path = format!("/api/v1/workspaces/{WS}/inbound-hooks");
    let (status, _) = hangar.call("GET", &path, &viewer, None).await;
    assert_eq!(status, 403);
    let (status, listed) = hangar.call("GET", &path, &admin, None).await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("whsec_x"),
        "{text}"
    );
    let configured: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter(|h| h["configured"] == true)
        .map(|h| h["provider"].as_str().unwrap())
        .collect();
    assert_eq!(configured, ["stripe", "asap"]);
    // Deleted: its pushes are refused from now on.
    let (status, _) = hangar
        .call("DELETE", &format!("{path}/asap"), &safety, None)
        .await;
    assert_eq!(status, 204);
    let body = envelope("r9", "hazard.identified", json!({"hazard_id": "h_1"}));
    let (status, _) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, Utc::now(), &body),
        &body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = hangar
        .call("DELETE", &format!("{path}/asap"), &safety, None)
        .await;
    assert_eq!(status, 404);
}
