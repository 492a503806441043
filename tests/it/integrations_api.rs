//! The integration routes over HTTP, on both backends: roles by the provider's category
//! (ops `admin`, safety `safety_manager`, billing `owner`/`admin`, everyone reads),
//! credentials never in any answer (nor echoed by a refusal), fields named in 422s, a manual
//! sync enqueues one internal `sync` job per data type, and callers cannot enqueue the
//! integrations' kinds themselves.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::integrations_support::{POOLS, jobs_of};
use crate::support::{Backend, TestDb, serve_http, stdout_ok};

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
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
}

const SECRETS: [&str; 4] = [
    "api-key-SECRET-7f3a",
    "access-SECRET-91b2",
    "refresh-SECRET-c4d8",
    "client-SECRET-e5f6",
];

fn oauth(enabled: bool) -> Value {
    json!({
        "enabled": enabled,
        "data_types": ["invoices", "payments"],
        "frequency": "hourly",
        "settings": {"realm_id": "9130", "base_url": "https://sandbox-quickbooks.api.intuit.com"},
        "credentials": {"oauth": {
            "access_token": SECRETS[1],
            "refresh_token": SECRETS[2],
            "expires_at": "2030-01-01T00:00:00Z",
            "token_url": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            "client_id": "client-id-public",
            "client_secret": SECRETS[3],
            "scopes": ["com.intuit.quickbooks.accounting"],
        }},
    })
}

/// An API-key integration moving `data_type` (a provider with a connector takes only its
/// connector's data types; one without takes any identifier).
fn api_key(data_type: &str) -> Value {
    json!({"enabled": true, "data_types": [data_type], "frequency": "daily",
        "credentials": {"api_key": SECRETS[0]}})
}

/// ASAP Gateway publishes no API: enabled only with a filled manifest (its template's
/// placeholders answer 422, see `manifest_templates.rs`).
fn asap() -> Value {
    json!({"enabled": true, "data_types": ["safety_reports"], "frequency": "daily",
        "settings": {"manifest": crate::manifest_support::ASAP_FILLED},
        "credentials": {"api_key": SECRETS[0]}})
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

async fn routes_and_roles(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let store = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let token = |role: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let [owner, admin, safety, operator, viewer] =
        ["owner", "admin", "safety_manager", "operator", "viewer"].map(token);
    let path = |provider: &str| format!("/api/v1/workspaces/ws_1/integrations/{provider}");

    // Roles by category: who may change which provider.
    let cases = [
        ("quickbooks", oauth(true), [true, true, false, false, false]),
        ("asap", asap(), [true, false, true, false, false]),
        (
            "stripe",
            api_key("payments"),
            [true, true, false, false, false],
        ),
    ];
    for (provider, body, allowed) in cases {
        for (token, ok) in [&owner, &admin, &safety, &operator, &viewer]
            .into_iter()
            .zip(allowed)
        {
            let (status, answer, text) = api
                .call(Method::PUT, &path(provider), token, Some(body.clone()))
                .await;
            if ok {
                assert_eq!(status, StatusCode::OK, "{provider}: {text}");
                assert_eq!(answer["status"], "active", "{text}");
                assert_eq!(answer["provider"], provider);
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{provider}: {text}");
                assert_eq!(answer["error"]["code"], "forbidden");
            }
            assert_no_secret(&format!("PUT {provider}"), &text);
            let (status, _, text) = api
                .call(
                    Method::POST,
                    &format!("{}/sync", path(provider)),
                    token,
                    None,
                )
                .await;
            assert_eq!(
                status == StatusCode::FORBIDDEN,
                !ok,
                "sync {provider}: {text}"
            );
        }
    }
    // Everyone reads; no answer holds a credential.
    for token in [&owner, &admin, &safety, &operator, &viewer] {
        let (status, one, text) = api
            .call(Method::GET, &path("quickbooks"), token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(one["status"], "active");
        assert_eq!(one["auth"], "oauth");
        assert_eq!(one["data_types"], json!(["invoices", "payments"]));
        assert_eq!(
            one["directions"],
            json!({"invoices": "out", "payments": "in"}),
            "{text}"
        );
        assert!(one.get("credentials").is_none(), "{text}");
        assert_no_secret("GET one", &text);
        let (status, list, text) = api
            .call(
                Method::GET,
                "/api/v1/workspaces/ws_1/integrations",
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(list.as_array().map(Vec::len), Some(3), "{text}");
        assert_no_secret("GET list", &text);
    }

    // A manual sync: one internal `sync` job per data type, the integration id in its args.
    let (status, started, text) = api
        .call(
            Method::POST,
            &format!("{}/sync", path("quickbooks")),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let ids = started["ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 2, "{text}");
    assert_eq!(started["id"], ids[0]);
    let integration_id = api
        .call(Method::GET, &path("quickbooks"), &viewer, None)
        .await
        .1["id"]
        .clone();
    let jobs = jobs_of(&store, "sync", "ws_1").await;
    for (id, data_type) in ids.iter().zip(["invoices", "payments"]) {
        let job = jobs
            .iter()
            .find(|j| json!(j.id) == *id)
            .expect("the sync job");
        assert_eq!(
            job.args,
            json!({"integration_id": integration_id, "data_type": data_type, "trigger": "manual"})
        );
    }
    let (status, _, text) = api
        .call(
            Method::POST,
            &format!("{}/sync", path("quickbooks")),
            &admin,
            Some(json!({"data_type": "bills"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");

    // Callers cannot enqueue the integrations' kinds with an integration of their choice.
    for kind in ["sync", "token_refresh"] {
        let (status, answer, text) = api
            .call(
                Method::POST,
                "/api/v1/jobs",
                &owner,
                Some(json!({"kind": kind, "workspace_id": "ws_1",
                "args": {"integration_id": integration_id}, "idempotency_key": "mine"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{kind}: {text}");
        assert_eq!(answer["error"]["code"], "invalid_job", "{text}");
    }

    // Refusals name the field and never echo a credential.
    let refusals = [
        (
            json!({"enabled": true, "data_types": ["bills"], "frequency": "hourly"}),
            "data_types[0]",
        ),
        (
            json!({"enabled": true, "data_types": ["payments"], "frequency": "every_minute"}),
            "frequency",
        ),
        (
            json!({"enabled": true, "data_types": ["payments"], "frequency": "hourly",
            "credentials": SECRETS[0]}),
            "credentials",
        ),
        (
            json!({"enabled": true, "data_types": ["payments"], "frequency": "hourly",
            "credentials": {"oauth": {"access_token": 5, "refresh_token": SECRETS[2]}}}),
            "credentials",
        ),
        (
            json!({"enabled": true, "data_types": ["payments"], "frequency": "hourly",
            "settings": {"base_url": "ftp://files"}}),
            "settings.base_url",
        ),
    ];
    for (body, field) in refusals {
        let (status, answer, text) = api
            .call(Method::PUT, &path("quickbooks"), &admin, Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        assert_eq!(answer["error"]["code"], "invalid_integration", "{text}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(field), "{field}: {message}");
        assert_no_secret("a refusal", &text);
    }
    let (status, answer, _) = api
        .call(Method::GET, &path("quickbook"), &viewer, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown provider")
    );
    let (status, _, _) = api
        .call(Method::GET, &path("salesforce"), &viewer, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "none configured");
}

#[tokio::test]
async fn integration_routes_enforce_roles_by_category_and_never_return_credentials_on_sqlite() {
    routes_and_roles(Backend::Sqlite).await;
}

#[tokio::test]
async fn integration_routes_enforce_roles_by_category_and_never_return_credentials_on_postgres() {
    routes_and_roles(Backend::Postgres).await;
}
