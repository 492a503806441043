//! Alerts as operators list and acknowledge them, through the served API, the CLI and the
//! dashboard: filtered by workspace and state in the database and paged by id, so the oldest
//! of many alerts can still be found and acknowledged, a workspace token sees its own alerts
//! however many other workspaces have, and "open" means neither acknowledged nor resolved.

use std::collections::HashSet;

use hangar_workers::alerts::model::{AlertKind, Severity};
use hangar_workers::store::{NewAlert, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Backend, TestDb, serve_http, stdout_ok};

fn alert(workspace: &str, key: &str) -> NewAlert {
    NewAlert {
        workspace_id: Some(workspace.to_owned()),
        kind: AlertKind::JobFailing,
        severity: Severity::Warning,
        message: format!("test alert {key}"),
        incident_key: format!("test:{key}"),
        integration: None,
    }
}

/// Raises one alert of ws_a, then `newer` alerts of ws_b; returns the ws_a alert's id.
async fn oldest_under_many(store: &Store, newer: usize) -> i64 {
    let oldest = store
        .raise_alerts(&[alert("ws_a", "oldest")])
        .await
        .expect("raise")[0];
    let others: Vec<NewAlert> = (0..newer)
        .map(|i| alert("ws_b", &format!("b{i}")))
        .collect();
    let ids = store.raise_alerts(&others).await.expect("raise many");
    assert_eq!(ids.len(), newer);
    assert!(ids.iter().all(|id| *id > oldest));
    oldest
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// Status, `Link` header and JSON body of one call.
    async fn call(&self, method: Method, path: &str, token: &str) -> (StatusCode, String, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("response");
        let status = response.status();
        let link = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, link, response.json().await.unwrap_or(Value::Null))
    }
}

/// The path of a `Link: <path>; rel="next"` header, if there is one.
fn next_page(link: &str) -> Option<String> {
    let (target, rel) = link.split_once(';')?;
    assert!(rel.contains("rel=\"next\""), "{link}");
    Some(
        target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
    )
}

fn ids(page: &Value) -> Vec<i64> {
    page.as_array()
        .expect("a JSON array of alerts")
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect()
}

async fn the_oldest_of_1050_alerts_is_listed_and_acknowledged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let oldest = oldest_under_many(&store, 1_049).await;
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
    let owner = token(&["--role", "owner"]);
    let ws_a = token(&["--role", "operator", "--workspace", "ws_a"]);
    let ws_b = token(&["--role", "owner", "--workspace", "ws_b"]);

    // ws_a's token sees its one alert, though 1 049 newer ones belong to ws_b.
    let (status, link, page) = api.call(Method::GET, "/api/v1/alerts", &ws_a).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![oldest]);
    assert_eq!(page[0]["state"], "open");
    assert_eq!(link, "", "one page only");

    // The owner pages through all of them, newest first, by following the links.
    let mut seen = Vec::new();
    let mut path = "/api/v1/alerts?limit=1000".to_owned();
    loop {
        let (status, link, page) = api.call(Method::GET, &path, &owner).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        seen.extend(ids(&page));
        match next_page(&link) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 1_050);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeat"
    );
    assert_eq!(seen.last(), Some(&oldest));
    let (_, _, default) = api.call(Method::GET, "/api/v1/alerts", &owner).await;
    assert_eq!(ids(&default).len(), 100, "the default page size");

    // ws_b's token cannot touch it; ws_a's token and the owner can acknowledge it.
    let ack = format!("/api/v1/alerts/{oldest}/ack");
    let (status, _, body) = api.call(Method::POST, &ack, &ws_b).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, first) = api.call(Method::POST, &ack, &ws_a).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["state"], "acknowledged", "{first}");
    assert!(first["acknowledged_at"].is_string(), "{first}");
    let (status, _, again) = api.call(Method::POST, &ack, &owner).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["acknowledged_at"], first["acknowledged_at"]);

    // Acknowledged is no longer open.
    let (_, _, open) = api.call(Method::GET, "/api/v1/alerts", &ws_a).await;
    assert_eq!(ids(&open), Vec::<i64>::new(), "{open}");
    let (_, _, acked) = api
        .call(Method::GET, "/api/v1/alerts?state=acknowledged", &owner)
        .await;
    assert_eq!(ids(&acked), vec![oldest]);
    let (_, _, both) = api
        .call(
            Method::GET,
            "/api/v1/alerts?state=open,acknowledged&workspace_id=ws_a",
            &owner,
        )
        .await;
    assert_eq!(ids(&both), vec![oldest]);
    let (status, _, error) = api
        .call(Method::GET, "/api/v1/alerts?state=closed", &owner)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("closed")),
        "{error}"
    );
    let (status, _, _) = api
        .call(Method::GET, "/api/v1/alerts?workspace_id=ws_b", &ws_a)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_oldest_of_1050_alerts_is_listed_and_acknowledged_on_postgres() {
    the_oldest_of_1050_alerts_is_listed_and_acknowledged(Backend::Postgres).await;
}

#[tokio::test]
async fn the_oldest_of_1050_alerts_is_listed_and_acknowledged_on_sqlite() {
    the_oldest_of_1050_alerts_is_listed_and_acknowledged(Backend::Sqlite).await;
}

/// The rows `hangar alerts list ARGS` prints: (id, state) per line under the header.
fn cli_rows(db: &TestDb, args: &[&str]) -> Vec<(i64, String)> {
    let mut all = vec!["alerts", "list"];
    all.extend_from_slice(args);
    let out = stdout_ok(&db.run(&all));
    let mut lines = out.lines();
    let header = lines.next().expect("a header");
    for column in [
        "STATE",
        "FIRST SEEN",
        "LAST SEEN",
        "ACKNOWLEDGED",
        "RESOLVED",
    ] {
        assert!(header.contains(column), "{header}");
    }
    lines
        .map(|line| {
            let mut cells = line.split_whitespace();
            let id = cells.next().expect("id").parse().expect("an id");
            (id, cells.next().expect("state").to_owned())
        })
        .collect()
}

#[tokio::test]
async fn alerts_list_shows_open_alerts_by_default_and_each_state_on_request() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let raised = store
        .raise_alerts(&[
            alert("ws_a", "one"),
            alert("ws_a", "two"),
            alert("ws_b", "three"),
        ])
        .await
        .expect("raise");
    store.ack_alert(raised[1]).await.expect("ack");
    let open = |id: i64| (id, "open".to_owned());

    assert_eq!(cli_rows(&db, &[]), vec![open(raised[2]), open(raised[0])]);
    assert_eq!(
        cli_rows(&db, &["--state", "acknowledged"]),
        vec![(raised[1], "acknowledged".to_owned())]
    );
    assert_eq!(
        cli_rows(&db, &["--all"]),
        vec![
            open(raised[2]),
            (raised[1], "acknowledged".to_owned()),
            open(raised[0])
        ]
    );
    assert_eq!(
        cli_rows(
            &db,
            &["--workspace", "ws_a", "--state", "open,acknowledged"]
        ),
        vec![(raised[1], "acknowledged".to_owned()), open(raised[0])]
    );

    // Pages: the next page's cursor is named on stderr.
    let output = db.run(&["alerts", "list", "--all", "--limit", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--before {}", raised[1])),
        "{stderr}"
    );
    assert_eq!(
        cli_rows(&db, &["--all", "--before", &raised[1].to_string()]),
        vec![open(raised[0])]
    );

    let json: Value =
        serde_json::from_str(&stdout_ok(&db.run(&["alerts", "list", "--all", "--json"])))
            .expect("JSON");
    let states: HashSet<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, HashSet::from(["open", "acknowledged"]));

    let bad = db.run(&["alerts", "list", "--state", "closed"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--state"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn the_overview_counts_open_alerts_only() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let raised = store
        .raise_alerts(&[
            alert("ws_a", "one"),
            alert("ws_a", "two"),
            alert("ws_a", "three"),
        ])
        .await
        .expect("raise");
    store.ack_alert(raised[0]).await.expect("ack");
    store.ack_alert(raised[1]).await.expect("ack");
    let (_serve, base) = serve_http(&db).await;
    let token = stdout_ok(&db.run(&["tokens", "create", "--role", "viewer"]))
        .trim()
        .to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{base}/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("sign in");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = http
        .get(format!("{base}/"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("overview")
        .text()
        .await
        .expect("page");
    let after = &page[page.find("Open alerts").expect("the open alerts card")..];
    let count: String = after
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(
        count, "1",
        "two of the three are acknowledged: {after:.200}"
    );
}

/// Alerts and channels come out of the store typed; a stored kind or severity that is none of
/// the model's is reported as a corrupt row naming the table and the alert, not shown as text.
async fn alert_rows_are_typed_at_the_store(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store
        .raise_alerts(&[NewAlert {
            workspace_id: None,
            kind: AlertKind::ChannelDisabled,
            severity: Severity::Critical,
            message: "typed".to_owned(),
            incident_key: "typed".to_owned(),
            integration: None,
        }])
        .await
        .expect("raise")[0];
    let row = store.alert(id).await.expect("alert");
    assert_eq!(
        (row.kind, row.severity),
        (AlertKind::ChannelDisabled, Severity::Critical)
    );
    db.sql(&format!(
        "UPDATE hangar_alerts SET severity = 'urgent' WHERE id = {id}"
    ))
    .await;
    let error = store.alert(id).await.expect_err("corrupt row").to_string();
    assert!(
        error.contains("hangar_alerts")
            && error.contains(&format!("alert {id}"))
            && error.contains("'urgent'"),
        "{error}"
    );
    assert!(store.alerts(true).await.is_err());
}

#[tokio::test]
async fn alert_rows_are_typed_at_the_store_postgres() {
    alert_rows_are_typed_at_the_store(Backend::Postgres).await;
}

#[tokio::test]
async fn alert_rows_are_typed_at_the_store_sqlite() {
    alert_rows_are_typed_at_the_store(Backend::Sqlite).await;
}
