//! No job lost: kill -9 of a worker mid-run, two workers on one database (both doing work), a
//! restart while a job waits for its retry, graceful shutdown (also with the database down),
//! and cancellation of a running job (its attempt kept).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hangar_workers::job::{JobState, NewJob};
use hangar_workers::store::Store;

use crate::pool::Outage;
use crate::support::{
    ANY_PORT, Backend, Receiver, TestDb, enqueue_http, fast_pools, stdout_ok, wait_final, wait_for,
    wait_state,
};

/// Enqueues `n` http jobs to `path`, each with body `{"n": i}`.
async fn enqueue_numbered(store: &Store, url: &str, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new("http", serde_json::json!({"url": url, "body": {"n": i}})))
        .collect();
    for chunk in jobs.chunks(1_000) {
        store.enqueue_many(chunk).await.expect("enqueue");
    }
}

/// How many times the receiver saw each job number.
fn deliveries(server: &Receiver, prefix: &str) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for hit in server.hits_on(prefix) {
        let body: serde_json::Value = serde_json::from_str(&hit.body).expect("json body");
        *seen.entry(body["n"].as_u64().expect("n")).or_default() += 1;
    }
    seen
}

async fn count(store: &Store, state: JobState) -> i64 {
    store
        .count_in_queue("default", state, true)
        .await
        .expect("count")
}

async fn kill9_loses_nothing(backend: Backend, jobs: usize) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    enqueue_numbered(&store, &server.url("/slow/25"), jobs).await;

    let mut first = db.spawn("first", &["worker", "--bind", "127.0.0.1:0"]);
    wait_for(
        "the first worker to be mid-run",
        Duration::from_secs(30),
        || async { (server.hits_on("/slow").len() >= jobs / 5).then_some(()) },
    )
    .await;
    first.kill9();
    let running = count(&store, JobState::Running).await;
    assert!(
        running > 0,
        "the killed worker held no jobs; the test proves nothing"
    );

    let _second = db.spawn("second", &["worker", "--bind", "127.0.0.1:0"]);
    wait_for("every job to complete", Duration::from_secs(90), || async {
        (count(&store, JobState::Completed).await == jobs as i64).then_some(())
    })
    .await;
    let seen = deliveries(&server, "/slow");
    assert_eq!(seen.len(), jobs, "every job reached the server");
    assert_eq!(count(&store, JobState::Failed).await, 0);
    // The jobs the dead worker held were rescued and run again: at least once, as promised.
    let rescued = store
        .jobs(&hangar_workers::job::JobFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.attempt > 1)
        .count();
    assert!(rescued > 0, "no job was rescued after kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_worker_loses_no_job_on_postgres() {
    kill9_loses_nothing(Backend::Postgres, 3_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_worker_loses_no_job_on_sqlite() {
    kill9_loses_nothing(Backend::Sqlite, 1_000).await;
}

/// Jobs this process completed, from its `/metrics`.
async fn completed_by(address: &str) -> f64 {
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("the worker answers /metrics")
        .text()
        .await
        .expect("metrics text");
    // One sample per queue: the worker's completions on any of them.
    text.lines()
        .filter(|l| l.starts_with("hangar_jobs_total{") && l.contains("outcome=\"completed\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_run_the_same_attempt_twice() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let jobs = 3_000;
    let mut workers: Vec<_> = (0..2)
        .map(|i| db.spawn(&format!("worker{i}"), &["worker", "--bind", ANY_PORT]))
        .collect();
    // Both are idle and listening before the jobs arrive, so both get a share.
    wait_for("both workers to be up", Duration::from_secs(20), || async {
        workers
            .iter()
            .all(|w| w.log().contains("hangar is running"))
            .then_some(())
    })
    .await;
    enqueue_numbered(&store, &server.url("/record"), jobs).await;
    wait_for("every job to complete", Duration::from_secs(90), || async {
        (count(&store, JobState::Completed).await == jobs as i64).then_some(())
    })
    .await;
    let seen = deliveries(&server, "/record");
    assert_eq!(seen.len(), jobs);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    for worker in workers.iter_mut() {
        assert!(
            worker.child.try_wait().expect("try_wait").is_none(),
            "a worker died: {}",
            worker.log()
        );
        let address = worker.address().await;
        let done = completed_by(&address).await;
        assert!(done > 0.0, "the worker on {address} ran no job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_survives_a_restart_and_runs_on_time() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", "").replace(
        "base_delay_ms = 200\nmax_delay_ms = 10000\n\n[pool.retry.internal]",
        "base_delay_ms = 3000\nmax_delay_ms = 10000\n\n[pool.retry.internal]",
    ));
    let id = enqueue_http(
        &store,
        &server.url("/flaky/restart/1/500"),
        serde_json::json!({}),
    )
    .await;
    let mut first = db.spawn("first", &["worker", "--bind", "127.0.0.1:0"]);
    let job = wait_state(&store, id, JobState::Retryable, Duration::from_secs(20)).await;
    let delay = Duration::from_millis(job.attempts[0].next_delay_ms.unwrap() as u64);
    assert!(
        delay >= Duration::from_millis(2_400),
        "expected a ~3 s backoff, got {delay:?}"
    );
    assert!(first.terminate().success());
    let _second = db.spawn("second", &["worker", "--bind", "127.0.0.1:0"]);
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Completed);
    let hits = server.hits_on("/flaky/restart");
    assert_eq!(hits.len(), 2);
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap + Duration::from_millis(20) >= delay,
        "retried after {gap:?}, before its {delay:?}"
    );
    assert!(
        gap <= delay + Duration::from_millis(1_500),
        "retried after {gap:?}, late for {delay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_running_job() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let id = enqueue_http(&store, &server.url("/slow/1500"), serde_json::json!({})).await;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_for("the job to start", Duration::from_secs(20), || async {
        (!server.hits_on("/slow").is_empty()).then_some(())
    })
    .await;
    let stopping = Instant::now();
    assert!(worker.terminate().success(), "{}", worker.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "shutdown waited past the grace period"
    );
    let job = store.job(id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Completed,
        "the running job was finished before exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_a_job_that_outlives_the_grace_period() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", "").replace("shutdown_grace_ms = 3000", "shutdown_grace_ms = 200"));
    let id = enqueue_http(&store, &server.url("/slow/5000"), serde_json::json!({})).await;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_state(&store, id, JobState::Running, Duration::from_secs(20)).await;
    assert!(worker.terminate().success());
    let job = store.job(id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Available,
        "handed back, ready for another worker"
    );
    assert_eq!(job.attempt, 0, "the interrupted attempt is not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_running_and_scheduled_jobs() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let running = enqueue_http(&store, &server.url("/slow/20000"), serde_json::json!({})).await;
    // Far enough ahead that the worker cannot reach it before the cancel; the test moves its
    // time instead of waiting for it.
    let mut later = NewJob::new("noop", serde_json::json!({}));
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let scheduled = store.enqueue(&later).await.unwrap().id;
    let worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_state(&store, running, JobState::Running, Duration::from_secs(20)).await;

    for id in [running, scheduled] {
        let out = stdout_ok(&db.run(&["jobs", "cancel", &id.to_string(), "--json"]));
        let job: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(job["state"], "cancelled");
    }
    wait_for(
        "the worker to stop the attempt",
        Duration::from_secs(10),
        || async { worker.log().contains("lease lost").then_some(()) },
    )
    .await;
    // The scheduled job's time comes (its run_at moved into the past, which is what waiting
    // an hour would do): a worker's claim finds nothing to run.
    db.sql(&format!(
        "UPDATE hangar_jobs SET run_at = now() - interval '1 second' WHERE id = {scheduled}"
    ))
    .await;
    let probe = store
        .claim("default", "probe", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(probe.is_empty(), "a cancelled job was claimable: {probe:?}");
    for id in [running, scheduled] {
        assert_eq!(
            store.job(id).await.unwrap().state,
            JobState::Cancelled,
            "job {id}"
        );
    }
    assert_eq!(server.hits_on("/slow").len(), 1);
    let attempts = store.job(running).await.unwrap().attempts;
    assert_eq!(attempts.len(), 1, "the cancelled attempt is recorded");
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("cancelled by an operator")
    );
    assert!(attempts[0].finished_at.is_some());
    let cancel_again = db.run(&["jobs", "cancel", &running.to_string()]);
    assert_eq!(cancel_again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cancel_again.stderr).contains("is cancelled: cannot cancel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_an_idle_worker_in_another_process() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    // A poll tick of a minute: only LISTEN/NOTIFY can start the job quickly.
    db.pools(&fast_pools("", "").replace("poll_interval_ms = 100", "poll_interval_ms = 60000"));
    let worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_for("the worker to be up", Duration::from_secs(20), || async {
        worker.log().contains("hangar is running").then_some(())
    })
    .await;
    for _ in 0..3 {
        wait_for("the worker to listen", Duration::from_secs(10), || async {
            (!listen_sessions(&db, &[]).is_empty()).then_some(())
        })
        .await;
        // Enqueued by another process (the CLI), so no in-process wake-up can help.
        let out = stdout_ok(&db.run(&["enqueue", "noop"]));
        let id: hangar_workers::job::JobId = out.trim().parse().unwrap();
        let enqueued = Instant::now();
        let job = wait_final(&store, id, Duration::from_secs(30)).await;
        assert_eq!(job.state, JobState::Completed);
        assert!(
            enqueued.elapsed() < Duration::from_secs(2),
            "an idle worker took {:?} to run a job: NOTIFY did not wake it",
            enqueued.elapsed()
        );
    }
}

/// The process ids of the database sessions of `db` waiting in LISTEN, except `but`.
fn listen_sessions(db: &TestDb, but: &[i64]) -> Vec<i64> {
    admin_query(
        db,
        "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'LISTEN%' \
         AND state = 'idle'",
    )
    .into_iter()
    .filter(|pid| !but.contains(pid))
    .collect()
}

/// Runs `sql` (with `{db}` replaced by the test database's name) as the admin; the numbers
/// it prints, one a line.
fn admin_query(db: &TestDb, sql: &str) -> Vec<i64> {
    let name = db.url.rsplit('/').next().expect("db name");
    let admin = std::env::var("HANGAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let out = std::process::Command::new("psql")
        .args([admin.as_str(), "-qAtc", &sql.replace("{db}", name)])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn notify_keeps_waking_the_worker_after_its_listen_connection_is_killed() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    db.pools(&fast_pools("", "").replace("poll_interval_ms = 100", "poll_interval_ms = 60000"));
    let worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_for("the worker to be up", Duration::from_secs(20), || async {
        worker.log().contains("hangar is running").then_some(())
    })
    .await;
    // The LISTEN session is the one whose last statement was LISTEN.
    let killed = wait_for("the LISTEN session", Duration::from_secs(10), || async {
        let killed = admin_query(
            &db,
            "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'LISTEN%' \
             AND pg_terminate_backend(pid)",
        );
        (!killed.is_empty()).then_some(killed)
    })
    .await;
    assert_eq!(killed.len(), 1, "one LISTEN session per worker process");
    wait_for(
        "the worker to listen again",
        Duration::from_secs(10),
        || async { (!listen_sessions(&db, &killed).is_empty()).then_some(()) },
    )
    .await;
    let out = stdout_ok(&db.run(&["enqueue", "noop"]));
    let id: hangar_workers::job::JobId = out.trim().parse().unwrap();
    let enqueued = Instant::now();
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed);
    assert!(
        enqueued.elapsed() < Duration::from_secs(3),
        "after losing its LISTEN connection the worker took {:?}: it did not listen again",
        enqueued.elapsed()
    );
}

/// SIGTERM while the database is down: the worker still exits within the grace period plus
/// the flush timeout, names the job whose result it could not write, and that job is rescued
/// once the database is back.
async fn shutdown_is_bounded_when_the_database_is_down(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", "").replace("shutdown_grace_ms = 3000", "shutdown_grace_ms = 1000"));
    let id = enqueue_http(&store, &server.url("/slow/800"), serde_json::json!({})).await;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    wait_state(&store, id, JobState::Running, Duration::from_secs(20)).await;
    let outage = Outage::start(&db).await;
    let stopping = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.child.id().to_string()])
        .status();
    let status = wait_for("the worker to exit", Duration::from_secs(30), || {
        let exited = worker.child.try_wait().expect("try_wait");
        async move { exited }
    })
    .await;
    let took = stopping.elapsed();
    let log = worker.log();
    assert!(status.success(), "{log}");
    let bound = Duration::from_millis(1_000) + hangar_workers::pool::FLUSH_TIMEOUT;
    assert!(
        took < bound + Duration::from_secs(3),
        "shutdown took {took:?} with the database down (bound {bound:?})"
    );
    let plain = strip_ansi(&log);
    assert!(
        plain
            .lines()
            .any(|l| l.contains("could not write") && l.contains(&format!("jobs={id}"))),
        "the log does not name job {id}: {plain}"
    );
    outage.end().await;
    let _second = db.spawn("second", &["worker", "--bind", "127.0.0.1:0"]);
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!(
        job.state,
        JobState::Completed,
        "rescued after its lease ran out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_when_the_database_is_down_on_postgres() {
    shutdown_is_bounded_when_the_database_is_down(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_when_the_database_is_down_on_sqlite() {
    shutdown_is_bounded_when_the_database_is_down(Backend::Sqlite).await;
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
