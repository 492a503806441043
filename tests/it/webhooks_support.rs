//! What the webhook tests share: a `hangar serve` with a fast `webhooks` pool, tokens, API
//! calls, events, and the two ways a receiver verifies a delivery (the Standard Webhooks
//! reference crate, and a plain HMAC of `X-PlaneConnection-Signature`).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use hangar_workers::client::Client;
use hangar_workers::secrets::Keyring;
use hangar_workers::targets::TargetPolicy;
use hangar_workers::webhooks::{Limits, NewEndpoint, WebhookContext};

use crate::receiver::Hit;
use crate::support::{Proc, TEST_MASTER_KEY, TestDb, serve_http, stdout_ok, wait_for};

/// The built-in default pool and a `webhooks` pool with retries in milliseconds.
pub const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
poll_interval_ms = 100
lease_ms = 2000

[[pool]]
name = "webhooks"
queue = "webhooks"
kinds = ["webhook_delivery"]
poll_interval_ms = 100
lease_ms = 2000
max_attempts = 8

[pool.retry]
jitter = 0.0

[pool.retry.timeout]
max_retries = 5
base_delay_ms = 100
max_delay_ms = 400

[pool.retry.server]
max_retries = 5
base_delay_ms = 100
max_delay_ms = 400
"#;

/// A running server and the way to call it.
pub struct Hangar {
    /// The process (killed when dropped).
    _serve: Proc,
    pub base: String,
    http: reqwest::Client,
}

impl Hangar {
    /// `hangar serve` over `db` with [`POOLS`].
    pub async fn start(db: &TestDb) -> Hangar {
        db.pools(POOLS);
        let (serve, base) = serve_http(db).await;
        Hangar {
            _serve: serve,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A server already started (e.g. by `serve_http` over other pools).
    pub fn attach(serve: Proc, base: String) -> Hangar {
        Hangar {
            _serve: serve,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A prepared `hangar serve` command (see `TestDb::command`), once it answers.
    pub async fn start_with(db: &TestDb, command: std::process::Command) -> Hangar {
        let serve = db.spawn_command("serve", command);
        let base = format!("http://{}", serve.address().await);
        let health = format!("{base}/healthz");
        wait_for("the server", Duration::from_secs(30), || async {
            reqwest::get(&health).await.ok().map(|_| ())
        })
        .await;
        Hangar {
            _serve: serve,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Calls the API; returns the status and the JSON answer (`null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates an endpoint; returns its JSON (with `secret`), asserting 201.
    pub async fn create(&self, token: &str, ws: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{ws}/webhook-endpoints"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "create: {answer}");
        answer
    }

    /// Publishes an event through `POST /api/v1/events`.
    pub async fn publish(&self, token: &str, event: &Value) {
        let (status, answer) = self
            .call("POST", "/api/v1/events", token, Some(event.clone()))
            .await;
        assert_eq!(status, 202, "publish: {answer}");
    }

    /// An endpoint's deliveries.
    pub async fn deliveries(&self, token: &str, ws: &str, endpoint: &str) -> Vec<Value> {
        let (status, answer) = self
            .call(
                "GET",
                &format!("/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}/deliveries"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "deliveries: {answer}");
        answer.as_array().cloned().expect("a list")
    }

    /// An endpoint.
    pub async fn endpoint(&self, token: &str, ws: &str, id: &str) -> Value {
        let (status, answer) = self
            .call(
                "GET",
                &format!("/api/v1/workspaces/{ws}/webhook-endpoints/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "endpoint: {answer}");
        answer
    }
}

/// A new API token of `role` (for every workspace).
pub fn token(db: &TestDb, role: &str) -> String {
    stdout_ok(&db.run(&["tokens", "create", "--role", role]))
        .trim()
        .to_owned()
}

/// An event envelope.
pub fn event(id: &str, event_type: &str, ws: &str) -> Value {
    json!({"id": id, "type": event_type, "workspace_id": ws,
        "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trip_42", "n": 1}})
}

/// Waits until `check` holds.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut check = check;
    wait_for(what, Duration::from_secs(30), || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await;
}

/// Whether the Standard Webhooks reference implementation accepts `hit` with `secret`.
pub fn standard_verifies(hit: &Hit, secret: &str) -> bool {
    let mut headers = HeaderMap::new();
    for (name, value) in &hit.headers {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(hit.body.as_bytes(), &headers)
        .is_ok()
}

/// Whether one of the `v1=` values of `X-PlaneConnection-Signature` is the HMAC-SHA256 of
/// `"<timestamp>.<body>"` with `secret`'s key.
pub fn plane_verifies(hit: &Hit, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(hit.headers["x-planeconnection-timestamp"].as_bytes());
    mac.update(b".");
    mac.update(hit.body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hit.headers["x-planeconnection-signature"]
        .split(',')
        .any(|v| v == format!("v1={expected}"))
}

/// The webhook context of `store` as the store-level tests use it: the test master key, every
/// target allowed, the built-in kinds' routes.
pub fn webhook_context(store: &hangar_workers::store::Store) -> WebhookContext {
    let keyring = Keyring::parse(TEST_MASTER_KEY, "test").expect("key");
    WebhookContext::new(
        store.clone(),
        std::sync::Arc::new(keyring),
        TargetPolicy::allow_all(),
        Client::builtin().routes(),
    )
}

/// An endpoint of `workspace` at `url` taking `trip.created`, created by an admin, with
/// `limits`.
pub fn trip_endpoint(workspace: &str, url: &str, limits: Limits) -> NewEndpoint {
    NewEndpoint {
        workspace_id: workspace.to_owned(),
        url: url.to_owned(),
        event_types: vec!["trip.created".to_owned()],
        description: String::new(),
        safety_allowed: false,
        others_allowed: true,
        limits,
    }
}
