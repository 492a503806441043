//! The API's access rules, route by route from its own OpenAPI document (so a new route cannot
//! skip them): no token and a bad token get 401, every role gets 403 or passes exactly as the
//! route's declared role says, a token of another workspace sees nothing of this one, a
//! revoked token stops working, and the per-token rate limit answers 429 with Retry-After.
//! Every error has CONTRACT.md's body; nothing answers 5xx (see also `api_fuzz.rs`).

use hangar_workers::job::NewJob;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, TestDb, serve_http, stdout_ok};

const ROLES: [&str; 5] = ["owner", "admin", "safety_manager", "operator", "viewer"];

/// Whether `role` may use a route that declares `need` (MISSION.md §9).
fn allows(role: &str, need: &str) -> bool {
    match need {
        "viewer" => true,
        "operator" => role != "viewer",
        "admin" => matches!(role, "owner" | "admin"),
        "safety_manager" => matches!(role, "owner" | "safety_manager"),
        "owner" => role == "owner",
        other => panic!("unknown role {other} in the OpenAPI document"),
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("response");
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {body}"
        );
        (status, body)
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn every_route_of_the_openapi_document_enforces_its_role_for_every_role_and_workspace() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let token = |args: &[&str]| {
        let mut all = vec!["tokens", "create"];
        all.extend_from_slice(args);
        stdout_ok(&db.run(&all)).trim().to_owned()
    };
    let tokens: Vec<(&str, String)> = ROLES.iter().map(|r| (*r, token(&["--role", r]))).collect();
    let other_workspace = token(&["--role", "owner", "--workspace", "ws_other"]);

    // A job of ws_1 (scheduled far ahead, so nothing runs it meanwhile).
    let mut job = NewJob::new("noop", json!({}));
    job.workspace_id = Some("ws_1".to_owned());
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    let job_id = store.enqueue(&job).await.expect("enqueue").id;

    let (status, doc) = api
        .call(&Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the OpenAPI document needs no token"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut signed_routes = 0;
    let mut n = 0;
    for (template, item) in paths {
        for (method_name, operation) in item.as_object().expect("path item") {
            let method: Method = method_name.to_uppercase().parse().expect("method");
            let security = operation["security"].as_array().unwrap_or_else(|| {
                panic!("{method} {template} declares no security: every route needs a role")
            });
            if security[0].as_object().is_some_and(|o| o.is_empty()) {
                // `security: [{}]`: a provider's push, authenticated by its signature. Only
                // the hook route may say so; no bearer token of any role opens it, and an
                // unsigned push is refused with nothing stored.
                assert_eq!(
                    template, "/hooks/{provider}/{ws}",
                    "{method}: no token needed?"
                );
                let path = "/hooks/quickbooks/ws_1";
                let push = json!({"eventNotifications": []});
                let (status, error) = api.call(&method, path, None, Some(&push)).await;
                assert_error(
                    status,
                    &error,
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    path,
                );
                for (role, token) in &tokens {
                    let (status, error) = api.call(&method, path, Some(token), Some(&push)).await;
                    assert_error(
                        status,
                        &error,
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        &format!("{path} with a bearer token of {role}"),
                    );
                }
                signed_routes += 1;
                continue;
            }
            let scopes = security[0]["bearer"].as_array().expect("bearer scopes");
            assert!(!scopes.is_empty(), "{method} {template}: a role");
            // Several scopes: any one of those roles is enough.
            let needs: Vec<&str> = scopes.iter().map(|s| s.as_str().expect("role")).collect();
            let need = needs.join("|");
            operations += 1;

            let path = template
                .replace("{id}", &job_id.to_string())
                .replace("{ws}", "ws_1")
                // An ops provider: `admin` (the role the document names) changes it.
                .replace("{provider}", "quickbooks");
            let body = |n: usize| match template.as_str() {
                "/api/v1/jobs" => Some(json!({"kind": "noop", "workspace_id": "ws_1", "args": {},
                    "idempotency_key": format!("matrix-{n}")})),
                "/api/v1/events" => Some(json!({"id": format!("evt_{n}"), "type": "trip.created",
                    "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z", "data": {}})),
                // A dry run: the job stays for the routes after.
                "/api/v1/jobs/retry" | "/api/v1/jobs/cancel" => {
                    Some(json!({"filter": {"workspace_id": "ws_1"}, "dry_run": true}))
                }
                _ => None,
            };
            let what = format!("{method} {path}");

            let (status, error) = api.call(&method, &path, None, body(0).as_ref()).await;
            assert_error(
                status,
                &error,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{what} without a token"),
            );
            let (status, error) = api
                .call(&method, &path, Some("hgr_not_a_token"), body(0).as_ref())
                .await;
            assert_error(
                status,
                &error,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{what} with a bad token"),
            );

            for (role, token) in &tokens {
                n += 1;
                let (status, answer) = api
                    .call(&method, &path, Some(token), body(n).as_ref())
                    .await;
                if needs.iter().any(|need| allows(role, need)) {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{what} as {role} (route needs {need}): {status} {answer}"
                    );
                } else {
                    assert_error(
                        status,
                        &answer,
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        &format!("{what} as {role}"),
                    );
                }
            }

            // An owner token of another workspace: nothing of ws_1 is visible or changeable.
            n += 1;
            let (status, answer) = api
                .call(&method, &path, Some(&other_workspace), body(n).as_ref())
                .await;
            let hidden = matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)
                || (status == StatusCode::OK && answer.as_array().is_some_and(Vec::is_empty));
            assert!(
                hidden,
                "{what} with another workspace's token: {status} {answer}"
            );
        }
    }
    assert!(
        operations >= 12,
        "the document lists the routes ({operations})"
    );
    assert_eq!(signed_routes, 1, "the document lists the provider hook");

    // A revoked token stops working.
    let viewer = &tokens[4].1;
    let listed: Value =
        serde_json::from_str(&stdout_ok(&db.run(&["tokens", "list", "--json"]))).expect("json");
    assert!(
        !listed.to_string().contains(viewer.as_str()),
        "tokens list never shows a token"
    );
    let viewer_id = listed
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["role"] == "viewer" && t["workspace_id"].is_null())
        .expect("the viewer token")["id"]
        .to_string();
    stdout_ok(&db.run(&["tokens", "revoke", &viewer_id]));
    let (status, error) = api
        .call(&Method::GET, "/api/v1/jobs", Some(viewer), None)
        .await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a revoked token",
    );

    // The rate limit per token.
    let operator = &tokens[3].1;
    let mut limited = None;
    for _ in 0..400 {
        let response = api
            .http
            .get(format!("{}/api/v1/alerts", api.base))
            .bearer_auth(operator)
            .send()
            .await
            .expect("response");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("400 quick requests hit the per-token limit");
    assert!(
        limited.headers().get("retry-after").is_some(),
        "429 says when to retry"
    );
    let (status, body) = api
        .call(&Method::GET, "/api/v1/alerts", Some(&tokens[0].1), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another token is not limited: {body}"
    );

    // Unknown routes answer with the error body too.
    let (status, error) = api
        .call(&Method::GET, "/api/v1/nope", Some(&tokens[0].1), None)
        .await;
    assert_error(
        status,
        &error,
        StatusCode::NOT_FOUND,
        "not_found",
        "an unknown route",
    );
}

#[tokio::test]
async fn a_workspace_token_sees_and_acts_on_its_workspace_only() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let token = stdout_ok(&db.run(&[
        "tokens",
        "create",
        "--role",
        "operator",
        "--workspace",
        "ws_a",
    ]))
    .trim()
    .to_owned();
    let mut ids = Vec::new();
    for ws in ["ws_a", "ws_b"] {
        let mut job = NewJob::new("noop", json!({}));
        job.workspace_id = Some(ws.to_owned());
        job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
        ids.push(store.enqueue(&job).await.expect("enqueue").id);
    }
    let (status, jobs) = api
        .call(&Method::GET, "/api/v1/jobs", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&Value> = jobs.as_array().expect("jobs").iter().collect();
    assert_eq!(listed.len(), 1, "{jobs}");
    assert_eq!(listed[0]["workspace_id"], "ws_a");
    let (status, _) = api
        .call(
            &Method::GET,
            "/api/v1/jobs?workspace_id=ws_b",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call(
            &Method::POST,
            &format!("/api/v1/jobs/{}/cancel", ids[1]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another workspace's job does not exist for this token"
    );
    let (status, job) = api
        .call(
            &Method::POST,
            &format!("/api/v1/jobs/{}/cancel", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, &job["state"]),
        (StatusCode::OK, &json!("cancelled")),
        "{job}"
    );
    let (status, again) = api
        .call(
            &Method::POST,
            &format!("/api/v1/jobs/{}/cancel", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_error(
        status,
        &again,
        StatusCode::CONFLICT,
        "conflict",
        "cancel of a cancelled job",
    );
    let (status, job) = api
        .call(
            &Method::POST,
            &format!("/api/v1/jobs/{}/retry", ids[0]),
            Some(&token),
            None,
        )
        .await;
    // Retried: runnable again at once (the server's pool may already have picked it up).
    assert_eq!(status, StatusCode::OK, "{job}");
    assert!(
        ["available", "running", "completed"].contains(&job["state"].as_str().unwrap_or("")),
        "{job}"
    );
    let foreign =
        json!({"kind": "noop", "workspace_id": "ws_b", "args": {}, "idempotency_key": "x"});
    let (status, error) = api
        .call(&Method::POST, "/api/v1/jobs", Some(&token), Some(&foreign))
        .await;
    assert_error(
        status,
        &error,
        StatusCode::FORBIDDEN,
        "forbidden",
        "a job for another workspace",
    );
    let (status, error) = api
        .call(
            &Method::GET,
            "/api/v1/jobs?state=sleeping",
            Some(&token),
            None,
        )
        .await;
    assert_error(
        status,
        &error,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "a bad state filter",
    );
}

#[tokio::test]
async fn a_workspace_admin_manages_its_alert_channels_and_never_sees_a_secret_again() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = crate::support::Receiver::start().await;
    let (_serve, base) = serve_http(&db).await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin", "--workspace", "ws_1"]))
        .trim()
        .to_owned();
    let operator = stdout_ok(&db.run(&["tokens", "create", "--role", "operator"]))
        .trim()
        .to_owned();
    let channels = "/api/v1/workspaces/ws_1/alert-channels";
    let url = receiver.url("/status/200");
    let new = json!({"kind": "webhook", "url": url, "min_severity": "critical"});

    let (status, error) = api
        .call(&Method::POST, channels, Some(&operator), Some(&new))
        .await;
    assert_error(
        status,
        &error,
        StatusCode::FORBIDDEN,
        "forbidden",
        "an operator adding a channel",
    );
    let (status, error) = api
        .call(
            &Method::GET,
            "/api/v1/workspaces/ws_2/alert-channels",
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        status,
        &error,
        StatusCode::FORBIDDEN,
        "forbidden",
        "another workspace's channels",
    );
    let bad = json!({"kind": "pigeon"});
    let (status, error) = api
        .call(&Method::POST, channels, Some(&admin), Some(&bad))
        .await;
    assert_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_channel",
        "an unknown kind",
    );

    let (status, created) = api
        .call(&Method::POST, channels, Some(&admin), Some(&new))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("the generated secret, shown once");
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["min_severity"], "critical");

    let (status, listed) = api.call(&Method::GET, channels, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let text = listed.to_string();
    assert!(
        !text.contains(secret) && !text.contains("/status/200"),
        "no secret or URL: {text}"
    );

    let (status, sent) = api
        .call(
            &Method::POST,
            &format!("{channels}/{id}/test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (status, &sent["delivered"]),
        (StatusCode::OK, &json!(true)),
        "{sent}"
    );
    let hits = receiver.hits_on("/status/200");
    assert_eq!(hits.len(), 1);
    assert!(
        hits[0].headers.contains_key("x-planeconnection-signature"),
        "the test notice is signed: {:?}",
        hits[0].headers
    );

    let (status, _) = api
        .call(
            &Method::DELETE,
            &format!("{channels}/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = api
        .call(
            &Method::DELETE,
            &format!("{channels}/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        status,
        &error,
        StatusCode::NOT_FOUND,
        "not_found",
        "a removed channel",
    );
}
