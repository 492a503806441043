//! The dashboard's integration pages against a real `hangar serve` that ran real syncs
//! against the QuickBooks simulator, on both backends: the integrations page shows the
//! status (`needs_reauth` after `invalid_grant`) and the last run; the sync runs page shows
//! each run with its counts and its error; the conflicts page shows both sides, the resolve
//! buttons only to admins, and the resolve action is refused cross-site, without the CSRF
//! token, below `admin` and outside the workspace — server-side — and applies the side taken.

use chrono::Utc;
use hangar_integrations::store::SyncStore;
use hangar_workers::db::Database;
use hangar_workers::job::JobState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::integrations_e2e::{WS, World};
use crate::integrations_support::DumpOnPanic;
use crate::support::{Backend, dashboard_session, stdout_ok};

/// A client that follows no redirects, with a session cookie.
struct Browserless {
    base: String,
    http: reqwest::Client,
}

impl Browserless {
    fn new(base: &str) -> Browserless {
        Browserless {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    async fn get(&self, path: &str, session: &str) -> (StatusCode, String) {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("hangar_session={session}"))
            .send()
            .await
            .expect("answer");
        (answer.status(), answer.text().await.expect("body"))
    }

    async fn post(
        &self,
        path: &str,
        session: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("hangar_session={session}"))
            .form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let answer = request.send().await.expect("answer");
        let location = answer
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let status = answer.status();
        let body = answer.text().await.expect("body");
        (status, if location.is_empty() { body } else { location })
    }

    /// The CSRF token on the pages of `session`.
    async fn csrf(&self, session: &str) -> String {
        let (status, page) = self.get("/conflicts", session).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let start = page.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
        page[start..start + 64].to_owned()
    }
}

/// A refused resolve: what, the session, the form, the `Origin`, the answer.
type Refusal<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<&'a str>,
    StatusCode,
);

async fn conflicts(w: &World) -> Vec<Value> {
    let (status, list) = w
        .call(Method::GET, "/api/v1/conflicts?state=all", &w.viewer, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().expect("a list").clone()
}

async fn integration_pages(backend: Backend) {
    let w = World::start(backend).await;
    let _dump = DumpOnPanic(vec![&w.serve]);
    let integration = w.put_quickbooks(&["payments"]).await;
    let id = integration["id"].as_str().unwrap().to_owned();
    let sync = SyncStore::new(Database::connect(&w.db.url).await.expect("connect"));

    // A run that creates three payments, one that finds two in conflict, one that fails.
    w.sim.add_payments(3, chrono::Duration::hours(1));
    assert_eq!(w.sync("payments").await.state, JobState::Completed);
    for pid in ["1", "3"] {
        sync.record_ours(&id, "Payment", pid, &json!({"TotalAmt": 5.0}), Utc::now())
            .await
            .unwrap();
        w.sim.edit("Payment", pid, |p| p["TotalAmt"] = json!(6.0));
    }
    assert_eq!(w.sync("payments").await.state, JobState::Completed);
    w.sim.switch(|s| {
        s.fail_next = 100;
        s.fail_status = 500;
    });
    let failed = w.sync("payments").await;
    assert_eq!(failed.state, JobState::Failed, "{failed:?}");
    w.sim.switch(|s| s.fail_next = 0);
    // invalid_grant: the integration needs re-authorisation.
    w.sim.switch(|s| {
        s.expire_tokens = true;
        s.invalid_grant = true;
    });
    w.sync("payments").await;

    let token = |role: &str, ws: &str| {
        stdout_ok(
            &w.db
                .run(&["tokens", "create", "--role", role, "--workspace", ws]),
        )
        .trim()
        .to_owned()
    };
    let dash = Browserless::new(&w.base);
    let viewer = dashboard_session(&w.base, &token("viewer", WS)).await;
    let admin = dashboard_session(&w.base, &token("admin", WS)).await;
    let stranger = dashboard_session(&w.base, &token("admin", "ws_other")).await;

    // Integrations: status, reason, last run.
    let (status, page) = dash.get("/integrations", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("quickbooks"), "{page}");
    assert!(page.contains("needs_reauth"), "{page}");
    assert!(
        page.contains("invalid_grant"),
        "the reason is shown: {page}"
    );
    assert!(!page.contains("access-0") && !page.contains("refresh-0"));
    let (_, other) = dash.get("/integrations", &stranger).await;
    assert!(other.contains("No integrations."), "{other}");
    let (status, _) = dash
        .get(&format!("/integrations?workspace={WS}"), &stranger)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Sync runs: each run, its counts and its error.
    let runs = w.runs().await;
    assert!(runs.len() >= 4, "{runs:?}");
    let (status, page) = dash.get("/sync-runs", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for run in &runs {
        assert!(
            page.contains(run["id"].as_str().unwrap()),
            "{run} in {page}"
        );
    }
    let failed_run = runs
        .iter()
        .find(|r| r["status"] == "failed")
        .expect("a failed run");
    let error = failed_run["error"].as_str().unwrap();
    assert!(
        page.contains(&maud::html! { (error) }.into_string()),
        "the error is shown: {error}"
    );
    assert!(
        page.contains("<td class=\"num\">2</td>"),
        "two conflicted: {page}"
    );

    // Conflicts: both sides, buttons for admins only, resolve checked server-side.
    let open = conflicts(&w).await;
    assert_eq!(open.len(), 2, "{open:?}");
    let (cid, other_cid) = (
        open[0]["id"].as_str().unwrap().to_owned(),
        open[1]["id"].as_str().unwrap().to_owned(),
    );
    let (status, page) = dash.get("/conflicts", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&cid) && page.contains(&other_cid), "{page}");
    assert!(page.contains("TotalAmt"), "both sides shown: {page}");
    assert!(!page.contains("Take ours"), "no button for a viewer");
    let (_, page) = dash.get("/conflicts", &admin).await;
    assert!(page.contains("Take ours") && page.contains("Take theirs"));

    let resolve = format!("/conflicts/{cid}/resolve");
    let (admin_csrf, viewer_csrf, stranger_csrf) = (
        dash.csrf(&admin).await,
        dash.csrf(&viewer).await,
        dash.csrf(&stranger).await,
    );
    let refusals: [Refusal; 6] = [
        (
            "no CSRF token",
            &admin,
            vec![("take", "theirs")],
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "another session's token",
            &admin,
            vec![("csrf", &viewer_csrf), ("take", "theirs")],
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "cross-site",
            &admin,
            vec![("csrf", &admin_csrf), ("take", "theirs")],
            Some("https://evil.example"),
            StatusCode::FORBIDDEN,
        ),
        (
            "a viewer",
            &viewer,
            vec![("csrf", &viewer_csrf), ("take", "theirs")],
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "another workspace",
            &stranger,
            vec![("csrf", &stranger_csrf), ("take", "theirs")],
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "a bad take",
            &admin,
            vec![("csrf", &admin_csrf), ("take", "both")],
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, session, form, origin, expected) in refusals {
        let (status, body) = dash.post(&resolve, session, &form, origin).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    assert!(
        conflicts(&w)
            .await
            .iter()
            .all(|c| c["resolved_at"].is_null()),
        "nothing resolved by a refused form"
    );
    let (status, location) = dash
        .post(
            &resolve,
            &admin,
            &[("csrf", &admin_csrf), ("take", "theirs")],
            None,
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/conflicts?done=theirs")
    );
    let after = conflicts(&w).await;
    let resolved = after.iter().find(|c| c["id"] == cid.as_str()).unwrap();
    assert_eq!(resolved["resolution"], "theirs", "{resolved}");
    let still = after
        .iter()
        .find(|c| c["id"] == other_cid.as_str())
        .unwrap();
    assert!(still["resolved_at"].is_null(), "{still}");
    let (_, page) = dash.get("/conflicts?done=theirs", &admin).await;
    assert!(
        page.contains("the provider&#39;s side is applied")
            || page.contains("the provider's side is applied"),
        "{page}"
    );
    assert!(
        !page.contains(&cid),
        "a resolved conflict leaves the open list"
    );
    let (status, _) = dash
        .post(
            &resolve,
            &admin,
            &[("csrf", &admin_csrf), ("take", "ours")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already resolved");
}

#[tokio::test]
async fn integration_pages_postgres() {
    integration_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn integration_pages_sqlite() {
    integration_pages(Backend::Sqlite).await;
}
