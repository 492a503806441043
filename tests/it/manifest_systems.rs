//! Every shipped manifest template, as an admin would enable it, through `hangar serve` on
//! both backends: each of the ten templates (the compiled-in `TEMPLATES`) is filled for the
//! generic vendor of `vendor_sim.rs` (`manifest_fill.rs`: only placeholders replaced, six
//! auth kinds, both cursor kinds, three paginations, JSON and CSV across the systems),
//! `PUT …/integrations/{provider}` enables it (no secret echoed), its `check` request
//! passes, every inbound data type syncs by `POST …/{provider}/sync` (a full reconciliation
//! of the seeded records, then the changes since the cursor, then a soft error inside a 200
//! failing the run), read back through `GET …/sync-runs` and the run's changes; every
//! outbound data type gets one of its catalog events by `POST /api/v1/events` and the vendor
//! receives exactly one push with the mapped fields. ASAP (safety) is a safety manager's to
//! enable, not an admin's, and a report changed again reaches the vendor as a new
//! submission, the first left as it was.

use std::time::Duration;

use hangar_integrations::access::{AccessToken, IntegrationInfo};
use hangar_integrations::connectors::manifest::load::Document;
use hangar_integrations::connectors::manifest::templates::{self, TEMPLATES};
use hangar_integrations::credentials::Credential;
use hangar_integrations::provider::Provider;
use hangar_integrations::sync::connector::CallContext;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::manifest_fill::{Filled, In, Out, fill, vendor_name};
use crate::stripe_serve::{SYNC_POOLS, call};
use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};
use crate::vendor_sim::{AuthKind, Format, SOFT_ERROR, VendorSim};

/// Records seeded per inbound stream (pages of 3).
const SEEDED: usize = 7;

struct Api {
    base: String,
    ws: String,
    token: String,
}

impl Api {
    async fn runs(&self, data_type: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/workspaces/{}/sync-runs", self.base, self.ws);
        let (status, runs, text) = call(Method::GET, &url, &self.token, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        runs.as_array()
            .expect("a list")
            .iter()
            .filter(|r| r["data_type"] == data_type)
            .cloned()
            .collect()
    }

    /// Waits for run number `n + 1` of `data_type` (newest first) to finish.
    async fn run_after(&self, data_type: &str, n: usize) -> Value {
        wait_for(
            &format!("{} run {} of {data_type}", self.ws, n + 1),
            Duration::from_secs(20),
            || async {
                let runs = self.runs(data_type).await;
                (runs.len() > n && runs[0]["status"] != "running").then(|| runs[0].clone())
            },
        )
        .await
    }

    async fn changes(&self, run: &Value) -> Vec<Value> {
        let url = format!(
            "{}/api/v1/workspaces/{}/sync-runs/{}/changes",
            self.base,
            self.ws,
            run["id"].as_str().expect("run id")
        );
        let (status, changes, text) = call(Method::GET, &url, &self.token, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        changes.as_array().expect("a list").clone()
    }

    async fn sync(&self, provider: &str, data_type: &str) -> Value {
        let before = self.runs(data_type).await.len();
        let url = format!(
            "{}/api/v1/workspaces/{}/integrations/{provider}/sync",
            self.base, self.ws
        );
        let body = json!({ "data_type": data_type });
        let (status, _, text) = call(Method::POST, &url, &self.token, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{provider} {data_type}: {text}"
        );
        self.run_after(data_type, before).await
    }
}

/// The platform's record the changes route must show for a vendor record.
fn expected(stream: &In, record: &crate::vendor_sim::Record) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(record.uid));
    for field in &stream.fields {
        out.insert(field.clone(), json!(record.attributes[&vendor_name(field)]));
    }
    Value::Object(out)
}

async fn inbound(sim: &VendorSim, api: &Api, provider: &str, stream: &In) {
    let dt = stream.data_type.as_str();
    let what = format!(
        "{provider} {dt} ({:?}, {} cursor)",
        stream.format, stream.cursor
    );
    let queries = sim.queries(provider).len();
    let run = api.sync(provider, dt).await;
    assert_eq!(
        (&run["status"], &run["direction"], &run["trigger"]),
        (&json!("succeeded"), &json!("in"), &json!("manual")),
        "{what}: {run}"
    );
    assert_eq!(run["records"]["created"], SEEDED, "{what}: {run}");
    let read = &sim.queries(provider)[queries..];
    assert!(
        read.len() >= 3 && read.iter().any(|q| q.contains_key(stream.page_param)),
        "{what}: {SEEDED} records in pages of 3: {read:?}"
    );
    let mut changes = api.changes(&run).await;
    changes.sort_by(|a, b| a["external_id"].as_str().cmp(&b["external_id"].as_str()));
    let records = sim.records(provider, dt);
    assert_eq!(changes.len(), records.len(), "{what}: {changes:?}");
    for (change, record) in changes.iter().zip(&records) {
        assert_eq!(
            (
                &change["external_id"],
                &change["action"],
                &change["provider"]
            ),
            (&json!(record.uid), &json!("created"), &json!(provider)),
            "{what}: {change}"
        );
        assert_eq!(change["record"], expected(stream, record), "{what}: mapped");
    }

    // Two records revised at the vendor and one new: the changes since the cursor.
    sim.touch(provider, dt, 2);
    sim.seed(
        provider,
        dt,
        stream.format,
        &fields_of(stream),
        1,
        chrono::Duration::zero(),
    );
    let queries = sim.queries(provider).len();
    let run = api.sync(provider, dt).await;
    assert_eq!(
        (
            &run["status"],
            &run["records"]["created"],
            &run["records"]["updated"]
        ),
        (&json!("succeeded"), &json!(1), &json!(2)),
        "{what}: {run}"
    );
    let param = if stream.cursor == "date_time" {
        "modified_since"
    } else {
        "after_seq"
    };
    let read = &sim.queries(provider)[queries..];
    assert!(
        !read.is_empty() && read.iter().all(|q| q.contains_key(param)),
        "{what}: the cursor is sent as {param}: {read:?}"
    );
    let changes = api.changes(&run).await;
    let revised: Vec<&Value> = changes
        .iter()
        .filter(|c| c["action"] == "updated")
        .collect();
    assert_eq!(revised.len(), 2, "{what}: {changes:?}");
    assert!(
        revised
            .iter()
            .all(|c| c["record"].to_string().contains("(revised)")),
        "{what}: {revised:?}"
    );

    // The vendor's error inside a 200, by the manifest's soft-error rule.
    sim.soft_error_next(provider);
    let run = api.sync(provider, dt).await;
    assert_eq!(run["status"], "failed", "{what}: {run}");
    assert_eq!(run["error_class"], "client", "{what}: {run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or_default()
            .contains(SOFT_ERROR),
        "{what}: the vendor's message: {run}"
    );
}

fn fields_of(stream: &In) -> Vec<String> {
    stream.fields.iter().map(|f| vendor_name(f)).collect()
}

/// Posts `event_type` with `data`; waits for the vendor's push number `n + 1` and the event's
/// run; returns the run.
async fn post_event(
    sim: &VendorSim,
    api: &Api,
    provider: &str,
    stream: &Out,
    (id, event_type, data): (&str, &str, &Value),
    n: usize,
) -> Value {
    let runs = api.runs(&stream.data_type).await.len();
    let event = json!({"id": id, "type": event_type, "workspace_id": api.ws,
        "timestamp": chrono::Utc::now().to_rfc3339(), "data": data});
    let url = format!("{}/api/v1/events", api.base);
    let (status, _, text) = call(Method::POST, &url, &api.token, Some(event)).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{provider} {event_type}: {text}"
    );
    wait_for(
        &format!("{provider}'s push {}", n + 1),
        Duration::from_secs(20),
        || async { (sim.pushes(provider, &stream.data_type).len() > n).then_some(()) },
    )
    .await;
    let run = api.run_after(&stream.data_type, runs).await;
    assert_eq!(
        (&run["status"], &run["direction"], &run["trigger"]),
        (&json!("succeeded"), &json!("out"), &json!("event")),
        "{provider} {}: {run}",
        stream.data_type
    );
    run
}

async fn outbound(sim: &VendorSim, api: &Api, provider: &str, stream: &Out) {
    let dt = stream.data_type.as_str();
    let mut data = Map::new();
    for source in stream.map.values() {
        data.insert(source.clone(), json!(format!("{source}-{provider}")));
    }
    let data = Value::Object(data);
    let event_type = stream.events[0].as_str();
    let evt = format!("evt_{provider}_1");
    let run = post_event(sim, api, provider, stream, (&evt, event_type, &data), 0).await;
    assert_eq!(run["records"]["created"], 1, "{provider} {dt}: {run}");
    let pushes = sim.pushes(provider, dt);
    assert_eq!(pushes.len(), 1, "{provider} {dt}: exactly one push");
    let mapped: Map<String, Value> = stream
        .map
        .iter()
        .map(|(vendor, source)| (vendor.clone(), data[source].clone()))
        .collect();
    assert_eq!(
        (pushes[0].method.as_str(), &pushes[0].body),
        (stream.method, &Value::Object(mapped)),
        "{provider} {dt}: the body the manifest maps"
    );

    if provider == "asap" {
        // The same report changed again: the template has no update request, so the
        // vendor gets a new submission and keeps the first as it was (append-only).
        let mut changed = data.clone();
        changed["status"] = json!("status-closed");
        let second = stream.events.last().expect("events").as_str();
        let evt = format!("evt_{provider}_2");
        let run = post_event(sim, api, provider, stream, (&evt, second, &changed), 1).await;
        assert_eq!(run["records"]["conflicted"], 0, "{run}");
        let pushes = sim.pushes(provider, dt);
        assert_eq!(pushes.len(), 2, "appended, not overwritten");
        assert_ne!(pushes[0].id, pushes[1].id, "a second record at the vendor");
        assert_eq!(
            pushes[0].body["status"], data["status"],
            "the first is kept"
        );
        assert_eq!(pushes[1].body["status"], "status-closed");
        assert_eq!(
            pushes[1].body[vendor_name(&stream.internal_id)],
            data[&stream.internal_id],
            "the same report"
        );
    }
}

/// The manifest's `check` request against the vendor (the connector as the product has it).
async fn check(sim: &VendorSim, provider: Provider, filled: &Filled) {
    let connector = templates::connector(provider).expect("a manifest provider");
    let credential: Credential =
        serde_json::from_value(filled.credentials.clone()).expect("credentials");
    let cx = CallContext {
        integration: IntegrationInfo {
            id: format!("int_check_{provider}"),
            workspace_id: format!("ws_{provider}"),
            provider,
            enabled: true,
            data_types: vec![],
            settings: json!({ "manifest": filled.text }),
        },
        token: AccessToken {
            token: credential.bearer().to_owned(),
            version: 1,
        },
        http: reqwest::Client::new(),
        targets: hangar_workers::targets::TargetPolicy::allow_all(),
    };
    let me = sim.calls(provider.id(), "me");
    connector
        .check(cx)
        .await
        .unwrap_or_else(|e| panic!("{provider}: check: {e:?}"));
    assert_eq!(sim.calls(provider.id(), "me"), me + 1, "{provider}");
}

async fn every_system(backend: Backend) {
    let started = std::time::Instant::now();
    let db = TestDb::new(backend).await;
    db.pools(SYNC_POOLS);
    let _ = db.store().await;
    let sim = VendorSim::start().await;
    let (_serve, base) = serve_http(&db).await;
    let token = |role: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let (admin, safety) = (token("admin"), token("safety_manager"));
    let mut kinds = Vec::new();
    for (n, (provider, file, template)) in TEMPLATES.iter().enumerate() {
        let p = provider.id();
        let filled = fill(p, template, &sim.base, n);
        kinds.push(filled.auth);
        let doc = Document::parse("settings.manifest", &filled.text).expect("reads");
        assert!(doc.placeholders.is_empty(), "{p}: {:?}", doc.placeholders);
        doc.manifest().unwrap_or_else(|e| panic!("{p}: {e}"));
        let shipped = Document::parse(file, template).expect("the template reads");
        assert_eq!(
            doc.streams, shipped.streams,
            "{p}: the template's flows kept"
        );
        sim.expect_auth(p, filled.auth);
        for stream in &filled.ins {
            let fields = fields_of(stream);
            let ago = chrono::Duration::minutes(10);
            sim.seed(p, &stream.data_type, stream.format, &fields, SEEDED, ago);
        }
        check(&sim, *provider, &filled).await;

        let api = Api {
            base: base.clone(),
            ws: format!("ws_{p}"),
            token: if *provider == Provider::Asap {
                safety.clone()
            } else {
                admin.clone()
            },
        };
        let url = format!("{base}/api/v1/workspaces/{}/integrations/{p}", api.ws);
        let data_types: Vec<&str> = shipped
            .streams
            .iter()
            .map(|s| s.data_type.as_str())
            .collect();
        let body = json!({"enabled": true, "data_types": data_types, "frequency": "manual",
            "settings": {"manifest": filled.text}, "credentials": filled.credentials});
        if *provider == Provider::Asap {
            let (status, _, text) = call(Method::PUT, &url, &admin, Some(body.clone())).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "safety is a safety manager's: {text}"
            );
        }
        let (status, saved, text) = call(Method::PUT, &url, &api.token, Some(body)).await;
        assert_eq!(
            (status, &saved["status"]),
            (StatusCode::OK, &json!("active")),
            "{p}: {text}"
        );
        for secret in &filled.secrets {
            assert!(!text.contains(secret), "{p}: no secret echoed: {text}");
        }
        for stream in &filled.ins {
            inbound(&sim, &api, p, stream).await;
        }
        for stream in &filled.outs {
            outbound(&sim, &api, p, stream).await;
        }
        let (_, runs, text) = call(
            Method::GET,
            &format!("{base}/api/v1/workspaces/{}/sync-runs", api.ws),
            &api.token,
            None,
        )
        .await;
        assert!(
            runs.as_array().is_some_and(|r| !r.is_empty()),
            "{p}: {text}"
        );
        for secret in &filled.secrets {
            assert!(!text.contains(secret), "{p}: no secret in the runs: {text}");
        }
        assert!(
            sim.calls(p, "auth") > 0,
            "{p}: authenticated as {:?}",
            filled.auth
        );
        if matches!(filled.auth, AuthKind::Oauth | AuthKind::Session) {
            assert!(sim.calls(p, "token") + sim.calls(p, "login") >= 1, "{p}");
        }
        assert_eq!(sim.calls(p, "401"), 0, "{p}: no call refused");
    }
    for kind in [
        AuthKind::ApiKeyHeader,
        AuthKind::ApiKeyQuery,
        AuthKind::Basic,
        AuthKind::Bearer,
        AuthKind::Oauth,
        AuthKind::Session,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} is used");
    }
    let formats: Vec<Format> = TEMPLATES
        .iter()
        .enumerate()
        .flat_map(|(n, (p, _, t))| fill(p.id(), t, &sim.base, n).ins)
        .map(|s| s.format)
        .collect();
    assert!(formats.contains(&Format::Csv) && formats.contains(&Format::Json));
    eprintln!("{backend:?}: ten systems in {:?}", started.elapsed());
}

#[tokio::test]
async fn manifest_systems_sync_through_the_routes_postgres() {
    every_system(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_systems_sync_through_the_routes_sqlite() {
    every_system(Backend::Sqlite).await;
}
