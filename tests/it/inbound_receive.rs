//! `POST /hooks/{provider}/{ws}` on both backends: each provider's scheme accepted with a
//! signature computed here and refused (401, nothing stored) with a wrong one, without
//! material, outside the 300 s tolerance; a duplicate stores nothing new; 413 over 256 KiB;
//! 404 for an unknown provider; the raw body kept byte for byte, the signatures not kept.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::inbound_support::{basic, configure, envelope, intuit, plane, push, start, stripe};
use crate::support::{Backend, TestDb};
use crate::webhooks_support::token;

const WS: &str = "ws_in";

/// A push: provider, headers, body.
type Push<'a> = (&'a str, Vec<(&'static str, String)>, &'a str);

async fn stored(db: &TestDb) -> (i64, i64) {
    (
        db.query_i64("SELECT count(*) FROM hangar_inbound_events")
            .await,
        db.query_i64("SELECT count(*) FROM hangar_jobs WHERE kind = 'inbound_event'")
            .await,
    )
}

fn assert_unauthorized(status: u16, answer: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {answer}");
    assert_eq!(answer["error"]["code"], "unauthorized", "{what}: {answer}");
}

async fn every_scheme_verifies_and_refuses(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = start(&db).await;
    let owner = token(&db, "owner");

    let (status, qbo) = configure(
        &hangar,
        &owner,
        WS,
        "quickbooks",
        json!({"verifier_token": "intuit-verifier-1"}),
    )
    .await;
    assert_eq!(status, 200, "{qbo}");
    assert!(
        qbo.get("credentials").is_none(),
        "given material is never echoed: {qbo}"
    );
    let (status, _) = configure(
        &hangar,
        &owner,
        WS,
        "stripe",
        json!({"signing_secret": "whsec_stripe_test_1"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, avinode) = configure(&hangar, &owner, WS, "avinode", json!({})).await;
    assert_eq!(status, 200, "{avinode}");
    let user = avinode["credentials"]["username"]
        .as_str()
        .expect("username")
        .to_owned();
    let password = avinode["credentials"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    let (status, asap) = configure(&hangar, &owner, WS, "asap", json!({})).await;
    assert_eq!(status, 200, "{asap}");
    let secret = asap["credentials"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"));

    // Nothing configured for ForeFlight in this workspace: 401, nothing stored.
    let body = envelope("ff_1", "trip.updated", json!({"trip_id": "t_1"}));
    let (status, answer) = push(
        &hangar,
        "foreflight",
        WS,
        &plane(&secret, Utc::now(), &body),
        &body,
    )
    .await;
    assert_unauthorized(status, &answer, "no material");
    // Another workspace's material does not verify this one's pushes.
    let (status, answer) = push(
        &hangar,
        "asap",
        "ws_other",
        &plane(&secret, Utc::now(), &body),
        &body,
    )
    .await;
    assert_unauthorized(status, &answer, "another workspace");

    let qbo_body = r#"{"eventNotifications":[{"realmId":"9130","dataChangeEvent":{"entities":[{"name":"Payment","id":"77","operation":"Create","lastUpdated":"2026-11-22T10:00:00.000Z"}]}}]}"#;
    let stripe_body = r#"{"id":"evt_s1","object":"event","type":"invoice.paid","created":1795000000,"data":{"object":{"id":"in_1","metadata":{"invoice_id":"inv_1"}}}}"#;
    let avinode_body = r#"{"id":"wh_a1","href":"https://sandbox.avinode.com/api/rfqs/a1","type":"TripRequest","tripId":"trip_a1"}"#;
    let asap_body = envelope(
        "asap_1",
        "safety_report.submitted",
        json!({"safety_report_id": "sr_1"}),
    );
    let now = Utc::now();
    let wrong: [Push; 6] = [
        (
            "quickbooks",
            intuit("intuit-verifier-2", qbo_body),
            qbo_body,
        ),
        (
            "stripe",
            stripe("whsec_stripe_test_2", now.timestamp(), stripe_body),
            stripe_body,
        ),
        ("avinode", basic(&user, "not-the-password"), avinode_body),
        (
            "asap",
            plane(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                now,
                &asap_body,
            ),
            &asap_body,
        ),
        // A correct signature of another body.
        (
            "quickbooks",
            intuit("intuit-verifier-1", stripe_body),
            qbo_body,
        ),
        ("asap", vec![], &asap_body),
    ];
    for (provider, headers, body) in &wrong {
        let (status, answer) = push(&hangar, provider, WS, headers, body).await;
        assert_unauthorized(
            status,
            &answer,
            &format!("{provider} with a wrong signature"),
        );
    }
    // Correctly signed, outside the tolerance of 300 s.
    let old = now - Duration::seconds(400);
    let (status, answer) = push(
        &hangar,
        "stripe",
        WS,
        &stripe("whsec_stripe_test_1", old.timestamp(), stripe_body),
        stripe_body,
    )
    .await;
    assert_unauthorized(status, &answer, "stripe, 400 s old");
    let (status, answer) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, old, &asap_body),
        &asap_body,
    )
    .await;
    assert_unauthorized(status, &answer, "generic, 400 s old");
    let (status, answer) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, now + Duration::seconds(400), &asap_body),
        &asap_body,
    )
    .await;
    assert_unauthorized(status, &answer, "generic, 400 s ahead");
    assert_eq!(stored(&db).await, (0, 0), "nothing refused is stored");

    // Each scheme with its right signature.
    let right: [Push; 4] = [
        (
            "quickbooks",
            intuit("intuit-verifier-1", qbo_body),
            qbo_body,
        ),
        (
            "stripe",
            stripe(
                "whsec_stripe_test_1",
                Utc::now().timestamp() - 200,
                stripe_body,
            ),
            stripe_body,
        ),
        ("avinode", basic(&user, &password), avinode_body),
        ("asap", plane(&secret, Utc::now(), &asap_body), &asap_body),
    ];
    for (n, (provider, headers, body)) in right.iter().enumerate() {
        let (status, answer) = push(&hangar, provider, WS, headers, body).await;
        assert_eq!(status, 200, "{provider}: {answer}");
        assert_eq!(answer["duplicate"], false, "{provider}: {answer}");
        assert_eq!(
            stored(&db).await,
            (n as i64 + 1, n as i64 + 1),
            "{provider}: a row and its job"
        );
    }
    let store = db.store().await;
    let rows = store.inbound_events(WS, None, 10).await.expect("rows");
    for (provider, _, body) in &right {
        let row = rows
            .iter()
            .find(|r| r.provider == *provider)
            .expect("stored");
        assert_eq!(row.body, *body, "{provider}: the raw body, byte for byte");
        let headers = row.headers.as_object().expect("headers");
        for secret_header in [
            "intuit-signature",
            "stripe-signature",
            "authorization",
            "x-planeconnection-signature",
        ] {
            assert!(
                !headers.contains_key(secret_header),
                "{provider} keeps {secret_header}"
            );
        }
        assert!(
            headers.contains_key("content-type"),
            "{provider}: {headers:?}"
        );
        assert!(row.job_id.is_some());
    }
    assert!(
        rows.iter()
            .any(|r| r.provider == "quickbooks" && r.event_id.starts_with("sha256:"))
    );
    assert!(rows.iter().any(|r| r.provider == "asap" && r.safety));

    // The same Stripe event again (Stripe retries with a fresh t): 200, nothing new.
    let (status, answer) = push(
        &hangar,
        "stripe",
        WS,
        &stripe("whsec_stripe_test_1", Utc::now().timestamp(), stripe_body),
        stripe_body,
    )
    .await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    // QuickBooks has no timestamp: a replay of the same notification is a duplicate.
    let (status, answer) = push(
        &hangar,
        "quickbooks",
        WS,
        &intuit("intuit-verifier-1", qbo_body),
        qbo_body,
    )
    .await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(stored(&db).await, (4, 4), "a duplicate stores nothing");

    // Over 256 KiB: 413 with the error body; nothing stored.
    let big = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(256 * 1024));
    let (status, answer) = push(
        &hangar,
        "stripe",
        WS,
        &stripe("whsec_stripe_test_1", Utc::now().timestamp(), &big),
        &big,
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "too_large");
    // An unknown provider: 404.
    let (status, answer) = push(&hangar, "nope", WS, &[], "{}").await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "not_found");
    // A verified generic body that is not a catalog event: 422 naming the field.
    let pii = envelope(
        "asap_2",
        "safety_report.submitted",
        json!({"reporter_email": "a@b.example"}),
    );
    let (status, answer) = push(&hangar, "asap", WS, &plane(&secret, Utc::now(), &pii), &pii).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reporter_email"),
        "{answer}"
    );
    assert_eq!(stored(&db).await, (4, 4));

    // QuickBooks' array form (CloudEvents naming two companies): accepted and split per
    // realm, one row and one job each; sent again, a duplicate.
    let cloud = r#"[{"specversion":"1.0","id":"ce1","type":"qbo.payment.created.v1","intuitaccountid":"111","intuitentityid":"31"},{"specversion":"1.0","id":"ce2","type":"qbo.invoice.updated.v1","intuitaccountid":"222","intuitentityid":"5"}]"#;
    for duplicate in [false, true] {
        let (status, answer) = push(
            &hangar,
            "quickbooks",
            WS,
            &intuit("intuit-verifier-1", cloud),
            cloud,
        )
        .await;
        assert_eq!(
            (status, &answer["duplicate"]),
            (200, &json!(duplicate)),
            "{answer}"
        );
        assert_eq!(stored(&db).await, (6, 6), "one row per realm");
    }
    let realms = db
        .query_i64(
            "SELECT count(*) FROM hangar_inbound_events WHERE provider = 'quickbooks' \
             AND (body LIKE '%\"realmId\":\"111\"%' OR body LIKE '%\"realmId\":\"222\"%')",
        )
        .await;
    assert_eq!(realms, 2, "each row holds its realm's notification");

    let metrics = reqwest::get(format!("{}/metrics", hangar.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for outcome in [
        "accepted",
        "duplicate",
        "unauthorized",
        "too_large",
        "invalid",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("hangar_inbound_webhooks_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))),
            "{outcome} counted"
        );
    }
}

#[tokio::test]
async fn every_scheme_verifies_and_refuses_on_postgres() {
    every_scheme_verifies_and_refuses(Backend::Postgres).await;
}

#[tokio::test]
async fn every_scheme_verifies_and_refuses_on_sqlite() {
    every_scheme_verifies_and_refuses(Backend::Sqlite).await;
}
