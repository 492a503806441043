//! Issue 15: the events a workspace published and where each went, and the dead letters'
//! replay, delete and trim, over the API and the CLI (the store's listing:
//! `events_listing.rs`; the dashboard: `events_browser.rs`; the store side of dead letters:
//! `dead_letter_actions.rs`). The fixture and the server the other two use are here.

use std::time::Duration;

use hangar_workers::client::Client;
use hangar_workers::store::{EventSubscription, Store};
use hangar_workers::webhooks::endpoint;
use hangar_workers::wire::{EventEnvelope, parse_event_body};
use reqwest::StatusCode;
use serde_json::{Value, json};

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
pub async fn publish_fixture(store: &Store) -> Vec<String> {
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

/// `hangar serve` on `db` with this Redis.
pub async fn serve(db: &TestDb, redis: &TestRedis) -> (crate::support::Proc, String) {
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
