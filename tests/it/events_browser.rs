//! Issue 15 in a browser: an operator follows an event to where it went and replays a dead
//! letter from the dashboard (the fixture and the server: `events_page.rs`).

use std::time::Duration;

use serde_json::json;

use crate::cdp::Browser;
use crate::dashboard::screenshots;
use crate::support::{Backend, TestDb, TestRedis, stdout_ok, wait_for};

use crate::events_page::{publish_fixture, serve};

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
