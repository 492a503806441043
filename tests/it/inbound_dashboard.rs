//! The dashboard's inbound events page: a workspace's configured hooks and latest pushes
//! with their processing outcome and job, escaped; the safety provider's pushes only for the
//! roles that manage it; 403 for a viewer.

use chrono::Utc;
use serde_json::json;

use crate::inbound_support::{configure, envelope, plane, push, start, stripe};
use crate::support::{Backend, TestDb, dashboard_session};
use crate::webhooks_support::{Hangar, token, until};

const WS: &str = "ws_dash";

async fn page(hangar: &Hangar, session: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{}/workspaces/{WS}/inbound", hangar.base))
        .header("cookie", format!("hangar_session={session}"))
        .send()
        .await
        .expect("page");
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

#[tokio::test]
async fn the_inbound_page_shows_pushes_to_the_roles_that_manage_them() {
    let db = TestDb::new(Backend::Sqlite).await;
    let hangar = start(&db).await;
    let owner = token(&db, "owner");
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
        json!({"signing_secret": "whsec_d"}),
    )
    .await;
    let report = envelope(
        "<b>rep</b>",
        "hazard.identified",
        json!({"hazard_id": "h_7"}),
    );
    let (status, _) = push(
        &hangar,
        "asap",
        WS,
        &plane(&secret, Utc::now(), &report),
        &report,
    )
    .await;
    assert_eq!(status, 200);
    let paid = r#"{"id":"evt_dash","type":"invoice.paid","data":{"object":{"id":"in_d"}}}"#;
    let (status, _) = push(
        &hangar,
        "stripe",
        WS,
        &stripe("whsec_d", Utc::now().timestamp(), paid),
        paid,
    )
    .await;
    assert_eq!(status, 200);

    let owner_session = dashboard_session(&hangar.base, &owner).await;
    until("both pushes shown processed", || async {
        page(&hangar, &owner_session)
            .await
            .1
            .matches("processed")
            .count()
            >= 2
    })
    .await;
    let (status, html) = page(&hangar, &owner_session).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("&lt;b&gt;rep&lt;/b&gt;") && !html.contains("<b>rep</b>"),
        "escaped"
    );
    assert!(html.contains("safety (append-only)"));
    assert!(
        html.contains("published invoice.paid as event stripe:evt_dash"),
        "{html}"
    );
    assert!(html.contains("/hooks/asap/ws_dash") && !html.contains(&secret));

    let admin_session = dashboard_session(&hangar.base, &token(&db, "admin")).await;
    let (status, html) = page(&hangar, &admin_session).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("evt_dash") && !html.contains("rep</b"),
        "no safety push for an admin"
    );
    let viewer_session = dashboard_session(&hangar.base, &token(&db, "viewer")).await;
    assert_eq!(page(&hangar, &viewer_session).await.0, 403);
}
