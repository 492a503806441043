//! Issue 15: the events a workspace published and where each went (store, API, CLI,
//! dashboard), and the dead letters' replay, delete and trim over the API, the CLI and the
//! dashboard (the store side of dead letters: `dead_letter_actions.rs`).

use std::time::Duration;

use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::NewRun;
use hangar_workers::client::Client;
use hangar_workers::store::{EventFilter, EventSubscription, Store};
use hangar_workers::webhooks::endpoint;
use hangar_workers::wire::{EventEnvelope, parse_event_body};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cdp::Browser;
use crate::dashboard::screenshots;
use crate::support::{
    ANY_PORT, Backend, TestDb, TestRedis, dashboard_session, stdout_ok, wait_for,
};
use crate::webhooks_support::{trip_endpoint, webhook_context};

fn envelope(id: &str, event_type: &str, ws: &str) -> EventEnvelope {
    parse_event_body(
        json!({"id": id, "type": event_type, "workspace_id": ws,
            "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_9"}})
        .to_string()
        .as_bytes(),
    )
    .expect("event")
}

/// Two endpoints of ws_1 taking `trip.created`, one of ws_2; an integration-like
/// subscription of ws_1 to `trip.created`; events evt_1..evt_5 in ws_1 (evt_1, evt_3, evt_5
/// trips, evt_2 and evt_4 invoices) and evt_1 in ws_2. Returns the ws_1 endpoints' URLs.
async fn publish_fixture(store: &Store) -> Vec<String> {
    let client = Client::builtin();
    let context = webhook_context(store);
    let new = |ws: &str, url: &str| trip_endpoint(ws, url, Default::default());
    let urls = vec![
        "http://127.0.0.1:9/a".to_owned(),
        "http://127.0.0.1:9/b".to_owned(),
    ];
    for url in &urls {
        endpoint::create(&context, &new("ws_1", url))
            .await
            .expect("endpoint");
    }
    endpoint::create(&context, &new("ws_2", "http://127.0.0.1:9/other"))
        .await
        .expect("endpoint");
    store
        .set_event_subscriptions(
            "int_1",
            "ws_1",
            &[EventSubscription {
                event_type: "trip.created".to_owned(),
                kind: "noop".to_owned(),
                queue: "default".to_owned(),
                max_attempts: 3,
                args: json!({"integration_id": "int_1"}),
                key_prefix: "hangar:sync:int_1:".to_owned(),
            }],
        )
        .await
        .expect("subscription");
    let route = client.webhook_route();
    for (id, event_type) in [
        ("evt_1", "trip.created"),
        ("evt_2", "invoice.paid"),
        ("evt_3", "trip.created"),
        ("evt_4", "invoice.paid"),
        ("evt_5", "trip.created"),
    ] {
        assert!(
            store
                .publish_event(&envelope(id, event_type, "ws_1"), &route)
                .await
                .expect("publish")
        );
    }
    assert!(
        store
            .publish_event(&envelope("evt_1", "trip.created", "ws_2"), &route)
            .await
            .expect("publish")
    );
    urls
}

fn ids(events: &[hangar_workers::store::EventSummary]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

async fn events_are_listed_by_pages_filtered_and_show_where_they_went(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let urls = publish_fixture(&store).await;

    // Newest first, two by two, with a cursor until the last page.
    let mut filter = EventFilter {
        workspace_id: Some("ws_1".to_owned()),
        limit: 2,
        ..EventFilter::default()
    };
    let mut pages = Vec::new();
    loop {
        let (page, next) = store.events_page(&filter).await.expect("page");
        pages.push(ids(&page).join(","));
        match next {
            Some(cursor) => filter.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, ["evt_5,evt_4", "evt_3,evt_2", "evt_1"]);

    // Filters: type, workspace, time range.
    let trips = EventFilter {
        workspace_id: Some("ws_1".to_owned()),
        event_type: Some("trip.created".to_owned()),
        limit: 100,
        ..EventFilter::default()
    };
    let (page, _) = store.events_page(&trips).await.expect("trips");
    assert_eq!(ids(&page), ["evt_5", "evt_3", "evt_1"]);
    // Where each went, in the list: both endpoints and the subscription's job for a trip,
    // nothing for an invoice.
    assert_eq!((page[2].deliveries, page[2].jobs), (2, 1));
    let all = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    let (page, _) = store.events_page(&all).await.expect("all");
    assert_eq!(page.len(), 6);
    assert_eq!(page[0].workspace_id, "ws_2");
    assert_eq!((page[0].deliveries, page[0].jobs), (1, 0));
    let invoices: Vec<_> = page
        .iter()
        .filter(|e| e.event_type == "invoice.paid")
        .collect();
    assert!(invoices.iter().all(|e| e.deliveries == 0 && e.jobs == 0));
    let later = EventFilter {
        since: Some(chrono::Utc::now() + chrono::Duration::minutes(1)),
        limit: 100,
        ..EventFilter::default()
    };
    assert!(store.events_page(&later).await.expect("later").0.is_empty());
    let earlier = EventFilter {
        until: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        limit: 100,
        ..EventFilter::default()
    };
    assert!(
        store
            .events_page(&earlier)
            .await
            .expect("earlier")
            .0
            .is_empty()
    );

    // One event: both deliveries (endpoint, state, attempts), the job its subscription
    // made and that job's sync run.
    let details = store
        .event_details(Some("ws_1"), "evt_1")
        .await
        .expect("evt_1");
    assert_eq!(details.len(), 1);
    let first = &details[0];
    assert_eq!(first.jobs.len(), 1);
    let job = first.jobs[0].clone();
    assert_eq!(job.kind, "noop");
    let mut went: Vec<(&str, &str, i32)> = first
        .deliveries
        .iter()
        .map(|d| (d.endpoint_url.as_str(), d.state.as_str(), d.attempts))
        .collect();
    went.sort();
    assert_eq!(
        went,
        [
            (urls[0].as_str(), "pending", 0),
            (urls[1].as_str(), "pending", 0)
        ]
    );
    assert!(first.deliveries.iter().all(|d| d.job_id.is_some()));
    assert_eq!(first.data, json!({"trip_id": "trp_9"}));
    let sync = SyncStore::new(store.database().clone());
    sync.start_run(&NewRun {
        id: "run_evt_1".to_owned(),
        integration_id: "int_1".to_owned(),
        workspace_id: "ws_1".to_owned(),
        provider: "quickbooks".to_owned(),
        data_type: "invoices".to_owned(),
        direction: "out".to_owned(),
        trigger: "event".to_owned(),
        job_id: Some(job.id),
        credential_version: None,
        cursor_before: None,
    })
    .await
    .expect("run");
    let since = first.event.received_at - chrono::Duration::minutes(5);
    let runs = sync
        .runs_of_jobs("ws_1", &[job.id], since)
        .await
        .expect("runs");
    let runs: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(runs, ["run_evt_1"]);
    // Another workspace's run of the same job id, or a run before the event, is not its.
    assert!(
        sync.runs_of_jobs("ws_2", &[job.id], since)
            .await
            .expect("runs")
            .is_empty()
    );
    let after = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(
        sync.runs_of_jobs("ws_1", &[job.id], after)
            .await
            .expect("runs")
            .is_empty()
    );

    // evt_1 exists in two workspaces: one detail per workspace without a workspace.
    let both = store.event_details(None, "evt_1").await.expect("both");
    let mut workspaces: Vec<&str> = both.iter().map(|d| d.event.workspace_id.as_str()).collect();
    workspaces.sort();
    assert_eq!(workspaces, ["ws_1", "ws_2"]);
    assert!(
        store
            .event_details(Some("ws_2"), "evt_3")
            .await
            .expect("none")
            .is_empty()
    );
}

#[tokio::test]
async fn events_are_listed_by_pages_filtered_and_show_where_they_went_postgres() {
    events_are_listed_by_pages_filtered_and_show_where_they_went(Backend::Postgres).await;
}

#[tokio::test]
async fn events_are_listed_by_pages_filtered_and_show_where_they_went_sqlite() {
    events_are_listed_by_pages_filtered_and_show_where_they_went(Backend::Sqlite).await;
}

/// `hangar serve` on `db` with this Redis.
async fn serve(db: &TestDb, redis: &TestRedis) -> (crate::support::Proc, String) {
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    redis.env(&mut command);
    let serve = db.spawn_command("serve", command);
    let base = format!("http://{}", serve.address().await);
    let health = format!("{base}/healthz");
    wait_for("the server", Duration::from_secs(30), || async {
        reqwest::get(&health).await.ok().map(|_| ())
    })
    .await;
    (serve, base)
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn events_and_dead_letters_over_the_api_and_the_cli(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    publish_fixture(&store).await;
    let redis = TestRedis::new();
    let (_serve, base) = serve(&db, &redis).await;
    let token = |args: &[&str]| {
        let mut all = vec!["tokens", "create"];
        all.extend_from_slice(args);
        stdout_ok(&db.run(&all)).trim().to_owned()
    };
    let viewer = token(&["--role", "viewer"]);
    let operator = token(&["--role", "operator"]);
    let ws2_operator = token(&["--role", "operator", "--workspace", "ws_2"]);
    use reqwest::Method;

    // Events: pages with a Link header, filters, a workspace token's scope.
    let (status, headers, page) = call(
        &base,
        Method::GET,
        "/api/v1/events?workspace_id=ws_1&limit=3",
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<&str> = page
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["evt_5", "evt_4", "evt_3"]);
    let link = headers["link"].to_str().expect("link").to_owned();
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .expect("next")
        .to_owned();
    assert!(next.contains("cursor="), "{link}");
    let (_, headers, page) = call(&base, Method::GET, &next, &viewer, None).await;
    assert_eq!(page.as_array().expect("page 2").len(), 2);
    assert!(headers.get("link").is_none(), "the last page");
    let (_, _, page) = call(
        &base,
        Method::GET,
        "/api/v1/events?type=trip.created",
        &ws2_operator,
        None,
    )
    .await;
    let scoped: Vec<(&str, &str)> = page
        .as_array()
        .expect("list")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["workspace_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(scoped, [("evt_1", "ws_2")]);
    let (status, _, _) = call(
        &base,
        Method::GET,
        "/api/v1/events?workspace_id=ws_1",
        &ws2_operator,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, error) =
        call(&base, Method::GET, "/api/v1/events?bogus=1", &viewer, None).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    // One event and where it went; ambiguous without a workspace.
    let (status, _, one) = call(
        &base,
        Method::GET,
        "/api/v1/events/evt_1?workspace_id=ws_1",
        &operator,
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["webhook_deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(one["jobs_started"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"]["trip_id"], "trp_9");
    let (status, _, _) = call(&base, Method::GET, "/api/v1/events/evt_1", &operator, None).await;
    assert_eq!(status, 409);
    let (status, _, one) = call(&base, Method::GET, "/api/v1/events/evt_1", &viewer, None).await;
    assert_eq!(status, 409, "{one}");
    let (status, _, one) = call(
        &base,
        Method::GET,
        "/api/v1/events/evt_3?workspace_id=ws_1",
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert!(one["data"].is_null(), "event data is for operators: {one}");
    assert_eq!(one["webhook_deliveries"].as_array().unwrap().len(), 2);
    let (status, _, _) = call(
        &base,
        Method::GET,
        "/api/v1/events/evt_3",
        &ws2_operator,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, own) = call(
        &base,
        Method::GET,
        "/api/v1/events/evt_1",
        &ws2_operator,
        None,
    )
    .await;
    assert_eq!(
        (status, own["workspace_id"].as_str()),
        (StatusCode::OK, Some("ws_2"))
    );
    let (status, _, _) = call(
        &base,
        Method::GET,
        "/api/v1/events/evt_1?workspace_id=ws_1",
        &ws2_operator,
        None,
    )
    .await;
    assert_eq!(status, 404, "another workspace's event");

    // The CLI: the same list and event.
    let out = stdout_ok(&db.run(&[
        "events",
        "list",
        "--workspace",
        "ws_1",
        "--type",
        "invoice.paid",
        "--json",
    ]));
    let listed: Value = serde_json::from_str(&out).expect("json");
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["evt_4", "evt_2"]);
    let out = stdout_ok(&db.run(&["events", "show", "evt_3", "--workspace", "ws_1"]));
    assert!(
        out.contains("http://127.0.0.1:9/a") && out.contains("http://127.0.0.1:9/b"),
        "{out}"
    );
    let missing = db.run(&["events", "show", "evt_nope"]);
    assert_eq!(missing.status.code(), Some(1));

    // Dead letters: a broken entry, dead-lettered by the server's consumer.
    redis.xadd("{still not json");
    wait_for("a dead letter", Duration::from_secs(20), || async {
        (redis.dead_letters().len() == 1).then_some(())
    })
    .await;
    let (status, _, listed) = call(
        &base,
        Method::GET,
        "/api/v1/ingress/dead-letters",
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 1);
    let id = listed["entries"][0]["id"].as_str().expect("id").to_owned();
    let (status, _, _) = call(
        &base,
        Method::GET,
        "/api/v1/ingress/dead-letters",
        &ws2_operator,
        None,
    )
    .await;
    assert_eq!(status, 403, "dead letters span every workspace");
    let replay = json!({"ids": [id]});
    let (status, _, _) = call(
        &base,
        Method::POST,
        "/api/v1/ingress/dead-letters/replay",
        &viewer,
        Some(replay.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, report) = call(
        &base,
        Method::POST,
        "/api/v1/ingress/dead-letters/replay",
        &operator,
        Some(replay),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["replayed"], 1);
    // Still bad: back in the dead letters, with the replayed entry as its source.
    let new_source = report["entries"][0]["ingress_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("dead again", Duration::from_secs(20), || async {
        redis
            .dead_letters()
            .iter()
            .any(|d| d["source_id"] == new_source)
            .then_some(())
    })
    .await;
    let (status, _, error) = call(
        &base,
        Method::POST,
        "/api/v1/ingress/dead-letters/replay",
        &operator,
        Some(json!({"ids": ["not-an-id"]})),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-an-id")
    );

    // The CLI replays, trims and deletes the same stream.
    let with_redis = |args: &[&str]| {
        let mut command = db.command(args);
        redis.env(&mut command);
        command.output().expect("hangar runs")
    };
    let out = stdout_ok(&with_redis(&[
        "ingress", "dead", "replay", "--all", "--json",
    ]));
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["replayed"], 1, "{out}");
    wait_for("dead a third time", Duration::from_secs(20), || async {
        (redis.dead_letters().len() == 1).then_some(())
    })
    .await;
    redis.xadd("{broken 2");
    wait_for("two dead letters", Duration::from_secs(20), || async {
        (redis.dead_letters().len() == 2).then_some(())
    })
    .await;
    let out = stdout_ok(&with_redis(&[
        "ingress", "dead", "trim", "--keep", "1", "--json",
    ]));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["removed"], 1);
    let (_, _, listed) = call(
        &base,
        Method::GET,
        "/api/v1/ingress/dead-letters",
        &viewer,
        None,
    )
    .await;
    let last = listed["entries"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["entries"][0]["msg"], "{broken 2");
    let (status, _, removed) = call(
        &base,
        Method::DELETE,
        "/api/v1/ingress/dead-letters",
        &operator,
        Some(json!({"ids": [last]})),
    )
    .await;
    assert_eq!(
        (status, removed["removed"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, _, removed) = call(
        &base,
        Method::POST,
        "/api/v1/ingress/dead-letters/trim",
        &operator,
        Some(json!({"older_than": "7d"})),
    )
    .await;
    assert_eq!(
        (status, removed["removed"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    let refused = with_redis(&["ingress", "dead", "delete", "bad id"]);
    assert_eq!(refused.status.code(), Some(2));

    // The dashboard's actions: operator, a token for every workspace, the session's CSRF
    // token; only then the trim happens.
    redis.xadd("{dashboard");
    wait_for("a dead letter", Duration::from_secs(20), || async {
        (redis.dead_letters().len() == 1).then_some(())
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = |session: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.get(format!("{base}/dead-letters"))
                .header("cookie", format!("hangar_session={session}"))
                .send()
                .await
                .expect("page")
                .text()
                .await
                .expect("body")
        }
    };
    let csrf_of = |page: &str| {
        let start = page.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
        page[start..start + 64].to_owned()
    };
    let post = |session: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/dead-letters/apply"))
                .header("cookie", format!("hangar_session={session}"))
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    let viewer_session = dashboard_session(&base, &viewer).await;
    let viewer_page = page(viewer_session.clone()).await;
    assert!(viewer_page.contains("{dashboard") && !viewer_page.contains("type=\"checkbox\""));
    let trim_all = |csrf: String| {
        vec![
            ("csrf", csrf),
            ("action", "trim".to_owned()),
            ("keep", "0".to_owned()),
        ]
    };
    let refused = post(viewer_session.clone(), trim_all(csrf_of(&viewer_page))).await;
    assert_eq!(refused.status(), 403, "a viewer");
    let scoped = dashboard_session(&base, &ws2_operator).await;
    let scoped_page = page(scoped.clone()).await;
    let refused = post(scoped, trim_all(csrf_of(&scoped_page))).await;
    assert_eq!(refused.status(), 403, "a workspace token");
    let operator_session = dashboard_session(&base, &operator).await;
    let operator_page = page(operator_session.clone()).await;
    assert!(operator_page.contains("Replay selected"));
    let refused = post(operator_session.clone(), trim_all("0".repeat(64))).await;
    assert_eq!(refused.status(), 403, "a wrong CSRF token");
    let csrf = csrf_of(&operator_page);
    let nothing = post(
        operator_session.clone(),
        vec![("csrf", csrf.clone()), ("action", "delete".to_owned())],
    )
    .await;
    assert_eq!(nothing.status(), 400, "nothing selected");
    assert_eq!(redis.dead_letters().len(), 1, "nothing changed yet");
    let done = post(operator_session, trim_all(csrf)).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/dead-letters?done=trimmed&n=1");
    assert!(redis.dead_letters().is_empty());
}

#[tokio::test]
async fn events_and_dead_letters_over_the_api_and_the_cli_postgres() {
    events_and_dead_letters_over_the_api_and_the_cli(Backend::Postgres).await;
}

#[tokio::test]
async fn events_and_dead_letters_over_the_api_and_the_cli_sqlite() {
    events_and_dead_letters_over_the_api_and_the_cli(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_operator_follows_an_event_and_replays_a_dead_letter() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    publish_fixture(&store).await;
    let redis = TestRedis::new();
    let (_serve, base) = serve(&db, &redis).await;
    let token = stdout_ok(&db.run(&["tokens", "create", "--role", "operator"]))
        .trim()
        .to_owned();
    let original = redis.xadd("{not json at all");
    wait_for("a dead letter", Duration::from_secs(20), || async {
        (redis.dead_letters().len() == 1).then_some(())
    })
    .await;
    let shots = screenshots();

    let mut browser = Browser::start().await;
    browser.viewport(1280, 800, false).await;
    browser.goto(&format!("{base}/login")).await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form').submit(); true",
            json!(token)
        ))
        .await;
    browser
        .wait_until(
            "the overview",
            "location.pathname === '/'",
            Duration::from_secs(10),
        )
        .await;
    browser
        .goto(&format!("{base}/events?workspace=ws_1&type=trip.created"))
        .await;
    let listed = browser
        .eval("Array.from(document.querySelectorAll('main tbody tr td:first-child')).map(td => td.innerText).join(',')")
        .await;
    assert_eq!(listed, "evt_5,evt_3,evt_1");
    let nav = browser
        .eval("document.querySelector('nav a[href=\"/events\"]') !== null")
        .await;
    assert_eq!(nav, true, "the navigation links the events");
    browser.screenshot(&shots.join("events-1280.png")).await;
    browser
        .eval("document.querySelector('main tbody tr:last-child a').click(); true")
        .await;
    browser
        .wait_until(
            "the event page",
            "location.pathname === '/events/evt_1'",
            Duration::from_secs(10),
        )
        .await;
    let text = browser
        .eval("document.querySelector('main').innerText")
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("http://127.0.0.1:9/a")
            && text.contains("http://127.0.0.1:9/b")
            && text.contains("noop"),
        "{text}"
    );
    browser.screenshot(&shots.join("event-1280.png")).await;
    browser.viewport(390, 844, true).await;
    let overflow = browser
        .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(
        overflow, true,
        "the event page does not scroll sideways at 390"
    );
    browser.viewport(1280, 800, false).await;

    browser.goto(&format!("{base}/dead-letters")).await;
    browser
        .eval("document.querySelector('main input[type=checkbox][name=id]').click(); document.querySelector('button[value=replay]').click(); true")
        .await;
    browser
        .wait_until(
            "the confirmation",
            "document.body.innerText.includes('Replay 1 dead letter')",
            Duration::from_secs(10),
        )
        .await;
    browser
        .screenshot(&shots.join("dead-letters-confirm-1280.png"))
        .await;
    browser
        .eval("Array.from(document.querySelectorAll('button')).find(b => b.innerText === 'Confirm').click(); true")
        .await;
    browser
        .wait_until(
            "the replayed note",
            "location.search.includes('done=replayed')",
            Duration::from_secs(10),
        )
        .await;
    let note = browser
        .eval("document.querySelector('.note.done').innerText")
        .await;
    assert!(
        note.as_str().unwrap().starts_with("Replayed 1 of 1"),
        "{note}"
    );
    // Still bad: it comes back with its reason, as a new dead letter.
    wait_for("dead again", Duration::from_secs(20), || async {
        let dead = redis.dead_letters();
        (dead.len() == 1
            && dead[0]["msg"] == "{not json at all"
            && dead[0]["source_id"] != original)
            .then_some(())
    })
    .await;
    browser.goto(&format!("{base}/dead-letters")).await;
    browser
        .screenshot(&shots.join("dead-letters-1280.png"))
        .await;
}
