//! The Redis ingress consumer driven pass by pass (`Consumer::run_once`, no process): what a
//! pass reads, writes, refuses, acknowledges, takes over and trims, on a real Redis and a
//! real database of either backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar::config::RedisConfig;
use hangar::redis_ingress::{Consumer, ConsumerConfig, PassCounts};
use hangar_workers::client::Client;
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config;
use hangar_workers::routes::Routes;
use tokio_util::sync::CancellationToken;

use crate::ingress::{event_msg, events, job_msg, jobs_with_keys};
use crate::support::{Backend, TestDb, TestRedis};

/// A consumer on this database and Redis prefix (reads wait at most 50 ms), tuned by `tune`.
async fn consumer(
    db: &TestDb,
    redis: &TestRedis,
    tune: impl FnOnce(&mut ConsumerConfig),
) -> Consumer {
    let store = db.store().await;
    let registry = Arc::new(Registry::builtin());
    let routes = Arc::new(Routes::new(&pool_config::builtin(), &registry));
    let redis_config = RedisConfig {
        url: redis.url.clone(),
        prefix: redis.prefix.clone(),
        batch: 500,
        claim_idle: Duration::from_secs(30),
        retain: Duration::from_secs(3600),
        dead_retain: Duration::from_secs(7 * 24 * 3600),
    };
    let mut config = ConsumerConfig::new(redis_config, "test:1".to_owned());
    config.max_block = Duration::from_millis(50);
    tune(&mut config);
    Consumer::new(store, Arc::new(Client::new(registry, routes)), config).expect("consumer")
}

fn stream_len(redis: &TestRedis) -> i64 {
    redis
        .cli(&["XLEN", &redis.stream()])
        .as_i64()
        .expect("XLEN")
}

async fn one_pass_writes_refuses_and_acknowledges_a_batch(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let mut consumer = consumer(&db, &redis, |_| {}).await;
    redis.xadd(&job_msg("order-1"));
    redis.xadd(&job_msg("order-1"));
    redis.xadd(&event_msg("evt_1"));
    redis.xadd("{not json");
    let stop = CancellationToken::new();

    let counts = consumer.run_once(&stop).await.expect("pass");
    assert_eq!(
        counts,
        PassCounts {
            read: 4,
            jobs: 2,
            events: 1,
            dead_lettered: 1,
            acked: 4,
            ..PassCounts::default()
        }
    );
    // Both copies of the job were written, as one row; nothing is left unacknowledged.
    assert_eq!(jobs_with_keys(&db).await, 1);
    assert_eq!(events(&db).await, 1);
    assert_eq!(redis.unacknowledged(), 0);
    let dead = redis.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["msg"], "{not json");

    // Nothing new: a pass waits for entries at most max_block and does nothing.
    let idle = consumer.run_once(&stop).await.expect("idle pass");
    assert_eq!(idle, PassCounts::default());
    assert_eq!(jobs_with_keys(&db).await, 1);
}

#[tokio::test]
async fn one_pass_writes_refuses_and_acknowledges_a_batch_postgres() {
    one_pass_writes_refuses_and_acknowledges_a_batch(Backend::Postgres).await;
}

#[tokio::test]
async fn one_pass_writes_refuses_and_acknowledges_a_batch_sqlite() {
    one_pass_writes_refuses_and_acknowledges_a_batch(Backend::Sqlite).await;
}

async fn the_batch_read_ahead_is_written_by_the_next_pass_or_at_shutdown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let mut consumer = consumer(&db, &redis, |c| c.redis.batch = 2).await;
    for key in ["k1", "k2", "k3"] {
        redis.xadd(&job_msg(key));
    }
    let stop = CancellationToken::new();

    // The first batch (2 entries) is written while the next one (1 entry) is read.
    let first = consumer.run_once(&stop).await.expect("pass");
    assert_eq!((first.read, first.jobs, first.acked), (3, 2, 2));
    assert_eq!(jobs_with_keys(&db).await, 2);
    assert_eq!(
        redis.pending(),
        1,
        "the entry read ahead is pending, not lost"
    );

    // Shutdown: the entry in hand is still written and acknowledged.
    stop.cancel();
    let last = consumer.finish(&stop).await.expect("finish");
    assert_eq!((last.read, last.jobs, last.acked), (0, 1, 1));
    assert_eq!(jobs_with_keys(&db).await, 3);
    assert_eq!(redis.unacknowledged(), 0);
}

#[tokio::test]
async fn the_batch_read_ahead_is_written_by_the_next_pass_or_at_shutdown_postgres() {
    the_batch_read_ahead_is_written_by_the_next_pass_or_at_shutdown(Backend::Postgres).await;
}

#[tokio::test]
async fn the_batch_read_ahead_is_written_by_the_next_pass_or_at_shutdown_sqlite() {
    the_batch_read_ahead_is_written_by_the_next_pass_or_at_shutdown(Backend::Sqlite).await;
}

async fn entries_a_dead_consumer_left_pending_are_taken_over(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let mut consumer = consumer(&db, &redis, |c| {
        c.redis.claim_idle = Duration::from_millis(200);
    })
    .await;
    for key in ["a", "b"] {
        redis.xadd(&job_msg(key));
    }
    // Another consumer of the group reads both and dies without acknowledging.
    redis.cli(&["XGROUP", "CREATE", &redis.stream(), "hangar", "0"]);
    redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "hangar",
        "crashed:9",
        "COUNT",
        "10",
        "STREAMS",
        &redis.stream(),
        ">",
    ]);
    assert_eq!(redis.pending(), 2);
    let stop = CancellationToken::new();

    // Passes find nothing new (each waits at most 50 ms for entries); once the entries have
    // been idle for 200 ms, a pass takes them over.
    let mut total = PassCounts::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while total.reclaimed < 2 {
        assert!(Instant::now() < deadline, "the entries were not taken over");
        let counts = consumer.run_once(&stop).await.expect("pass");
        total.reclaimed += counts.reclaimed;
        total.jobs += counts.jobs;
        total.acked += counts.acked;
    }
    assert_eq!((total.jobs, total.acked), (2, 2));
    assert_eq!(jobs_with_keys(&db).await, 2);
    assert_eq!(redis.unacknowledged(), 0);
}

#[tokio::test]
async fn entries_a_dead_consumer_left_pending_are_taken_over_postgres() {
    entries_a_dead_consumer_left_pending_are_taken_over(Backend::Postgres).await;
}

#[tokio::test]
async fn entries_a_dead_consumer_left_pending_are_taken_over_sqlite() {
    entries_a_dead_consumer_left_pending_are_taken_over(Backend::Sqlite).await;
}

async fn acknowledged_entries_are_trimmed_once_past_retention(backend: Backend) {
    let db = TestDb::new(backend).await;
    let redis = TestRedis::new();
    let mut consumer = consumer(&db, &redis, |c| {
        c.redis.retain = Duration::ZERO;
        c.redis.claim_idle = Duration::from_millis(100);
    })
    .await;
    for key in ["t1", "t2", "t3"] {
        redis.xadd(&job_msg(key));
    }
    let stop = CancellationToken::new();
    let first = consumer.run_once(&stop).await.expect("pass");
    // The trim ran before the read: nothing acknowledged yet, nothing trimmed.
    assert_eq!((first.acked, first.trimmed.ingress), (3, 0));
    assert_eq!(stream_len(&redis), 3);

    let mut trimmed = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while trimmed < 3 {
        assert!(
            Instant::now() < deadline,
            "the acknowledged entries were not trimmed"
        );
        trimmed += consumer
            .run_once(&stop)
            .await
            .expect("pass")
            .trimmed
            .ingress;
    }
    assert_eq!(stream_len(&redis), 0);
    assert_eq!(jobs_with_keys(&db).await, 3);
}

#[tokio::test]
async fn acknowledged_entries_are_trimmed_once_past_retention_postgres() {
    acknowledged_entries_are_trimmed_once_past_retention(Backend::Postgres).await;
}

#[tokio::test]
async fn acknowledged_entries_are_trimmed_once_past_retention_sqlite() {
    acknowledged_entries_are_trimmed_once_past_retention(Backend::Sqlite).await;
}
