//! The Redis ingress at its edges: an entry the database refuses (or that would break an
//! index) is dead-lettered alone while the rest of its batch commits; what the format does
//! not know, internal kinds and reserved keys are dead-lettered with their reason; priority
//! is honoured; Hangar trims its streams itself (never an unacknowledged entry) and keeps
//! dead letters for a bounded time, without the personal data they were refused for.

use std::time::Duration;

use chrono::Utc;
use hangar_workers::db::Pool;
use serde_json::json;

use crate::support::{ANY_PORT, Backend, Proc, TestDb, TestRedis, wait_for};

fn job_msg(key: &str) -> String {
    json!({"kind": "job", "job": {"kind": "noop", "workspace_id": "ws_1", "args": {},
        "idempotency_key": key}})
    .to_string()
}

fn serve(db: &TestDb, redis: &TestRedis, env: &[(&str, &str)]) -> Proc {
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    redis.env(&mut command);
    command.env("HANGAR_INGRESS_CLAIM_IDLE_MS", "500");
    for (key, value) in env {
        command.env(key, value);
    }
    db.spawn_command("serve", command)
}

async fn execute(db: &TestDb, sql: &str) {
    db.sql(sql).await;
}

async fn keys(db: &TestDb) -> Vec<String> {
    let sql = "SELECT idempotency_key FROM hangar_jobs WHERE idempotency_key IS NOT NULL \
               ORDER BY idempotency_key";
    match db.database().await.pool() {
        Pool::Postgres(pg) => sqlx::query_scalar(sql).fetch_all(pg).await,
        Pool::Sqlite(lite) => sqlx::query_scalar(sql).fetch_all(lite).await,
    }
    .expect("keys")
}

fn xlen(redis: &TestRedis, stream: &str) -> i64 {
    redis.cli(&["XLEN", stream]).as_i64().expect("XLEN")
}

#[tokio::test]
async fn a_6_kb_key_is_dead_lettered_alone_and_ingestion_goes_on() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store().await;
    let redis = TestRedis::new();
    let long = "k".repeat(6 * 1024);
    let mut batch = vec![job_msg("a"), job_msg("b"), job_msg(&long), job_msg("c")];
    batch.push(
        json!({"kind": "event", "event": {"id": long, "type": "trip.created",
            "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z", "data": {}}})
        .to_string(),
    );
    batch.push(job_msg("d"));
    redis.xadd_many(&batch);
    let _serve = serve(&db, &redis, &[]);
    wait_for("the good entries", Duration::from_secs(20), || async {
        (keys(&db).await == ["a", "b", "c", "d"] && redis.unacknowledged() == 0).then_some(())
    })
    .await;
    let dead = redis.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead[0]["error"].contains("field job.idempotency_key: 6144 bytes, over the limit of 255")
    );
    assert!(dead[1]["error"].contains("field event.id: 6144 bytes"));
    // Ingestion goes on.
    redis.xadd(&job_msg("e"));
    wait_for("a later entry", Duration::from_secs(20), || async {
        (keys(&db).await.len() == 5).then_some(())
    })
    .await;
}

/// The database refuses one entry's data (here a trigger standing for any data error of
/// classes 22, 23 and 54 or SQLite's constraint, too big and mismatch): that entry becomes a
/// dead letter, its batch neighbours commit, and nothing stalls.
async fn an_entry_the_database_refuses_does_not_hold_up_its_batch(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    match backend {
        Backend::Postgres => {
            execute(
                &db,
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.idempotency_key = 'poison' THEN \
                   RAISE EXCEPTION 'index row size exceeds maximum' USING ERRCODE = '54000'; \
                 END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER refuse_poison BEFORE INSERT ON hangar_jobs \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
            )
            .await
        }
        Backend::Sqlite => {
            execute(
                &db,
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON hangar_jobs \
                 WHEN NEW.idempotency_key = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
            )
            .await
        }
    }
    let redis = TestRedis::new();
    let msgs: Vec<String> = ["a", "poison", "b", "c"]
        .iter()
        .map(|k| job_msg(k))
        .collect();
    redis.xadd_many(&msgs);
    let _serve = serve(&db, &redis, &[]);
    wait_for("the other entries", Duration::from_secs(20), || async {
        (keys(&db).await == ["a", "b", "c"] && redis.unacknowledged() == 0).then_some(())
    })
    .await;
    let dead = redis.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["msg"], msgs[1]);
    assert!(
        dead[0]["error"].starts_with("the database refused the entry"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn an_entry_the_database_refuses_does_not_hold_up_its_batch_postgres() {
    an_entry_the_database_refuses_does_not_hold_up_its_batch(Backend::Postgres).await;
}

#[tokio::test]
async fn an_entry_the_database_refuses_does_not_hold_up_its_batch_sqlite() {
    an_entry_the_database_refuses_does_not_hold_up_its_batch(Backend::Sqlite).await;
}

#[tokio::test]
async fn unknown_fields_internal_kinds_and_reserved_keys_are_dead_letters_and_priority_holds() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let redis = TestRedis::new();
    let with = |extra: serde_json::Value| {
        let mut msg: serde_json::Value = serde_json::from_str(&job_msg("x")).unwrap();
        for (k, v) in extra.as_object().unwrap() {
            msg["job"][k] = v.clone();
        }
        msg.to_string()
    };
    let cases = [
        (
            with(json!({"bogus_field": 1})),
            r#"unknown field "bogus_field" in job"#,
        ),
        (
            with(
                json!({"kind": "alert_email", "args": {"alert_id": 1, "channel_id": "c",
                "event": "opened"}}),
            ),
            "job kind 'alert_email' is internal",
        ),
        (
            with(json!({"idempotency_key": "schedule:nightly:2026-11-22T03:00:00Z"})),
            "keys starting with 'schedule:' are reserved",
        ),
    ];
    for (msg, _) in &cases {
        redis.xadd(msg);
    }
    redis.xadd(&with(json!({"idempotency_key": "urgent", "priority": -3})));
    let _serve = serve(&db, &redis, &[]);
    wait_for("the urgent job", Duration::from_secs(20), || async {
        (keys(&db).await == ["urgent"] && redis.unacknowledged() == 0).then_some(())
    })
    .await;
    let dead = redis.dead_letters();
    assert_eq!(dead.len(), cases.len(), "{dead:?}");
    for ((msg, says), letter) in cases.iter().zip(&dead) {
        assert!(letter["error"].contains(says), "{says}: {letter:?}");
        assert_eq!(&letter["msg"], msg);
    }
    let jobs = store
        .jobs(&hangar_workers::job::JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs[0].priority, -3);
}

#[tokio::test]
async fn hangar_trims_acknowledged_entries_and_never_an_unacknowledged_one() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let redis = TestRedis::new();
    let stream = redis.stream();
    // A consumer of the group reads the first entry and dies with it pending.
    redis.cli(&["XGROUP", "CREATE", &stream, "hangar", "0", "MKSTREAM"]);
    redis.xadd(&job_msg("first"));
    redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "hangar",
        "crashed:1",
        "COUNT",
        "1",
        "STREAMS",
        &stream,
        ">",
    ]);
    for key in ["second", "third"] {
        redis.xadd(&job_msg(key));
    }
    // Reclaimed after 3 s; Hangar trims every 1.5 s meanwhile.
    let _serve = serve(
        &db,
        &redis,
        &[
            ("HANGAR_INGRESS_RETAIN_MS", "0"),
            ("HANGAR_INGRESS_CLAIM_IDLE_MS", "3000"),
        ],
    );
    wait_for("the entries after it", Duration::from_secs(20), || async {
        (keys(&db).await == ["second", "third"]).then_some(())
    })
    .await;
    assert_eq!(
        redis.pending(),
        1,
        "the crashed consumer's entry is still pending"
    );
    // The pending entry survives the trims until it is reclaimed, written and acknowledged;
    // then everything is trimmed.
    wait_for(
        "every entry stored, the stream trimmed",
        Duration::from_secs(30),
        || async {
            (keys(&db).await == ["first", "second", "third"] && xlen(&redis, &stream) == 0)
                .then_some(())
        },
    )
    .await;
    redis.xadd(&job_msg("fourth"));
    wait_for(
        "a later entry, trimmed too",
        Duration::from_secs(20),
        || async { (keys(&db).await.len() == 4 && xlen(&redis, &stream) == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn dead_letters_are_kept_seven_days_without_the_personal_data() {
    let db = TestDb::new(Backend::Sqlite).await;
    let redis = TestRedis::new();
    let dead_stream = redis.dead_stream();
    let day_ms = 86_400_000;
    let now_ms = Utc::now().timestamp_millis();
    for (age_days, source) in [(8, "old"), (6, "recent")] {
        let id = format!("{}-0", now_ms - age_days * day_ms);
        redis.cli(&[
            "XADD",
            &dead_stream,
            &id,
            "msg",
            "{}",
            "error",
            "x",
            "source_id",
            source,
        ]);
    }
    let pii = json!({"kind": "event", "event": {"id": "evt_1", "type": "trip.created",
        "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z",
        "data": {"trip_id": "trp_1", "passenger": {"email": "jane@example.com"},
            "note": "+1 415 555 0100"}}})
    .to_string();
    let source = redis.xadd(&pii);
    let _serve = serve(&db, &redis, &[]);
    let letters = wait_for(
        "the old dead letter trimmed",
        Duration::from_secs(20),
        || async {
            let letters = redis.dead_letters();
            (letters.len() == 2 && letters.iter().all(|l| l["source_id"] != "old"))
                .then_some(letters)
        },
    )
    .await;
    assert_eq!(letters[0]["source_id"], "recent");
    let refused = &letters[1];
    assert_eq!(refused["source_id"], source);
    assert!(refused["error"].contains("personal data"), "{refused:?}");
    let msg = &refused["msg"];
    assert!(
        !msg.contains("jane") && !msg.contains("555"),
        "the dead letter keeps the personal data: {msg}"
    );
    let kept: serde_json::Value = serde_json::from_str(msg).expect("JSON");
    assert_eq!(
        kept["event"]["data"],
        json!({"trip_id": "trp_1", "passenger": {"email": "<redacted>"}, "note": "<redacted>"})
    );

    // A short retention removes fresh dead letters too.
    drop(_serve);
    let _serve = serve(&db, &redis, &[("HANGAR_INGRESS_DEAD_RETAIN_MS", "1000")]);
    wait_for(
        "every dead letter trimmed",
        Duration::from_secs(20),
        || async { (xlen(&redis, &dead_stream) == 0).then_some(()) },
    )
    .await;
}
