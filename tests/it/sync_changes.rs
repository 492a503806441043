//! Inbound changes handed to the main app: one entry per applied change on the real Redis
//! stream `{prefix}:changes`, field `msg` = CONTRACT's JSON, in order of application, and
//! the same objects from the store when Redis is not configured (what
//! `GET …/sync-runs/{id}/changes` returns). Both backends.

use hangar_integrations::sync::changes::Changes;
use serde_json::{Value, json};

use crate::support::{Backend, TestRedis};
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

/// The stream's entries' `msg` values, parsed, in order.
fn stream_messages(redis: &TestRedis, stream: &str) -> Vec<Value> {
    let entries = redis.cli(&["XRANGE", stream, "-", "+"]);
    entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            let fields = entry[1].as_array().expect("fields");
            assert_eq!(fields.len(), 2, "one field: {entry}");
            assert_eq!(fields[0], "msg");
            serde_json::from_str(fields[1].as_str().unwrap()).expect("JSON msg")
        })
        .collect()
}

async fn changes_reach_the_stream_as_the_contract_says(backend: Backend) {
    let redis = TestRedis::new();
    let stream = format!("{}:changes", redis.prefix);
    let changes = Changes::redis(&redis.url, &redis.prefix).expect("redis url");
    let w = SyncWorld::new(backend, Some(changes)).await;
    let ids = w.sim.add_payments(3, chrono::Duration::hours(1));
    w.sync_payments().await.expect("sync");
    let run = w.last_run().await;

    let messages = stream_messages(&redis, &stream);
    assert_eq!(messages.len(), 3, "{messages:?}");
    for (msg, id) in messages.iter().zip(&ids) {
        let keys: Vec<&str> = msg
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "action",
                "changed_at",
                "external_id",
                "internal_id",
                "object_type",
                "provider",
                "record",
                "sync_run_id",
                "workspace_id"
            ]
        );
        assert_eq!(msg["sync_run_id"], json!(run.id));
        assert_eq!(msg["workspace_id"], WORKSPACE);
        assert_eq!(msg["provider"], "quickbooks");
        assert_eq!(msg["object_type"], "Payment");
        assert_eq!(&msg["external_id"], id);
        assert_eq!(msg["internal_id"], Value::Null);
        assert_eq!(msg["action"], "created");
        assert_eq!(msg["record"], w.sim.object("Payment", id).unwrap());
        let changed_at = msg["changed_at"].as_str().unwrap();
        assert!(
            changed_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(changed_at).is_ok(),
            "RFC 3339 UTC: {changed_at}"
        );
    }
    // The same objects from the store (the API's answer without Redis).
    let stored: Vec<Value> = w
        .store
        .changes(&run.id, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.contract_json())
        .collect();
    assert_eq!(stored, messages);
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_changes WHERE published_at IS NULL")
            .await,
        0
    );

    // An unchanged re-read adds nothing to the stream; a change adds one entry.
    w.sync_payments().await.expect("re-read");
    assert_eq!(stream_messages(&redis, &stream).len(), 3);
    w.sim
        .edit("Payment", &ids[1], |p| p["TotalAmt"] = json!(12.5));
    w.sync_payments().await.expect("change");
    let messages = stream_messages(&redis, &stream);
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[3]["action"], "updated");
    assert_eq!(messages[3]["record"]["TotalAmt"], 12.5);
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM hangar_sync_mappings WHERE integration_id = '{INTEGRATION}'"
        ))
        .await,
        3
    );
    redis.cli(&["DEL", &stream]);
}

#[tokio::test]
async fn changes_reach_the_stream_as_the_contract_says_postgres() {
    changes_reach_the_stream_as_the_contract_says(Backend::Postgres).await;
}

#[tokio::test]
async fn changes_reach_the_stream_as_the_contract_says_sqlite() {
    changes_reach_the_stream_as_the_contract_says(Backend::Sqlite).await;
}

/// Redis unreachable when the page commits: the changes stay unpublished, and the next run
/// (Redis back) sends them first, in order.
async fn unpublished_changes_are_sent_by_the_next_run(backend: Backend) {
    let redis = TestRedis::new();
    let stream = format!("{}:changes", redis.prefix);
    // A closed port: publication fails.
    let down = Changes::redis("redis://127.0.0.1:1", &redis.prefix).unwrap();
    let w = SyncWorld::new(backend, Some(down)).await;
    w.sim.add_payments(2, chrono::Duration::hours(1));
    w.sync_payments().await.expect("sync without Redis");
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_changes WHERE published_at IS NULL")
            .await,
        2
    );
    let up = hangar_integrations::sync::handler::SyncHandler::new(
        w.store.clone(),
        w.access.clone(),
        hangar_integrations::sync::connector::Connectors::builtin(),
        &hangar_workers::targets::TargetPolicy::allow_all(),
        Changes::redis(&redis.url, &redis.prefix).unwrap(),
    )
    .unwrap();
    up.sync(
        &hangar_integrations::sync::SyncArgs {
            integration_id: INTEGRATION.into(),
            data_type: "payments".into(),
            trigger: hangar_integrations::sync::Trigger::Schedule,
            event_id: None,
        },
        None,
    )
    .await
    .expect("sync with Redis");
    let messages = stream_messages(&redis, &stream);
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (
            messages[0]["external_id"].as_str(),
            messages[1]["external_id"].as_str()
        ),
        (Some("1"), Some("2"))
    );
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_changes WHERE published_at IS NULL")
            .await,
        0
    );
    redis.cli(&["DEL", &stream]);
}

#[tokio::test]
async fn unpublished_changes_are_sent_by_the_next_run_postgres() {
    unpublished_changes_are_sent_by_the_next_run(Backend::Postgres).await;
}

#[tokio::test]
async fn unpublished_changes_are_sent_by_the_next_run_sqlite() {
    unpublished_changes_are_sent_by_the_next_run(Backend::Sqlite).await;
}
