//! ForeFlight Dispatch end to end in a `hangar serve` process, on both backends, against
//! `foreflight_sim.rs` (third-party shapes): an admin enables it with
//! `PUT …/integrations/foreflight` (an operator may not; no answer shows the key), and
//! `POST …/foreflight/sync` reads the flights (the run and its changes on the API); a cursor
//! older than ForeFlight's 30-day window falls back to a full reconciliation, which finds a
//! flight the changes read from that cursor cannot see (the run's log says why).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::foreflight_sim::{API_KEY, ForeFlightSim};
use crate::stripe_serve::{SYNC_POOLS, call};
use crate::support::{Backend, Proc, TestDb, serve_http, stdout_ok, wait_for};

const WS: &str = "ws_dispatch";

struct World {
    db: TestDb,
    sim: ForeFlightSim,
    _serve: Proc,
    base: String,
    admin: String,
    operator: String,
}

impl World {
    async fn start(backend: Backend) -> World {
        let db = TestDb::new(backend).await;
        db.pools(SYNC_POOLS);
        let _ = db.store().await;
        let sim = ForeFlightSim::start().await;
        let (serve, base) = serve_http(&db).await;
        let token = |role: &str| {
            stdout_ok(&db.run(&["tokens", "create", "--role", role]))
                .trim()
                .to_owned()
        };
        let (admin, operator) = (token("admin"), token("operator"));
        World {
            db,
            sim,
            _serve: serve,
            base,
            admin,
            operator,
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/api/v1/workspaces/{WS}/{rest}", self.base)
    }

    /// Enables ForeFlight's flights; returns the integration.
    async fn enable(&self) -> Value {
        let body = json!({"enabled": true, "data_types": ["flights"], "frequency": "manual",
            "settings": {"base_url": self.sim.base}, "credentials": {"api_key": API_KEY}});
        let url = self.url("integrations/foreflight");
        let (status, _, text) = call(Method::PUT, &url, &self.operator, Some(body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "ops is an admin's: {text}");
        let (status, saved, text) = call(Method::PUT, &url, &self.admin, Some(body)).await;
        assert_eq!(
            (status, &saved["status"]),
            (StatusCode::OK, &json!("active")),
            "{text}"
        );
        assert!(!text.contains(API_KEY), "{text}");
        saved
    }

    async fn runs(&self) -> Vec<Value> {
        let (status, runs, text) =
            call(Method::GET, &self.url("sync-runs"), &self.admin, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(!text.contains(API_KEY), "{text}");
        runs.as_array().expect("a list").clone()
    }

    /// `POST …/foreflight/sync` of the flights; the run once it finished.
    async fn sync(&self) -> Value {
        let before = self.runs().await.len();
        let body = json!({"data_type": "flights"});
        let url = self.url("integrations/foreflight/sync");
        let (status, _, text) = call(Method::POST, &url, &self.admin, Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        let run = wait_for("the sync run", Duration::from_secs(20), || async {
            let runs = self.runs().await;
            (runs.len() > before && runs[0]["status"] != "running").then(|| runs[0].clone())
        })
        .await;
        assert_eq!(
            (
                &run["provider"],
                &run["data_type"],
                &run["direction"],
                &run["trigger"]
            ),
            (
                &json!("foreflight"),
                &json!("flights"),
                &json!("in"),
                &json!("manual")
            ),
            "{run}"
        );
        run
    }

    async fn changes(&self, run: &Value) -> Vec<Value> {
        let id = run["id"].as_str().expect("run id");
        let url = self.url(&format!("sync-runs/{id}/changes"));
        let (status, changes, text) = call(Method::GET, &url, &self.admin, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        changes.as_array().expect("a list").clone()
    }
}

async fn enabled_and_synced(backend: Backend) {
    let w = World::start(backend).await;
    let mut ids = w.sim.add_flights(5, chrono::Duration::days(2));
    w.sim.switch(|s| s.page = 2);
    w.enable().await;
    let run = w.sync().await;
    assert_eq!(
        (&run["status"], &run["records"]["created"]),
        (&json!("succeeded"), &json!(5)),
        "{run}"
    );
    assert!(
        w.sim.calls("modified") >= 3,
        "5 flights in pages of 2 from the modified feed"
    );
    assert_eq!(w.sim.calls("403"), 0, "the key was sent");
    let changes = w.changes(&run).await;
    let mut seen: Vec<String> = changes
        .iter()
        .map(|c| {
            assert_eq!(
                (&c["action"], &c["provider"], &c["object_type"]),
                (&json!("created"), &json!("foreflight"), &json!("Flight")),
                "{c}"
            );
            assert_eq!(c["record"]["departure"], "KTEB", "{c}");
            c["external_id"].as_str().expect("id").to_owned()
        })
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    // A dispatcher changes a flight: the next sync reads the feed from the cursor.
    w.sim.edit(&ids[1], "plannedFuel", json!(6100));
    let run = w.sync().await;
    assert_eq!(
        (
            &run["status"],
            &run["records"]["created"],
            &run["records"]["updated"]
        ),
        (&json!("succeeded"), &json!(0), &json!(1)),
        "{run}"
    );
    let changes = w.changes(&run).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["record"]["plannedFuel"], 6100);
}

#[tokio::test]
async fn foreflight_enabled_and_synced_postgres() {
    enabled_and_synced(Backend::Postgres).await;
}

#[tokio::test]
async fn foreflight_enabled_and_synced_sqlite() {
    enabled_and_synced(Backend::Sqlite).await;
}

async fn old_cursor_falls_back(backend: Backend) {
    let w = World::start(backend).await;
    w.sim.add_flights(3, chrono::Duration::days(2));
    let integration = w.enable().await;
    let id = integration["id"]
        .as_str()
        .expect("integration id")
        .to_owned();
    let first = w.sync().await;
    assert_eq!(first["records"]["created"], 3, "{first}");

    // A flight last modified 40 days ago shows up in ForeFlight (imported with its time):
    // the feed from the cursor does not bring it.
    w.sim.add_flights(1, chrono::Duration::days(40));
    let run = w.sync().await;
    assert_eq!(
        (&run["status"], &run["records"]["created"]),
        (&json!("succeeded"), &json!(0)),
        "{run}"
    );
    let log = run["log"].to_string();
    assert!(!log.contains("full reconciliation"), "{log}");

    // The cursor is 31 days old: past the window, a full reconciliation reads the feed from
    // the start and finds it.
    let old = chrono::Utc::now() - chrono::Duration::days(31);
    let at = if w.db.url.starts_with("sqlite") {
        old.timestamp_millis().to_string()
    } else {
        format!("'{}'", old.to_rfc3339())
    };
    w.db.sql(&format!(
        "UPDATE hangar_sync_cursors SET cursor_at = {at} WHERE integration_id = '{id}'"
    ))
    .await;
    let run = w.sync().await;
    assert_eq!(
        (
            &run["status"],
            &run["records"]["created"],
            &run["records"]["updated"]
        ),
        (&json!("succeeded"), &json!(1), &json!(0)),
        "{run}"
    );
    assert!(
        run["log"].as_array().is_some_and(|l| l.iter().any(|l| l
            .as_str()
            .unwrap_or_default()
            .contains(
                "full reconciliation: cursor older than the provider's 30-day changes window"
            ))),
        "{}",
        run["log"]
    );
    assert_eq!(
        w.changes(&run).await.len(),
        1,
        "only the flight it had not seen"
    );
}

#[tokio::test]
async fn foreflight_old_cursor_falls_back_postgres() {
    old_cursor_falls_back(Backend::Postgres).await;
}

#[tokio::test]
async fn foreflight_old_cursor_falls_back_sqlite() {
    old_cursor_falls_back(Backend::Sqlite).await;
}
