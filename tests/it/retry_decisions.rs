//! What an operator sees of retry decisions: an operator's retry grants a fresh budget (and
//! the attempt text says so), a retried 401 job refreshes its token again, and every decision
//! is logged once by `hangar serve` with structured fields and no colour codes.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hangar_workers::job::{ClaimedJob, Job, JobId, JobState, NewJob};
use hangar_workers::kinds::{BoxFuture, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config;
use hangar_workers::refresher::TokenRefresher;
use hangar_workers::retry_policy::RefreshOutcome;
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use tokio_util::sync::CancellationToken;

use crate::support::{
    Backend, Receiver, TestDb, enqueue_http, fast_pools, stdout_ok, wait_final, wait_for,
};

/// The decision texts of a job's attempts, oldest first.
fn decisions(job: &Job) -> Vec<String> {
    job.attempts
        .iter()
        .map(|a| a.decision.clone().unwrap_or_default())
        .collect()
}

/// Waits until job `id` has failed for good with `attempts` attempts.
async fn failed_after(store: &Store, id: JobId, attempts: usize) -> Job {
    wait_for(
        &format!("job {id} to fail after {attempts} attempts"),
        Duration::from_secs(30),
        || async {
            let job = store.job(id).await.ok()?;
            (job.state == JobState::Failed && job.attempts.len() == attempts).then_some(job)
        },
    )
    .await
}

/// `hangar jobs retry` (the CLI, as an operator would) after the job failed: the job gets its
/// whole budget again, and the texts describe that budget, not the spent one.
async fn operator_retry_grants_a_fresh_budget(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let unauthorized =
        enqueue_http(&store, &server.url("/status/401"), serde_json::json!({})).await;
    let mut small = NewJob::new(
        "http",
        serde_json::json!({"url": server.url("/status/500"), "method": "POST"}),
    );
    small.max_attempts = 2;
    let failing = store.enqueue(&small).await.expect("enqueue").id;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);

    let job = wait_final(&store, unauthorized, Duration::from_secs(30)).await;
    assert_eq!((job.state, job.attempts.len()), (JobState::Failed, 1));
    let job = failed_after(&store, failing, 2).await;
    assert!(decisions(&job)[1].contains("ceiling of 2"), "{job:?}");
    for id in [unauthorized, failing] {
        stdout_ok(&db.run(&["jobs", "retry", &id.to_string()]));
    }

    // The 401 is asked about again (here: no refresher), not taken for a second 401 after a
    // refresh that never happened.
    let job = failed_after(&store, unauthorized, 2).await;
    let texts = decisions(&job);
    assert_eq!(
        texts[1],
        "auth error (failure 1 since the operator's retry): no token refresher for this job; \
         re-authorisation required",
        "{texts:?}"
    );

    // Two more failures, counted from the operator's retry: retried once, then the ceiling.
    let job = failed_after(&store, failing, 4).await;
    let texts = decisions(&job);
    assert!(
        texts[2].starts_with("server error (failure 1 of 2 since the operator's retry): retry in"),
        "{texts:?}"
    );
    assert_eq!(
        texts[3],
        "server error (failure 2 of 2 since the operator's retry): job ceiling of 2 attempts \
         reached",
        "{texts:?}"
    );
    assert!(job.attempts[2].next_delay_ms.is_some());
    assert_eq!(server.hits_on("/status/500").len(), 4);
    // The header describes the budget the job now has, not "attempt 4/2".
    let shown = stdout_ok(&db.run(&["jobs", "show", &failing.to_string()]));
    assert!(
        shown.contains("attempt 4 (2 of 2 since the operator's retry)"),
        "{shown}"
    );
    let listed = stdout_ok(&db.run(&["jobs", "list"]));
    assert!(listed.contains("4 (2/2)"), "{listed}");
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_retry_grants_a_fresh_budget_on_postgres() {
    operator_retry_grants_a_fresh_budget(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_retry_grants_a_fresh_budget_on_sqlite() {
    operator_retry_grants_a_fresh_budget(Backend::Sqlite).await;
}

/// A token refresher that always works and counts its calls.
struct CountingRefresher(Arc<AtomicU32>);

impl TokenRefresher for CountingRefresher {
    fn refresh<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        _failure: &'a JobFailure,
    ) -> BoxFuture<'a, RefreshOutcome> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { RefreshOutcome::Refreshed })
    }

    fn mark_needs_reauth<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        _reason: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A provider that keeps answering 401: one refresh and one retry, then re-authorisation; after
/// the operator's retry, the token is refreshed again.
async fn retried_401_refreshes_again(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    let spec = pool_config::parse("test", &fast_pools("", ""))
        .expect("pools")
        .remove(0);
    let refreshes = Arc::new(AtomicU32::new(0));
    let pool = Pool::new(
        spec,
        PoolDeps {
            store: store.clone(),
            registry: Arc::new(Registry::builtin_with(TargetPolicy::allow_all())),
            refresher: Arc::new(CountingRefresher(refreshes.clone())),
            worker_id: "test".to_owned(),
        },
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pool.run(shutdown.clone()));

    let id = enqueue_http(&store, &server.url("/status/401"), serde_json::json!({})).await;
    let job = failed_after(&store, id, 2).await;
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let texts = decisions(&job);
    assert!(texts[0].contains("token refreshed, retry now"), "{texts:?}");
    assert!(
        texts[1].contains("got 401 again after refresh"),
        "{texts:?}"
    );

    store
        .retry_job(id, &crate::support::test_actor())
        .await
        .expect("retry");
    let job = failed_after(&store, id, 4).await;
    assert_eq!(
        refreshes.load(Ordering::SeqCst),
        2,
        "the retried job refreshed its token again"
    );
    let texts = decisions(&job);
    assert_eq!(
        texts[2],
        "auth error (failure 1 since the operator's retry): token refreshed, retry now"
    );
    assert!(
        texts[3].contains("got 401 again after refresh"),
        "{texts:?}"
    );
    assert_eq!(server.hits_on("/status/401").len(), 4);
    shutdown.cancel();
    running.await.expect("pool stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_401_refreshes_again_on_postgres() {
    retried_401_refreshes_again(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_401_refreshes_again_on_sqlite() {
    retried_401_refreshes_again(Backend::Sqlite).await;
}

/// `hangar serve` with its output piped (not a terminal): a job that fails once and then
/// succeeds leaves exactly one decision line at INFO, with the fields an operator filters on,
/// and no colour codes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_logged_once_with_fields_and_no_colour() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    // Port 0: the test reads the database, not the HTTP port.
    let mut command: Command = db.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut serve = command.spawn().expect("spawn hangar serve");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(serve.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(serve.stderr.take().expect("stderr")));

    let id = enqueue_http(
        &store,
        &server.url("/flaky/log/1/503"),
        serde_json::json!({}),
    )
    .await;
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert_eq!((job.state, job.attempts.len()), (JobState::Completed, 2));
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    serve.wait().expect("serve exits");
    let log = stdout.join().expect("stdout") + &stderr.join().expect("stderr");

    assert!(
        !log.contains("\u{1b}["),
        "colour codes in piped output:\n{log}"
    );
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("job_id={id} ")) && l.contains("decision="))
        .collect();
    assert_eq!(lines.len(), 1, "one line per decision:\n{log}");
    let line = lines[0];
    for field in [
        " INFO ",
        "kind=http",
        "queue=default",
        "attempt=1",
        "class=server",
        "http_status=503",
        "decision=retry",
        "delay_ms=",
        "alert=none",
        "reason=server error (failure 1 of 6): retry in",
    ] {
        assert!(line.contains(field), "{field:?} missing from: {line}");
    }
}
