//! The webhook dashboard pages (both backends): a workspace's endpoints with health and
//! circuit, an endpoint's deliveries with their attempts, and the resend and replay buttons:
//! CSRF and same-origin first, then the roles enforced server-side (a viewer reads nothing,
//! an admin cannot resend a safety endpoint's delivery even by posting the form), and a
//! resend or replay that the receiver sees.

use reqwest::StatusCode;
use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, dashboard_session};
use crate::webhooks_support::{Hangar, event, token, until};

struct Browser {
    base: String,
    http: reqwest::Client,
}

impl Browser {
    async fn get(&self, path: &str, session: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("hangar_session={session}"))
            .send()
            .await
            .expect("response");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    async fn post(
        &self,
        path: &str,
        session: &str,
        form: &[(&str, &str)],
        same_origin: bool,
    ) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .header("cookie", format!("hangar_session={session}"));
        request = if same_origin {
            request.header("origin", &self.base)
        } else {
            request.header("origin", "http://evil.example")
        };
        let response = request.send().await.expect("response");
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.text().await.expect("body");
        (status, if location.is_empty() { body } else { location })
    }

    async fn csrf(&self, session: &str) -> String {
        let (_, page) = self.get("/", session).await;
        let start = page.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
        page[start..start + 64].to_owned()
    }
}

async fn webhook_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let trips = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/trips"), "event_types": ["trip.created"]}),
        )
        .await;
    let trips_id = trips["id"].as_str().expect("id").to_owned();
    let safety = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/safety"), "event_types": ["hazard.identified"]}),
        )
        .await;
    let safety_id = safety["id"].as_str().expect("id").to_owned();
    hangar
        .publish(&owner, &event("evt_1", "trip.created", "ws_1"))
        .await;
    hangar
        .publish(&owner, &event("evt_2", "hazard.identified", "ws_1"))
        .await;
    until("both delivered", || async {
        receiver.hits_on("/trips").len() == 1 && receiver.hits_on("/safety").len() == 1
    })
    .await;
    until("both recorded", || async {
        let a = hangar.deliveries(&owner, "ws_1", &trips_id).await;
        let b = hangar.deliveries(&owner, "ws_1", &safety_id).await;
        a.first().is_some_and(|d| d["state"] == "succeeded")
            && b.first().is_some_and(|d| d["state"] == "succeeded")
    })
    .await;
    let delivery = hangar.deliveries(&owner, "ws_1", &trips_id).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let safety_delivery = hangar.deliveries(&owner, "ws_1", &safety_id).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let browser = Browser {
        base: hangar.base.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    };
    let owner_session = dashboard_session(&hangar.base, &owner).await;
    let admin_session = dashboard_session(&hangar.base, &token(&db, "admin")).await;
    let viewer_session = dashboard_session(&hangar.base, &token(&db, "viewer")).await;

    // The endpoints of the workspace: health, circuit, last success.
    let (status, page) = browser
        .get("/webhooks?workspace=ws_1", &owner_session)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for shown in [
        trips_id.as_str(),
        safety_id.as_str(),
        "healthy",
        "closed",
        "Webhooks",
    ] {
        assert!(page.contains(shown), "{shown} missing");
    }
    let (status, _) = browser
        .get("/webhooks?workspace=ws_1", &viewer_session)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer reads no webhooks");

    // An endpoint's deliveries with their attempts and the buttons.
    let (status, page) = browser
        .get(&format!("/webhooks/{trips_id}"), &owner_session)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for shown in [
        delivery.as_str(),
        "evt_1",
        "HTTP 200",
        "Resend",
        "Replay",
        "10 in flight",
    ] {
        assert!(page.contains(shown), "{shown} missing");
    }
    // An admin sees a safety endpoint without its buttons, and cannot post them either.
    let (status, page) = browser
        .get(&format!("/webhooks/{safety_id}"), &admin_session)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&safety_delivery));
    assert!(
        !page.contains("Resend") && !page.contains(">Replay<"),
        "no buttons"
    );
    let admin_csrf = browser.csrf(&admin_session).await;
    let (status, _) = browser
        .post(
            &format!("/webhooks/deliveries/{safety_delivery}/resend"),
            &admin_session,
            &[("csrf", &admin_csrf)],
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // CSRF and origin come first.
    let csrf = browser.csrf(&owner_session).await;
    let resend = format!("/webhooks/deliveries/{delivery}/resend");
    let (status, _) = browser
        .post(&resend, &owner_session, &[("csrf", "0123")], true)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong CSRF token");
    let (status, _) = browser
        .post(&resend, &owner_session, &[("csrf", &csrf)], false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another site");
    assert_eq!(receiver.hits_on("/trips").len(), 1, "nothing was sent");

    // The owner resends: the receiver gets the same delivery again.
    let (status, location) = browser
        .post(&resend, &owner_session, &[("csrf", &csrf)], true)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, format!("/webhooks/{trips_id}?done=resent"));
    until("the resend", || async {
        receiver.hits_on("/trips").len() == 2
    })
    .await;
    let hits = receiver.hits_on("/trips");
    assert_eq!(
        hits[1].headers["x-planeconnection-delivery-id"], delivery,
        "the same delivery"
    );

    // And replays everything since an hour ago.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, location) = browser
        .post(
            &format!("/webhooks/{trips_id}/replay"),
            &owner_session,
            &[("csrf", &csrf), ("since", &since)],
            true,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, format!("/webhooks/{trips_id}?done=replayed-1"));
    until("the replay", || async {
        receiver.hits_on("/trips").len() == 3
    })
    .await;
    // The endpoint's page shows the replay and its progress once its job is done.
    until("the replay shown done", || async {
        let (_, page) = browser
            .get(&format!("/webhooks/{trips_id}"), &owner_session)
            .await;
        page.contains("Replays") && page.contains("1 / 1") && page.contains(">done ")
    })
    .await;
    let (status, page) = browser
        .post(
            &format!("/webhooks/{trips_id}/replay"),
            &owner_session,
            &[("csrf", &csrf), ("since", "yesterday")],
            true,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("since:"), "{page}");
}

#[tokio::test]
async fn webhook_pages_show_health_and_enforce_roles_postgres() {
    webhook_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn webhook_pages_show_health_and_enforce_roles_sqlite() {
    webhook_pages(Backend::Sqlite).await;
}
