//! Integrations end to end through the `hangar` binary, on both backends: a `hangar serve`
//! (private targets allowed, a pool that runs `sync` and `token_refresh`, Redis configured),
//! the QuickBooks simulator, a QuickBooks integration `PUT` over HTTP pointing at it, and a
//! manual sync `POST`ed over HTTP. The `sync` job runs in `hangar`, not in the test process:
//! the run shows in `GET …/sync-runs` with CONTRACT's JSON, its changes on
//! `{prefix}:changes` and over `…/sync-runs/{id}/changes`; a 401 mid-sync costs exactly one
//! token-endpoint call and one retry and the run succeeds; `invalid_grant` marks the
//! integration `needs_reauth` and raises one critical alert (the integration's, not also the
//! failed job's).

use std::time::Duration;

use hangar_workers::job::{JobId, JobState};
use hangar_workers::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::integrations_support::DumpOnPanic;
use crate::qbo_sim::{QboSim, REALM, oauth};
use crate::support::{ANY_PORT, Backend, Proc, TestDb, TestRedis, stdout_ok, wait_for};

pub const WS: &str = "ws_e2e";

/// Pools of the processes under test: the integrations' kinds with fast retries.
pub const POOLS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]

[[pool]]
name = "integrations"
queue = "integrations"
kinds = ["sync", "token_refresh"]
concurrency = 4
lease_ms = 5000
poll_interval_ms = 100

[pool.retry.server]
max_retries = 3
base_delay_ms = 200
max_delay_ms = 1000
"#;

/// One end-to-end test's world: the database, Redis, the simulator and a `hangar serve`.
pub struct World {
    pub db: TestDb,
    pub redis: TestRedis,
    pub sim: QboSim,
    pub store: Store,
    pub serve: Proc,
    pub base: String,
    pub admin: String,
    pub viewer: String,
    http: reqwest::Client,
}

impl World {
    pub async fn start(backend: Backend) -> World {
        let db = TestDb::new(backend).await;
        db.pools(POOLS);
        let store = db.store().await;
        let redis = TestRedis::new();
        let sim = QboSim::start().await;
        let serve = spawn_serve(&db, &redis, "serve");
        let base = format!("http://{}", serve.address().await);
        wait_for("the server", Duration::from_secs(30), || async {
            reqwest::get(format!("{base}/healthz")).await.ok().map(drop)
        })
        .await;
        let token = |role: &str| {
            stdout_ok(&db.run(&["tokens", "create", "--role", role, "--workspace", WS]))
                .trim()
                .to_owned()
        };
        let (admin, viewer) = (token("admin"), token("viewer"));
        World {
            db,
            redis,
            sim,
            store,
            serve,
            base,
            admin,
            viewer,
            http: reqwest::Client::new(),
        }
    }

    /// `method path` with `token`; the status and the JSON body (`Null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("answer");
        let status = answer.status();
        let text = answer.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The QuickBooks integration's body: `data_types`, manual frequency, the simulator as
    /// the company and the token endpoint.
    pub fn quickbooks(&self, data_types: &[&str]) -> Value {
        json!({
            "enabled": true,
            "data_types": data_types,
            "frequency": "manual",
            "settings": {"realm_id": REALM, "base_url": self.sim.base},
            "credentials": {"oauth": {
                "access_token": "access-0",
                "refresh_token": "refresh-0",
                "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
                "token_url": self.sim.token_url(),
                "client_id": oauth::CLIENT_ID,
                "client_secret": oauth::CLIENT_SECRET,
                "scopes": ["com.intuit.quickbooks.accounting"],
            }},
        })
    }

    /// `PUT`s the QuickBooks integration; returns its JSON.
    pub async fn put_quickbooks(&self, data_types: &[&str]) -> Value {
        let (status, answer) = self
            .call(
                Method::PUT,
                &format!("/api/v1/workspaces/{WS}/integrations/quickbooks"),
                &self.admin,
                Some(self.quickbooks(data_types)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// Kills the server with SIGKILL and starts another on the same database and Redis.
    pub async fn restart_after_kill9(&mut self, name: &str) {
        self.serve.kill9();
        self.serve = spawn_serve(&self.db, &self.redis, name);
        self.base = format!("http://{}", self.serve.address().await);
    }

    /// `POST …/quickbooks/sync` (one data type); the job's id.
    pub async fn start_sync(&self, data_type: &str) -> JobId {
        let (status, started) = self
            .call(
                Method::POST,
                &format!("/api/v1/workspaces/{WS}/integrations/quickbooks/sync"),
                &self.admin,
                Some(json!({"data_type": data_type})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        JobId(started["id"].as_i64().expect("job id"))
    }

    /// `POST …/quickbooks/sync`; waits for the job (run by `hangar`) to end and returns it.
    pub async fn sync(&self, data_type: &str) -> hangar_workers::job::Job {
        let id = self.start_sync(data_type).await;
        crate::support::wait_final(&self.store, id, Duration::from_secs(60)).await
    }

    /// The workspace's sync runs, newest first, over HTTP.
    pub async fn runs(&self) -> Vec<Value> {
        let (status, runs) = self
            .call(
                Method::GET,
                &format!("/api/v1/workspaces/{WS}/sync-runs"),
                &self.viewer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        runs.as_array().expect("a list").clone()
    }
}

/// `hangar serve` on this world's database and Redis; its log is `NAME.log`.
pub fn spawn_serve(db: &TestDb, redis: &TestRedis, name: &str) -> Proc {
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    redis.env(&mut command);
    db.spawn_command(name, command)
}

/// The `msg` objects on `{prefix}:changes`, oldest first.
pub fn stream_changes(redis: &TestRedis) -> Vec<Value> {
    let entries = redis.cli(&["XRANGE", &format!("{}:changes", redis.prefix), "-", "+"]);
    entries
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let fields = entry[1].as_array().cloned().unwrap_or_default();
            let msg = fields
                .chunks(2)
                .find(|kv| kv[0] == "msg")
                .map(|kv| kv[1].as_str().unwrap_or_default().to_owned())
                .expect("a msg field");
            serde_json::from_str(&msg).expect("msg is JSON")
        })
        .collect()
}

async fn sync_through_the_binary(backend: Backend) {
    let w = World::start(backend).await;
    let _dump = DumpOnPanic(vec![&w.serve]);
    let integration = w.put_quickbooks(&["payments"]).await;
    assert_eq!(integration["status"], "active", "{integration}");
    let first = w.sim.add_payments(3, chrono::Duration::hours(1));

    // A manual sync: the job runs in `hangar` and reads the three payments.
    let job = w.sync("payments").await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let runs = w.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    for field in [
        "id",
        "provider",
        "data_type",
        "direction",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "records",
        "error",
    ] {
        assert!(run.get(field).is_some(), "{field} in {run}");
    }
    assert_eq!(
        (
            &run["provider"],
            &run["data_type"],
            &run["direction"],
            &run["trigger"],
            &run["status"]
        ),
        (
            &json!("quickbooks"),
            &json!("payments"),
            &json!("in"),
            &json!("manual"),
            &json!("succeeded")
        ),
        "{run}"
    );
    assert_eq!(run["records"]["created"], 3, "{run}");
    assert_eq!(run["error"], Value::Null);
    // The changes: the same objects over HTTP and on the stream, one per payment.
    let run_id = run["id"].as_str().expect("run id");
    let (status, changes) = w
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{WS}/sync-runs/{run_id}/changes"),
            &w.viewer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changes}");
    let over_http = changes.as_array().expect("a list").clone();
    let mut ids: Vec<&str> = over_http
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<&str> = first.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(ids, expected, "{changes}");
    let on_stream = wait_for("the changes on the stream", Duration::from_secs(10), || {
        let got = stream_changes(&w.redis);
        async move { (got.len() >= 3).then_some(got) }
    })
    .await;
    assert_eq!(on_stream, over_http, "the stream carries the same objects");
    for change in &on_stream {
        assert_eq!(
            (
                &change["workspace_id"],
                &change["provider"],
                &change["action"]
            ),
            (&json!(WS), &json!("quickbooks"), &json!("created")),
            "{change}"
        );
        assert_eq!(change["sync_run_id"], run["id"]);
    }

    // A 401 mid-sync: one call to the token endpoint, one retry, the run succeeds.
    w.sim.add_payments(2, chrono::Duration::minutes(1));
    let (tokens, unauthorized) = (w.sim.calls("token"), w.sim.calls("401"));
    w.sim.switch(|s| s.expire_tokens = true);
    let job = w.sync("payments").await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(w.sim.calls("token"), tokens + 1, "exactly one refresh");
    assert_eq!(
        w.sim.calls("401"),
        unauthorized + 1,
        "one 401, then the retry"
    );
    let runs = w.runs().await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["records"]["created"], 2, "{}", runs[0]);
    assert_eq!(stream_changes(&w.redis).len(), 5);

    // `invalid_grant`: needs_reauth and a critical alert for the workspace.
    w.sim.switch(|s| {
        s.expire_tokens = true;
        s.invalid_grant = true;
    });
    let job = w.sync("payments").await;
    assert_ne!(job.state, JobState::Completed, "{job:?}");
    let (status, one) = w
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{WS}/integrations/quickbooks"),
            &w.viewer,
            None,
        )
        .await;
    assert_eq!(
        (status, &one["status"]),
        (StatusCode::OK, &json!("needs_reauth")),
        "{one}"
    );
    let (status, alerts) = w.call(Method::GET, "/api/v1/alerts", &w.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let alerts = alerts.as_array().cloned().unwrap_or_default();
    let alert = alerts
        .iter()
        .find(|a| {
            a["message"]
                .as_str()
                .unwrap_or("")
                .contains("invalid_grant")
        })
        .unwrap_or_else(|| panic!("a re-authorisation alert: {alerts:?}"));
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["workspace_id"], WS, "{alert}");
    // One dead credential, one alert: the integration's (resolved when it recovers), not
    // also the failed job's.
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let reauth: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "reauth_required")
        .collect();
    assert_eq!(reauth.len(), 1, "{alerts:?}");
    assert!(
        reauth[0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("integration quickbooks"),
        "{}",
        reauth[0]
    );
    // Another sync is refused while the integration needs re-authorisation.
    let (status, _) = w
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{WS}/integrations/quickbooks/sync"),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn sync_through_the_binary_postgres() {
    sync_through_the_binary(Backend::Postgres).await;
}

#[tokio::test]
async fn sync_through_the_binary_sqlite() {
    sync_through_the_binary(Backend::Sqlite).await;
}
