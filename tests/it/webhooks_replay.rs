//! Replay in the background, on both backends: `POST …/replay` answers 202 with the count and
//! the replay started, its job sends the deliveries again while `GET …/replays` shows the
//! progress (created of total, then when it finished), the receiver gets each one once more;
//! and a replay's batches, each with its progress, resume where they stopped.

use chrono::{Duration, Utc};
use hangar_workers::routes::Route;
use hangar_workers::store::NewReplay;
use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb};
use crate::webhooks_support::{Hangar, event, token, until};

async fn replays(hangar: &Hangar, owner: &str, path: &str) -> Vec<Value> {
    let (status, list) = hangar
        .call("GET", &format!("{path}/replays"), owner, None)
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

async fn replay_runs_in_the_background(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let viewer = token(&db, "viewer");
    let receiver = Receiver::start().await;
    let created = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/replayed"), "event_types": ["trip.created"]}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/workspaces/ws_1/webhook-endpoints/{id}");
    for n in 0..12 {
        hangar
            .publish(
                &owner,
                &event(&format!("evt_rp{n}"), "trip.created", "ws_1"),
            )
            .await;
    }
    until("the first deliveries", || async {
        receiver.hits_on("/replayed").len() == 12
    })
    .await;
    assert!(replays(&hangar, &owner, &path).await.is_empty());
    let since = (Utc::now() - Duration::hours(1)).to_rfc3339();

    // A dry run counts and starts nothing.
    let (status, dry) = hangar
        .call(
            "POST",
            &format!("{path}/replay"),
            &owner,
            Some(json!({"since": since, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 202, "{dry}");
    assert_eq!((&dry["count"], &dry["replay"]), (&json!(12), &Value::Null));
    assert!(replays(&hangar, &owner, &path).await.is_empty());

    // The replay answers at once with the count and the replay; its job sends them.
    let (status, started) = hangar
        .call(
            "POST",
            &format!("{path}/replay"),
            &owner,
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["count"], 12);
    let replay = &started["replay"];
    assert!(
        replay["id"].as_str().is_some_and(|r| r.starts_with("rpl_")),
        "{started}"
    );
    assert_eq!(
        (&replay["total"], &replay["endpoint_id"]),
        (&json!(12), &json!(id))
    );
    until("the replay's deliveries", || async {
        receiver.hits_on("/replayed").len() == 24
    })
    .await;
    until("the replay shown finished", || async {
        let list = replays(&hangar, &owner, &path).await;
        list.len() == 1 && list[0]["created"] == 12 && !list[0]["finished_at"].is_null()
    })
    .await;
    let list = replays(&hangar, &owner, &path).await;
    assert_eq!(list[0]["id"], replay["id"]);
    assert_eq!(list[0]["total"], 12);
    // Each delivery went once more, with its own id again.
    let mut ids: Vec<String> = receiver
        .hits_on("/replayed")
        .iter()
        .map(|h| h.headers["x-planeconnection-delivery-id"].clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "12 deliveries, each sent twice");

    // A viewer may not read the replays.
    let (status, _) = hangar
        .call("GET", &format!("{path}/replays"), &viewer, None)
        .await;
    assert_eq!(status, 403);

    // The batches: a replay whose job no pool runs, advanced by hand five at a time; each
    // batch records its progress, the short one finishes it, and more does nothing.
    let store = db.store().await;
    store
        .start_webhook_replay(
            &NewReplay {
                id: "rpl_by_hand",
                endpoint_id: &id,
                workspace_id: "ws_1",
                since: Utc::now() - Duration::hours(1),
                until: Utc::now(),
                failed_only: false,
                total: 12,
            },
            &Route {
                queue: "nobody_claims_this".to_owned(),
                max_attempts: 1,
                internal: true,
            },
        )
        .await
        .expect("start");
    let route = Route {
        queue: "nobody_claims_this".to_owned(),
        max_attempts: 1,
        internal: true,
    };
    let mut progress = Vec::new();
    for _ in 0..4 {
        let r = store
            .advance_webhook_replay("rpl_by_hand", 5, &route)
            .await
            .expect("advance")
            .expect("replay");
        progress.push((r.created, r.finished_at.is_some()));
    }
    assert_eq!(
        progress,
        vec![(5, false), (10, false), (12, true), (12, true)]
    );
    let queued = db
        .query_i64(
            "SELECT count(*) FROM hangar_jobs WHERE queue = 'nobody_claims_this' \
             AND kind = 'webhook_delivery'",
        )
        .await;
    assert_eq!(queued, 12, "each delivery once, whatever the batches");
}

#[tokio::test]
async fn webhooks_replay_runs_in_the_background_postgres() {
    replay_runs_in_the_background(Backend::Postgres).await;
}

#[tokio::test]
async fn webhooks_replay_runs_in_the_background_sqlite() {
    replay_runs_in_the_background(Backend::Sqlite).await;
}
