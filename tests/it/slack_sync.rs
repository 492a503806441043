//! The Slack connector against its simulator, on both backends: a burst of events to one
//! channel goes out one message a second without drawing a single 429 (each event's run
//! snoozing about once), by bot token and by incoming webhook; event data cannot mention
//! `@channel`; Slack's 429 is honoured (no call during its `Retry-After`); a revoked token
//! fails as `auth` after one refused refresh; an archived channel disables the integration.

use std::time::Duration;

use hangar_integrations::provider::Provider;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::mail::TrustRoots;
use serde_json::json;

use crate::notify_support::NotifyWorld;
use crate::slack_sim::{BOT_TOKEN, CHANNEL, HOOK_CHANNEL, MIN_GAP_MS, SlackSim};
use crate::support::Backend;

async fn bot_world(backend: Backend, sim: &SlackSim) -> NotifyWorld {
    NotifyWorld::new(
        backend,
        Provider::Slack,
        &["crew", "aircraft"],
        json!({"channel": CHANNEL, "base_url": sim.base}),
        BOT_TOKEN,
        TrustRoots::default(),
    )
    .await
}

async fn burst_is_paced(backend: Backend, webhook: bool) {
    let sim = SlackSim::start().await;
    let w = if webhook {
        NotifyWorld::new(
            backend,
            Provider::Slack,
            &["crew"],
            json!({}),
            &sim.hook_url(),
            TrustRoots::default(),
        )
        .await
    } else {
        bot_world(backend, &sim).await
    };
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            w.event(
                &format!("evt_training_{n}"),
                "crew.training_due",
                json!({"crew_member_id": format!("crw_{n}"), "training_id": "trn_recurrent"}),
            )
            .await,
        );
    }
    // The six jobs run at once, as a pool with free slots would run them. Each snoozes until
    // its own turn (about once, a few times on a loaded machine), not once a second until
    // the burst is through (which would be 0, 1, … 5 times).
    let runs = ids.iter().map(|id| w.sync_snoozing("crew", id));
    let ends = futures_util::future::join_all(runs).await;
    for (end, snoozes) in &ends {
        assert!(end.is_ok(), "{end:?}");
        assert!(*snoozes <= 3, "each run waits for its own turn: {ends:?}");
    }
    let posted = sim.messages();
    assert_eq!(posted.len(), 6, "{posted:?}");
    assert_eq!(
        sim.calls("429"),
        0,
        "the budget kept clear of Slack's limit"
    );
    let channel = if webhook { HOOK_CHANNEL } else { CHANNEL };
    for (n, message) in posted.iter().enumerate() {
        assert_eq!(message.channel, channel);
        assert!(
            message
                .text
                .starts_with("*Training due* (crew.training_due)"),
            "{}",
            message.text
        );
        assert!(
            message.text.contains(&format!("crew_member_id: `crw_{n}`")),
            "in order: {}",
            message.text
        );
    }
    for pair in posted.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).as_millis();
        assert!(gap >= MIN_GAP_MS, "{gap} ms between two messages");
    }
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.direction.as_str()),
        ("succeeded", "out"),
        "{run:?}"
    );
}

#[tokio::test]
async fn slack_bot_burst_is_paced_postgres() {
    burst_is_paced(Backend::Postgres, false).await;
}

#[tokio::test]
async fn slack_bot_burst_is_paced_sqlite() {
    burst_is_paced(Backend::Sqlite, false).await;
}

#[tokio::test]
async fn slack_webhook_burst_is_paced_postgres() {
    burst_is_paced(Backend::Postgres, true).await;
}

#[tokio::test]
async fn slack_webhook_burst_is_paced_sqlite() {
    burst_is_paced(Backend::Sqlite, true).await;
}

async fn throttle_and_failures(backend: Backend) {
    let sim = SlackSim::start().await;
    let w = bot_world(backend, &sim).await;

    // Event data cannot ping the channel.
    w.event(
        "evt_1",
        "aircraft.discrepancy_reported",
        json!({"aircraft_id": "acf_1", "note": "<!channel> look"}),
    )
    .await;
    // Slack throttles once with Retry-After: 2: the run ends rate-limited with that wait and
    // the channel is paused: a run during the pause calls nobody.
    sim.throttle(1, "2");
    let failure = w.sync("aircraft", "evt_1").await.expect_err("throttled");
    assert_eq!(
        (failure.class, failure.retry_after.as_deref()),
        (ErrorClass::RateLimit, Some("2"))
    );
    assert_eq!(w.last_run().await.status, "rate_limited");
    let failure = w.sync("aircraft", "evt_1").await.expect_err("still paused");
    assert_eq!(failure.class, ErrorClass::RateLimit);
    assert_eq!(sim.calls("429"), 1, "no call during the pause");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    w.sync("aircraft", "evt_1")
        .await
        .expect("sent after the pause");
    let posted = sim.messages();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].text.contains("&lt;!channel&gt; look"),
        "{}",
        posted[0].text
    );
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.records.created),
        ("succeeded", 1),
        "{run:?}"
    );

    // The token is revoked: `token_revoked` inside a 200 is an auth failure, after the one
    // refresh an API key gets (refused: the integration needs re-authorisation).
    w.event(
        "evt_2",
        "aircraft.inspection_due",
        json!({"aircraft_id": "acf_1"}),
    )
    .await;
    sim.revoke();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let failure = w.sync("aircraft", "evt_2").await.expect_err("revoked");
    assert_eq!(failure.class, ErrorClass::Auth, "{}", failure.message);
    assert_eq!(*w.access.refreshes.lock().unwrap(), 1);
    assert_eq!(sim.calls("token_revoked"), 1);
    assert!(!failure.message.contains(BOT_TOKEN));
    assert!(w.access.disabled.lock().unwrap().is_empty());
}

#[tokio::test]
async fn slack_throttle_and_auth_postgres() {
    throttle_and_failures(Backend::Postgres).await;
}

#[tokio::test]
async fn slack_throttle_and_auth_sqlite() {
    throttle_and_failures(Backend::Sqlite).await;
}

async fn archived_channel_disables(backend: Backend) {
    let sim = SlackSim::start().await;
    let w = bot_world(backend, &sim).await;
    sim.archive(CHANNEL);
    w.event(
        "evt_a",
        "crew.currency_expired",
        json!({"crew_member_id": "crw_9"}),
    )
    .await;
    let failure = w.sync("crew", "evt_a").await.expect_err("archived");
    assert_eq!(
        (failure.class, failure.http_status),
        (ErrorClass::Client, Some(410)),
        "{}",
        failure.message
    );
    assert_eq!(sim.calls("is_archived"), 1);
    let disabled = w.access.disabled.lock().unwrap().clone();
    assert_eq!(disabled.len(), 1, "the integration's channel is disabled");
    assert!(disabled[0].contains("is_archived"), "{disabled:?}");
    assert_eq!(w.last_run().await.status, "failed");
}

#[tokio::test]
async fn slack_archived_channel_disables_postgres() {
    archived_channel_disables(Backend::Postgres).await;
}

#[tokio::test]
async fn slack_archived_channel_disables_sqlite() {
    archived_channel_disables(Backend::Sqlite).await;
}
