//! The pool runtime with handlers that misbehave: a panic and an attempt that outlives the
//! pool's timeout both become failed attempts with the right class, and the pool goes on.
//! Leases around a database that fails or goes away: a finished attempt keeps its lease until
//! its completion is written, an attempt whose lease cannot be renewed stops. Retention per
//! queue, through the real binary.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hangar_workers::db::Pool as DbPool;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobId, JobState, NewJob};
use hangar_workers::kinds::{BoxFuture, Handler, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::support::{ANY_PORT, Backend, TestDb, fast_pools, wait_final, wait_for};

/// `{"panic": true}` panics; `{"sleep_ms": N}` sleeps N ms; otherwise succeeds.
struct Misbehaving;

impl Handler for Misbehaving {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), hangar_workers::kinds::ArgsError> {
        Ok(())
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        Box::pin(async move {
            if job.args["panic"] == true {
                panic!("handler bug");
            }
            if let Some(ms) = job.args["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_overruns_fail_the_attempt_not_the_pool() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let toml = fast_pools("timeout_ms = 300", "")
        .replace("kinds = [\"noop\", \"http\"]", "kinds = [\"odd\"]");
    let spec = pool_config::parse("test", &toml).unwrap().remove(0);
    let mut registry = Registry::builtin_with(TargetPolicy::allow_all());
    registry.register("odd", Misbehaving);
    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(registry),
            refresher: Arc::new(NoRefresher),
            worker_id: "test".to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));

    let enqueue = |args: serde_json::Value| {
        let store = store.clone();
        async move { store.enqueue(&NewJob::new("odd", args)).await.unwrap().id }
    };
    let panics = enqueue(serde_json::json!({"panic": true})).await;
    let overruns = enqueue(serde_json::json!({"sleep_ms": 5_000})).await;
    let fine = enqueue(serde_json::json!({})).await;

    let job = wait_final(&store, panics, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 4, "internal: 3 retries, then fail");
    assert!(
        job.attempts
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Internal)
                && a.error.as_deref() == Some("the handler panicked"))
    );

    let job = wait_final(&store, overruns, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 4, "timeout: 3 retries, then fail");
    for attempt in &job.attempts {
        assert_eq!(attempt.error_class, Some(ErrorClass::Timeout));
        let took = attempt.finished_at.unwrap() - attempt.started_at;
        assert!(
            took < chrono::Duration::milliseconds(1_500),
            "the 300 ms timeout did not stop it: {took}"
        );
    }

    assert_eq!(
        wait_final(&store, fine, Duration::from_secs(20))
            .await
            .state,
        JobState::Completed
    );
    shutdown.cancel();
    running.await.unwrap();
}

/// While a pool drains a backlog it claims after the last key it took (see `ClaimKey`); a
/// job that arrives ahead of that key (here: a higher priority) must still run soon, not
/// after the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_job_overtakes_a_backlog() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = crate::support::Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let backlog: Vec<NewJob> = (0..3_000)
        .map(|i| {
            let mut job = NewJob::new(
                "http",
                serde_json::json!({"url": server.url("/slow/5"), "body": {"n": i}}),
            );
            job.priority = 5;
            job
        })
        .collect();
    for chunk in backlog.chunks(1_000) {
        store.enqueue_many(chunk).await.unwrap();
    }
    let _worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    crate::support::wait_for(
        "the backlog to be draining",
        Duration::from_secs(30),
        || async { (server.hits_on("/slow").len() >= 300).then_some(()) },
    )
    .await;
    let mut urgent = NewJob::new("noop", serde_json::json!({}));
    urgent.priority = 0;
    let urgent = store.enqueue(&urgent).await.unwrap().id;
    let job = wait_final(&store, urgent, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed);
    let done = store
        .count_in_queue("default", JobState::Completed, true)
        .await
        .unwrap();
    assert!(
        done < 2_000,
        "the urgent job waited for {done} of 3000 backlog jobs"
    );
}

/// Counts its runs; with `{"hold": true}` the first attempt runs until it is stopped, and
/// its future says when it was dropped.
#[derive(Clone, Default)]
struct Probe {
    runs: Arc<AtomicUsize>,
    started: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped (with the future that holds it).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Handler for Probe {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), hangar_workers::kinds::ArgsError> {
        Ok(())
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let probe = self.clone();
        Box::pin(async move {
            probe.runs.fetch_add(1, Ordering::SeqCst);
            if job.args["hold"] == true && job.attempt == 1 {
                let _flag = DropFlag(probe.dropped.clone());
                probe.started.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

/// A pool of the `probe` kind with a 1 s lease (renewed every 333 ms) and a long timeout.
fn probe_pool(store: &Store, probe: &Probe, worker: &str) -> Pool {
    let toml = fast_pools("timeout_ms = 60000", "")
        .replace("kinds = [\"noop\", \"http\"]", "kinds = [\"probe\"]")
        .replace("lease_ms = 2000", "lease_ms = 1000");
    let spec = pool_config::parse("test", &toml).unwrap().remove(0);
    let mut registry = Registry::builtin_with(TargetPolicy::allow_all());
    registry.register("probe", probe.clone());
    Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(registry),
            refresher: Arc::new(NoRefresher),
            worker_id: worker.to_owned(),
        },
    )
}

/// Runs one SQL script on the store's database (triggers that make a write fail).
async fn execute(db: &TestDb, sql: &'static str) {
    db.sql(sql).await;
}

/// How far the job's lease reaches past the start of its attempt, in ms (None: no lease).
async fn lease_reach_ms(db: &TestDb, id: JobId) -> Option<i64> {
    match db.database().await.pool() {
        DbPool::Postgres(pg) => sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM lease_expires_at - attempted_at) * 1000)::bigint \
             FROM hangar_jobs WHERE id = $1",
        )
        .bind(id.0)
        .fetch_one(pg)
        .await
        .ok()?,
        DbPool::Sqlite(lite) => sqlx::query_scalar(
            "SELECT lease_expires_at - attempted_at FROM hangar_jobs WHERE id = ?1",
        )
        .bind(id.0)
        .fetch_one(lite)
        .await
        .ok()?,
    }
}

async fn a_finished_attempt_keeps_its_lease_until_written(
    backend: Backend,
    refuse: &'static str,
    allow: &'static str,
) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    // The store refuses completions (a slow or failing completer) until `allow`.
    execute(&db, refuse).await;
    let probe = Probe::default();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(probe_pool(&store, &probe, "A").run(shutdown.clone()));
    let other_worker = probe_pool(&store, &Probe::default(), "B");
    let id = store
        .enqueue(&NewJob::new("probe", serde_json::json!({})))
        .await
        .unwrap()
        .id;
    wait_for(
        "the attempt to succeed",
        Duration::from_secs(10),
        || async { (probe.runs.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    wait_for(
        "the lease to be renewed to 3 leases past the attempt's start",
        Duration::from_secs(15),
        || async {
            let counts = other_worker.maintain_once().await.unwrap();
            assert_eq!(
                counts.rescued, 0,
                "another worker's rescuer took over a job that succeeded"
            );
            (lease_reach_ms(&db, id).await? > 3_000).then_some(())
        },
    )
    .await;
    execute(&db, allow).await;
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 1));
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1, "the job ran once");
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_attempt_keeps_its_lease_until_written_on_postgres() {
    a_finished_attempt_keeps_its_lease_until_written(
        Backend::Postgres,
        "CREATE FUNCTION hangar_test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'completions refused'; END $$; \
         CREATE TRIGGER hangar_test_refuse BEFORE UPDATE ON hangar_jobs FOR EACH ROW \
         WHEN (NEW.state = 'completed') EXECUTE FUNCTION hangar_test_refuse();",
        "DROP TRIGGER hangar_test_refuse ON hangar_jobs",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_attempt_keeps_its_lease_until_written_on_sqlite() {
    a_finished_attempt_keeps_its_lease_until_written(
        Backend::Sqlite,
        "CREATE TRIGGER hangar_test_refuse BEFORE UPDATE OF state ON hangar_jobs \
         WHEN NEW.state = 'completed' BEGIN SELECT RAISE(ABORT, 'completions refused'); END;",
        "DROP TRIGGER hangar_test_refuse",
    )
    .await;
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

/// The test's database made unreachable for writes: PostgreSQL refuses connections (and the
/// open ones are terminated); an SQLite file is locked by an exclusive transaction.
pub struct Outage {
    pg_name: Option<String>,
    lock: Option<sqlx::SqliteConnection>,
}

impl Outage {
    pub async fn start(db: &TestDb) -> Outage {
        if db.url.starts_with("sqlite:") {
            let mut lock = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut lock)
                .await
                .unwrap();
            return Outage {
                pg_name: None,
                lock: Some(lock),
            };
        }
        let name = db.url.rsplit('/').next().expect("db name").to_owned();
        psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
        psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ));
        Outage {
            pg_name: Some(name),
            lock: None,
        }
    }

    pub async fn end(mut self) {
        if let Some(mut lock) = self.lock.take() {
            sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
        }
        if let Some(name) = self.pg_name.take() {
            psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
        }
    }
}

async fn an_attempt_stops_when_its_lease_cannot_be_renewed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let probe = Probe::default();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(probe_pool(&store, &probe, "A").run(shutdown.clone()));
    let id = store
        .enqueue(&NewJob::new("probe", serde_json::json!({"hold": true})))
        .await
        .unwrap()
        .id;
    wait_for("the attempt to start", Duration::from_secs(10), || async {
        probe.started.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let outage = Outage::start(&db).await;
    let since = Instant::now();
    wait_for(
        "the attempt to stop (its lease cannot be renewed)",
        Duration::from_secs(15),
        || async { probe.dropped.load(Ordering::SeqCst).then_some(()) },
    )
    .await;
    assert!(
        since.elapsed() < Duration::from_secs(10),
        "the attempt ran on for {:?} without a lease",
        since.elapsed()
    );
    outage.end().await;
    // Back on line, the expired lease is rescued and the job runs again.
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed);
    assert!(
        job.attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired")),
        "{:?}",
        job.attempts
    );
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_stops_when_its_lease_cannot_be_renewed_on_postgres() {
    an_attempt_stops_when_its_lease_cannot_be_renewed(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_stops_when_its_lease_cannot_be_renewed_on_sqlite() {
    an_attempt_stops_when_its_lease_cannot_be_renewed(Backend::Sqlite).await;
}

#[test]
fn pools_of_one_queue_must_agree_on_its_retention() {
    let toml = r#"
[[pool]]
name = "a"
queue = "shared"
kinds = ["noop"]

[[pool]]
name = "b"
queue = "shared"
kinds = ["http"]
retention_ms = 60000
"#;
    let error = pool_config::parse("pools.toml", toml)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("pools.toml: pool 'b': retention_ms: 60000 differs"),
        "{error}"
    );
    assert!(
        error.contains("pool 'a' on the same queue 'shared'"),
        "{error}"
    );
}

/// A sample's value in Prometheus text, e.g. `hangar_jobs_pruned_total{queue="short"}`.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

/// Two pools with different retention in one worker: each queue is pruned with its own, and
/// `/metrics` counts the rows pruned per queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queue_is_pruned_with_its_own_retention() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = crate::support::Receiver::start().await;
    db.pools(
        r#"
[[pool]]
name = "short"
kinds = ["noop"]
lease_ms = 1500
poll_interval_ms = 100
retention_ms = 0

[[pool]]
name = "long"
kinds = ["http"]
lease_ms = 1500
poll_interval_ms = 100
retention_ms = 3600000
"#,
    );
    let worker = db.spawn("worker", &["worker", "--bind", ANY_PORT]);
    let enqueue = |kind: &str, queue: &str, args: serde_json::Value| {
        let mut job = NewJob::new(kind, args);
        job.queue = queue.to_owned();
        job
    };
    let long: Vec<NewJob> = (0..3)
        .map(|_| {
            enqueue(
                "http",
                "long",
                serde_json::json!({"url": server.url("/ok")}),
            )
        })
        .collect();
    store.enqueue_many(&long).await.unwrap();
    let completed = |queue: &'static str| {
        let store = store.clone();
        async move {
            store
                .count_in_queue(queue, JobState::Completed, true)
                .await
                .unwrap()
        }
    };
    wait_for(
        "queue 'long' to complete",
        Duration::from_secs(20),
        || async { (completed("long").await == 3).then_some(()) },
    )
    .await;
    let short: Vec<NewJob> = (0..4)
        .map(|_| enqueue("noop", "short", serde_json::json!({})))
        .collect();
    store.enqueue_many(&short).await.unwrap();
    let metrics_url = format!("http://{}/metrics", worker.address().await);
    wait_for(
        "queue 'short' to be pruned and counted",
        Duration::from_secs(30),
        || async {
            let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
            let pruned = metric(&text, "hangar_jobs_pruned_total{queue=\"short\"}")?;
            (pruned == 4.0).then_some(())
        },
    )
    .await;
    let left = store
        .count_in_queue("short", JobState::Completed, false)
        .await
        .unwrap()
        + completed("short").await;
    assert_eq!(left, 0, "queue 'short' keeps nothing");
    assert_eq!(
        completed("long").await,
        3,
        "queue 'long' (retention 1 h) was pruned with queue 'short''s retention"
    );
}
