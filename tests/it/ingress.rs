//! How jobs and events enter: the Redis stream written by a plain client (`redis-cli`), the
//! HTTP routes, and the Rust client inside the caller's own transaction. Exactly once through
//! duplicates, a consumer killed mid-batch, a database outage and a Redis restart; every
//! malformed entry in the dead-letter stream with its reason.

use std::process::{Command, Stdio};
use std::time::Duration;

use hangar_workers::db::Pool;
use serde_json::{Value, json};

use crate::support::{ANY_PORT, Backend, Proc, TestDb, TestRedis, stdout_ok, wait_for};

pub(crate) fn job_msg(key: &str) -> String {
    json!({"kind": "job", "job": {"kind": "noop", "workspace_id": "ws_1", "args": {},
        "idempotency_key": key}})
    .to_string()
}

pub(crate) fn event_msg(id: &str) -> String {
    json!({"kind": "event", "event": {"id": id, "type": "trip.created", "workspace_id": "ws_1",
        "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "trp_1"}}})
    .to_string()
}

/// `hangar serve` on this database and Redis prefix, reclaiming after `claim_idle_ms`.
fn serve(db: &TestDb, redis: &TestRedis, name: &str, extra: &[(&str, &str)]) -> Proc {
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    redis.env(&mut command);
    command.env("HANGAR_INGRESS_CLAIM_IDLE_MS", "500");
    for (key, value) in extra {
        command.env(key, value);
    }
    db.spawn_command(name, command)
}

/// A port for the test's own `redis-server`, which must come back on the same port after a
/// restart and cannot report a port it picked itself: the one place a test still asks the
/// system for a free port and hands it over.
fn redis_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub(crate) async fn scalar(db: &TestDb, sql: &str) -> i64 {
    db.query_i64(sql).await
}

pub(crate) async fn jobs_with_keys(db: &TestDb) -> i64 {
    db.query_i64("SELECT count(*) FROM hangar_jobs WHERE idempotency_key IS NOT NULL")
        .await
}

/// Waits until the group has read and acknowledged every entry: none is written again.
async fn all_acknowledged(redis: &TestRedis) {
    wait_for(
        "every entry acknowledged",
        Duration::from_secs(20),
        || async { (redis.unacknowledged() == 0).then_some(()) },
    )
    .await;
}

pub(crate) async fn events(db: &TestDb) -> i64 {
    db.query_i64("SELECT count(*) FROM hangar_events").await
}

async fn same_entries_twice_are_stored_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    let redis = TestRedis::new();
    let _serve = serve(&db, &redis, "serve", &[]);
    for _ in 0..2 {
        redis.xadd(&job_msg("order-1"));
        redis.xadd(&job_msg("order-2"));
        redis.xadd(&event_msg("evt_1"));
    }
    wait_for("2 jobs and 1 event", Duration::from_secs(20), || async {
        (jobs_with_keys(&db).await == 2 && events(&db).await == 1 && redis.pending() == 0)
            .then_some(())
    })
    .await;
    // Nothing more arrives later, and the jobs ran.
    all_acknowledged(&redis).await;
    assert_eq!(jobs_with_keys(&db).await, 2);
    assert_eq!(events(&db).await, 1);
    wait_for("the jobs to complete", Duration::from_secs(20), || async {
        (scalar(
            &db,
            "SELECT count(*) FROM hangar_jobs WHERE state = 'completed'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    let stored: String = match db.database().await.pool() {
        Pool::Postgres(pg) => sqlx::query_scalar(
            "SELECT workspace_id || ' ' || type || ' ' || (data->>'trip_id') FROM hangar_events",
        )
        .fetch_one(pg)
        .await
        .expect("event row"),
        Pool::Sqlite(lite) => sqlx::query_scalar(
            "SELECT workspace_id || ' ' || type || ' ' || (data->>'trip_id') FROM hangar_events",
        )
        .fetch_one(lite)
        .await
        .expect("event row"),
    };
    assert_eq!(stored, "ws_1 trip.created trp_1");
    assert!(redis.dead_letters().is_empty());
}

#[tokio::test]
async fn redis_entries_sent_twice_become_one_job_and_one_event_postgres() {
    same_entries_twice_are_stored_once(Backend::Postgres).await;
}

#[tokio::test]
async fn redis_entries_sent_twice_become_one_job_and_one_event_sqlite() {
    same_entries_twice_are_stored_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_malformed_entry_lands_in_the_dead_letter_stream_with_its_reason() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await;
    let redis = TestRedis::new();
    let event = |data: Value, ty: &str| {
        json!({"kind": "event", "event": {"id": "evt_9", "type": ty, "workspace_id": "ws_1",
            "timestamp": "2026-11-22T10:00:00Z", "data": data}})
        .to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("not json".to_owned(), "not JSON"),
        (
            json!({"kind": "invoice"}).to_string(),
            "unknown kind 'invoice'",
        ),
        (
            event(json!({}), "trip.teleported"),
            "unknown event type 'trip.teleported'",
        ),
        (
            json!({"kind": "event", "event": {"id": "evt_2", "type": "trip.created",
                "timestamp": "2026-11-22T10:00:00Z", "data": {}}})
            .to_string(),
            "missing field event.workspace_id",
        ),
        (
            json!({"kind": "job", "job": {"kind": "noop", "workspace_id": "ws_1", "args": {}}})
                .to_string(),
            "missing field job.idempotency_key",
        ),
        (
            event(
                json!({"crew": {"email": "pilot@example.com"}}),
                "trip.created",
            ),
            "personal data",
        ),
        (
            event(json!({"contact": "+1 415 555 0100"}), "trip.created"),
            "looks like a phone number",
        ),
        (
            event(json!({"note_id": "x".repeat(300 * 1024)}), "trip.created"),
            "over the limit of 262144",
        ),
        (
            event(json!({"time": "tomorrow"}), "trip.created")
                .replace("2026-11-22T10:00:00Z", "yesterday"),
            "not an RFC 3339 time",
        ),
        (
            json!({"kind": "job", "job": {"kind": "teleport", "workspace_id": "ws_1",
                "args": {}, "idempotency_key": "k"}})
            .to_string(),
            "unknown job kind 'teleport'",
        ),
        (
            json!({"kind": "job", "job": {"kind": "http", "workspace_id": "ws_1",
                "args": {"method": "POST"}, "idempotency_key": "k"}})
            .to_string(),
            "field job.args",
        ),
        (
            event(json!({"note_id": "a\u{0}b"}), "trip.created"),
            "NUL character",
        ),
    ];
    let mut sources = Vec::new();
    for (msg, _) in &cases {
        sources.push(redis.xadd(msg));
    }
    // An entry without the msg field, and one good entry after all of them.
    let no_msg = redis
        .cli(&["XADD", &redis.stream(), "*", "message", "hello"])
        .as_str()
        .expect("id")
        .to_owned();
    redis.xadd(&job_msg("good-1"));

    let _serve = serve(&db, &redis, "serve", &[]);
    wait_for("the good job", Duration::from_secs(20), || async {
        (jobs_with_keys(&db).await == 1 && redis.pending() == 0).then_some(())
    })
    .await;
    let dead = redis.dead_letters();
    assert_eq!(
        dead.len(),
        cases.len() + 1,
        "one dead letter per bad entry: {dead:?}"
    );
    for ((msg, reason), source) in cases.iter().zip(&sources) {
        let letter = dead
            .iter()
            .find(|d| d.get("source_id") == Some(source))
            .unwrap_or_else(|| panic!("no dead letter for {source} ({reason})"));
        assert!(
            letter["error"].contains(reason),
            "{source}: error {:?} should say {reason:?}",
            letter["error"]
        );
        if reason.contains("personal data") || reason.contains("phone") {
            assert!(
                letter["msg"].contains("<redacted>") && !letter["msg"].contains("555"),
                "personal data is not kept: {}",
                letter["msg"]
            );
        } else {
            assert_eq!(&letter["msg"], msg, "the original msg is kept");
        }
    }
    let letter = dead
        .iter()
        .find(|d| d.get("source_id") == Some(&no_msg))
        .expect("dead letter of the entry without msg");
    assert!(letter["error"].contains("no field msg"), "{letter:?}");
    assert_eq!(
        letter["fields"], r#"{"message":"hello"}"#,
        "its fields are kept"
    );

    // The operator's view of the same.
    let mut command = db.command(&["ingress", "dead", "--json", "--limit", "100"]);
    redis.env(&mut command);
    let listed: Value =
        serde_json::from_str(&stdout_ok(&command.output().expect("runs"))).expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), cases.len() + 1);
    assert_eq!(listed[0]["source_id"], no_msg.as_str(), "newest first");
    assert!(listed.iter().any(|l| {
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown job kind 'teleport'"))
    }));
}

#[tokio::test]
async fn entries_of_a_consumer_that_died_before_acknowledging_are_reclaimed() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await;
    let redis = TestRedis::new();
    // A consumer of the group reads three entries and dies without acknowledging them.
    redis.cli(&[
        "XGROUP",
        "CREATE",
        &redis.stream(),
        "hangar",
        "0",
        "MKSTREAM",
    ]);
    for key in ["a", "b", "c"] {
        redis.xadd(&job_msg(key));
    }
    let read = redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "hangar",
        "crashed-host:1",
        "COUNT",
        "10",
        "STREAMS",
        &redis.stream(),
        ">",
    ]);
    assert_eq!(
        read[redis.stream().as_str()].as_array().map(Vec::len),
        Some(3),
        "{read}"
    );
    assert_eq!(redis.pending(), 3);

    let _serve = serve(&db, &redis, "serve", &[]);
    wait_for(
        "the reclaimed entries as jobs",
        Duration::from_secs(20),
        || async { (jobs_with_keys(&db).await == 3 && redis.pending() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_loses_and_duplicates_nothing() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await;
    let redis = TestRedis::new();
    let total = 4000;
    let msgs: Vec<String> = (0..total).map(|i| job_msg(&format!("k{i}"))).collect();
    redis.xadd_many(&msgs);
    // Small batches, so the kill lands between reads, commits and acknowledgements.
    let mut first = serve(&db, &redis, "first", &[("HANGAR_INGRESS_BATCH", "10")]);
    wait_for(
        "the first consumer to be mid-stream",
        Duration::from_secs(30),
        || async { (jobs_with_keys(&db).await >= 200).then_some(()) },
    )
    .await;
    first.kill9();
    let at_kill = jobs_with_keys(&db).await;
    assert!(
        at_kill < total,
        "the consumer finished before the kill; the test proves nothing"
    );

    let _second = serve(&db, &redis, "second", &[]);
    wait_for("every entry as a job", Duration::from_secs(60), || async {
        (jobs_with_keys(&db).await == total && redis.pending() == 0).then_some(())
    })
    .await;
    let distinct = scalar(
        &db,
        "SELECT count(DISTINCT idempotency_key) FROM hangar_jobs WHERE idempotency_key IS NOT NULL",
    )
    .await;
    assert_eq!(distinct, total);
    all_acknowledged(&redis).await;
    assert_eq!(jobs_with_keys(&db).await, total, "no job appears twice");
    assert!(redis.dead_letters().is_empty());
}

fn psql(sql: &str) {
    let admin = std::env::var("HANGAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let status = Command::new("psql")
        .args([admin.as_str(), "-qAtc", sql])
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(status.success(), "psql: {sql}");
}

#[tokio::test]
async fn while_the_database_is_down_nothing_is_acknowledged_and_nothing_is_lost() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let redis = TestRedis::new();
    let name = db.url.rsplit('/').next().expect("db name").to_owned();
    let _serve = serve(&db, &redis, "serve", &[]);
    redis.xadd(&job_msg("before"));
    wait_for("the first job", Duration::from_secs(20), || async {
        (jobs_with_keys(&db).await == 1).then_some(())
    })
    .await;
    store.close().await;

    // The database refuses every connection.
    psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    for i in 0..5 {
        redis.xadd(&job_msg(&format!("during-{i}")));
    }
    wait_for(
        "the consumer to read entries it cannot commit",
        Duration::from_secs(20),
        || async { (redis.pending() >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        redis.unacknowledged(),
        5,
        "nothing acknowledged while the database is down"
    );
    assert!(
        redis.dead_letters().is_empty(),
        "an outage is not a malformed entry"
    );

    psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    db.store().await;
    wait_for(
        "the jobs written during the outage",
        Duration::from_secs(30),
        || async { (jobs_with_keys(&db).await == 6 && redis.pending() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_consumer_reconnects_after_a_redis_restart() {
    let port = redis_port();
    let start_redis = || {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server")
    };
    let mut server = start_redis();
    let redis = TestRedis::at(&format!("redis://127.0.0.1:{port}"));
    wait_for("the private Redis", Duration::from_secs(10), || async {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .ok()
            .filter(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
            .map(|_| ())
    })
    .await;
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let serve = serve(&db, &redis, "serve", &[]);
    redis.xadd(&job_msg("before"));
    wait_for("the first job", Duration::from_secs(20), || async {
        (jobs_with_keys(&db).await == 1).then_some(())
    })
    .await;

    let _ = server.kill();
    let _ = server.wait();
    wait_for(
        "the consumer to lose Redis",
        Duration::from_secs(20),
        || async {
            serve
                .log()
                .contains("ingress: Redis unavailable")
                .then_some(())
        },
    )
    .await;
    let mut server = start_redis();
    // The new server is empty: entries written now reach the reconnected consumer.
    let id = wait_for("the restarted Redis", Duration::from_secs(10), || async {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &port.to_string(),
                "XADD",
                &redis.stream(),
                "*",
                "msg",
                &job_msg("after"),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        text.contains('-').then_some(text)
    })
    .await;
    wait_for(
        "the job sent after the restart",
        Duration::from_secs(30),
        || async { (jobs_with_keys(&db).await == 2).then_some(()) },
    )
    .await;
    assert!(
        serve.log().contains("Redis unavailable"),
        "the outage is logged: {}",
        serve.log()
    );
    assert!(!id.is_empty());
    let _ = server.kill();
    let _ = server.wait();
}
