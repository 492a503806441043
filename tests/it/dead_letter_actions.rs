//! Issue 15: the dead letters' replay, delete and trim in the store of the Redis ingress
//! (Redis with this test's own prefix, the consumer driven pass by pass): a replayed entry is
//! stored once its cause is fixed and comes back dead when it is still bad; entries without
//! `msg` or redacted stay; delete and trim remove what they say. Over the API, the CLI and the
//! dashboard: `events_page.rs`.
use std::sync::Arc;
use std::time::Duration;

use hangar::config::RedisConfig;
use hangar::redis_ingress::dead_letter_actions::{self, Selection, Trim};
use hangar::redis_ingress::{Consumer, ConsumerConfig};
use hangar_workers::client::Client;
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config;
use hangar_workers::routes::Routes;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestDb, TestRedis};

fn redis_config(redis: &TestRedis) -> RedisConfig {
    RedisConfig {
        url: redis.url.clone(),
        prefix: redis.prefix.clone(),
        batch: 500,
        claim_idle: Duration::from_secs(30),
        retain: Duration::from_secs(3600),
        dead_retain: Duration::from_secs(7 * 24 * 3600),
    }
}

/// A consumer whose pools are `pools` (TOML), or the built-in ones.
async fn consumer(db: &TestDb, redis: &TestRedis, pools: Option<&str>) -> Consumer {
    let store = db.store().await;
    let registry = Arc::new(Registry::builtin());
    let specs = match pools {
        Some(toml) => pool_config::parse("reports.toml", toml).expect("pools"),
        None => pool_config::builtin(),
    };
    let routes = Arc::new(Routes::new(&specs, &registry));
    let mut config = ConsumerConfig::new(redis_config(redis), "test:1".to_owned());
    config.max_block = Duration::from_millis(50);
    Consumer::new(store, Arc::new(Client::new(registry, routes)), config).expect("consumer")
}

fn reports_job(key: &str) -> String {
    json!({"kind": "job", "job": {"kind": "noop", "workspace_id": "ws_1", "args": {},
        "idempotency_key": key, "queue": "reports"}})
    .to_string()
}

/// The built-in pool and a `reports` pool: the fix the refused entries waited for.
const WITH_REPORTS: &str = r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop"]

[[pool]]
name = "reports"
queue = "reports"
kinds = ["http"]
"#;

async fn a_replayed_dead_letter_is_stored_once_fixed_and_dead_again_when_still_bad(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let config = redis_config(&redis);
    let stop = CancellationToken::new();
    // Before the `reports` pool is deployed: its job is refused, as is a broken entry.
    {
        let mut before = consumer(&db, &redis, None).await;
        redis.xadd(&reports_job("report-1"));
        redis.xadd("{not json");
        let counts = before.run_once(&stop).await.expect("pass");
        assert_eq!(counts.dead_lettered, 2);
    }
    let dead = redis.dead_letters();
    assert!(dead[0]["error"].contains("reports"), "{:?}", dead[0]);
    let (letters, total) = hangar::redis_ingress::read_dead_letters(&config, 10)
        .await
        .expect("read");
    assert_eq!(total, 2);
    let all_ids: Vec<String> = letters.iter().rev().map(|l| l.id.clone()).collect();

    // The pool is deployed; both entries are replayed.
    let mut after = consumer(&db, &redis, Some(WITH_REPORTS)).await;
    let report = dead_letter_actions::replay(&config, &Selection::Ids(all_ids.clone()))
        .await
        .expect("replay");
    assert_eq!(report.replayed, 2);
    assert!(redis.dead_letters().is_empty(), "removed once re-added");
    let counts = after.run_once(&stop).await.expect("pass");
    assert_eq!((counts.jobs, counts.dead_lettered), (1, 1));
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM hangar_jobs WHERE queue = 'reports' \
             AND idempotency_key = 'report-1'"
        )
        .await,
        1
    );
    // The still-bad one is back, with its reason and the replayed entry as its source.
    let dead = redis.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["msg"], "{not json");
    assert!(dead[0]["error"].contains("JSON"), "{:?}", dead[0]);
    let replayed_as = report.entries[1].ingress_id.clone().expect("new id");
    assert_eq!(dead[0]["source_id"], replayed_as);

    // Replaying an id twice: the second time it is gone, nothing is added.
    let again = dead_letter_actions::replay(&config, &Selection::Ids(vec![all_ids[0].clone()]))
        .await
        .expect("replay again");
    assert_eq!(
        (again.replayed, again.entries[0].outcome.as_str()),
        (0, "missing")
    );
    // `all`, then the job already stored stays one job.
    let report = dead_letter_actions::replay(&config, &Selection::All)
        .await
        .expect("replay all");
    assert_eq!(report.replayed, 1);
    after.run_once(&stop).await.expect("pass");
    assert_eq!(redis.dead_letters().len(), 1, "dead again, once");
}

#[tokio::test]
async fn a_replayed_dead_letter_is_stored_once_fixed_and_dead_again_when_still_bad_postgres() {
    a_replayed_dead_letter_is_stored_once_fixed_and_dead_again_when_still_bad(Backend::Postgres)
        .await;
}

#[tokio::test]
async fn a_replayed_dead_letter_is_stored_once_fixed_and_dead_again_when_still_bad_sqlite() {
    a_replayed_dead_letter_is_stored_once_fixed_and_dead_again_when_still_bad(Backend::Sqlite)
        .await;
}

/// `XADD <dead> <id> …fields`: a dead letter written as the consumer writes them.
fn dead(redis: &TestRedis, id: &str, fields: &[(&str, &str)]) {
    let stream = redis.dead_stream();
    let mut args = vec!["XADD", stream.as_str(), id];
    for (k, v) in fields {
        args.push(k);
        args.push(v);
    }
    redis.cli(&args);
}

#[tokio::test]
async fn dead_letters_without_msg_or_redacted_stay_and_delete_and_trim_remove_what_they_say() {
    let redis = TestRedis::new();
    let config = redis_config(&redis);
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 10 * 24 * 3600 * 1000;
    let (old_a, old_b) = (format!("{old}-0"), format!("{old}-1"));
    let (new_a, new_b, new_c) = (format!("{now}-0"), format!("{now}-1"), format!("{now}-2"));
    dead(
        &redis,
        &old_a,
        &[("msg", "{}"), ("error", "e"), ("source_id", "1-0")],
    );
    dead(
        &redis,
        &old_b,
        &[("msg", "{}"), ("error", "e"), ("source_id", "1-1")],
    );
    dead(
        &redis,
        &new_a,
        &[
            ("msg", ""),
            ("error", "no msg"),
            ("source_id", "2-0"),
            ("fields", "{\"x\":\"1\"}"),
        ],
    );
    let redacted = r#"{"kind":"event","event":{"data":{"email":"<redacted>"}}}"#;
    dead(
        &redis,
        &new_b,
        &[
            ("msg", redacted),
            ("error", "personal data"),
            ("source_id", "2-1"),
        ],
    );
    dead(
        &redis,
        &new_c,
        &[("msg", "{}"), ("error", "e"), ("source_id", "2-2")],
    );

    let report =
        dead_letter_actions::replay(&config, &Selection::Ids(vec![new_a.clone(), new_b.clone()]))
            .await
            .expect("replay");
    let outcomes: Vec<&str> = report.entries.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!((report.replayed, outcomes), (0, vec!["no_msg", "redacted"]));
    assert_eq!(redis.dead_letters().len(), 5, "neither was removed");
    assert_eq!(
        redis.cli(&["XLEN", &redis.stream()]).as_i64(),
        Some(0),
        "nothing re-added"
    );
    assert!(
        dead_letter_actions::replay(&config, &Selection::Ids(vec!["nope".to_owned()]))
            .await
            .is_err()
    );

    // Trim older than 7 days: the two old ones.
    let removed =
        dead_letter_actions::trim(&config, Trim::OlderThan(Duration::from_secs(7 * 86_400)))
            .await
            .expect("trim");
    assert_eq!(removed, 2);
    // Delete one by id.
    assert_eq!(
        dead_letter_actions::delete(&config, std::slice::from_ref(&new_a))
            .await
            .expect("delete"),
        1
    );
    // Keep the newest 1.
    assert_eq!(
        dead_letter_actions::trim(&config, Trim::KeepNewest(1))
            .await
            .expect("keep"),
        1
    );
    let left = redis.dead_letters();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["source_id"], "2-2");
}
