//! Stripe Connect end to end in a `hangar serve` process, on both backends: billing's rule
//! (an operator may not change it, an admin may) on `PUT …/integrations/stripe`, then
//! `POST …/stripe/sync` runs the connector against the simulator and the run is listed with
//! its records, no answer showing the key.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::stripe_sim::{ACCOUNT, API_KEY, StripeSim};
use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};

/// A pool of integration workers that runs the `sync` kind.
pub const SYNC_POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]

[[pool]]
name = "integrations"
queue = "integrations"
kinds = ["sync", "token_refresh"]
concurrency = 4
lease_ms = 3000
poll_interval_ms = 100
"#;

/// One call to the API: status, JSON and text.
pub async fn call(
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answer");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// Waits for the workspace's newest run of `provider` to finish; returns it.
pub async fn finished_run(base: &str, workspace: &str, token: &str, provider: &str) -> Value {
    let url = format!("{base}/api/v1/workspaces/{workspace}/sync-runs");
    wait_for("the sync run", Duration::from_secs(30), || async {
        let (status, runs, _) = call(Method::GET, &url, token, None).await;
        assert_eq!(status, StatusCode::OK);
        runs.as_array()?
            .iter()
            .find(|r| r["provider"] == provider && r["status"] != "running")
            .cloned()
    })
    .await
}

async fn stripe_is_enabled_and_synced(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(SYNC_POOLS);
    let _ = db.store().await;
    let sim = StripeSim::start().await;
    sim.add_intents(3, chrono::Duration::hours(1));
    let (_serve, base) = serve_http(&db).await;
    let token = |role: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let (admin, operator) = (token("admin"), token("operator"));
    let path = format!("{base}/api/v1/workspaces/ws_pay/integrations/stripe");
    let body = json!({"enabled": true, "data_types": ["payments"], "frequency": "manual",
        "settings": {"account_id": ACCOUNT, "base_url": sim.base},
        "credentials": {"api_key": API_KEY}});

    let (status, _, text) = call(Method::PUT, &path, &operator, Some(body.clone())).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "billing is owner/admin: {text}"
    );
    let (status, saved, text) = call(Method::PUT, &path, &admin, Some(body)).await;
    assert_eq!(
        (status, &saved["status"]),
        (StatusCode::OK, &json!("active")),
        "{text}"
    );
    assert!(!text.contains(API_KEY), "{text}");

    let (status, _, text) = call(Method::POST, &format!("{path}/sync"), &admin, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let run = finished_run(&base, "ws_pay", &admin, "stripe").await;
    assert_eq!(
        (
            &run["status"],
            &run["direction"],
            &run["trigger"],
            &run["data_type"]
        ),
        (
            &json!("succeeded"),
            &json!("in"),
            &json!("manual"),
            &json!("payments")
        ),
        "{run}"
    );
    assert_eq!(run["records"]["created"], 3, "{run}");
    assert_eq!(sim.calls("list"), 1);
    assert_eq!(
        sim.calls("401") + sim.calls("403"),
        0,
        "the key and the account were sent"
    );
    assert!(!run.to_string().contains(API_KEY));
}

#[tokio::test]
async fn stripe_is_enabled_and_synced_postgres() {
    stripe_is_enabled_and_synced(Backend::Postgres).await;
}

#[tokio::test]
async fn stripe_is_enabled_and_synced_sqlite() {
    stripe_is_enabled_and_synced(Backend::Sqlite).await;
}
