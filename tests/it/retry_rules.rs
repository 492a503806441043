//! Each error class end to end: `http` jobs run by the real `hangar worker` against a loopback
//! server that answers 500, 429 with Retry-After, 400, 401, or never. Attempts, delays (within
//! the ±20 % jitter) and alerts must follow the retry rules, on both backends.

use std::time::Duration;

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{Job, JobState, NewJob};
use hangar_workers::store::{AlertRow, Store};

use crate::support::{Backend, Receiver, TestDb, enqueue_http, fast_pools, wait_final};

/// The attempt's recorded delay is the configured backoff within ±20 %, and the next attempt
/// started no earlier than that delay (and not much later).
fn assert_backoff(job: &Job, base_ms: f64) {
    for pair in job.attempts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let expected = base_ms * 2f64.powi(a.attempt - 1);
        let delay = a
            .next_delay_ms
            .expect("a retried attempt records its delay") as f64;
        assert!(
            delay >= expected * 0.8 - 1.0 && delay <= expected * 1.2 + 1.0,
            "job {} attempt {}: delay {delay} ms not within ±20 % of {expected} ms",
            job.id,
            a.attempt
        );
        let gap = (b.started_at - a.finished_at.expect("finished")).num_milliseconds() as f64;
        assert!(
            gap >= delay - 15.0,
            "job {} attempt {} ran {gap} ms after the failure, before its {delay} ms delay",
            job.id,
            b.attempt
        );
        assert!(
            gap <= delay + 1_500.0,
            "job {} attempt {} ran {gap} ms after the failure, far past its {delay} ms delay",
            job.id,
            b.attempt
        );
    }
}

fn alerts_of(alerts: &[AlertRow], job: &Job) -> Vec<AlertRow> {
    alerts
        .iter()
        .filter(|a| a.job_id == Some(job.id))
        .cloned()
        .collect()
}

async fn error_classes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store: Store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));

    let server_error =
        enqueue_http(&store, &server.url("/status/500"), serde_json::json!({})).await;
    let client_error =
        enqueue_http(&store, &server.url("/status/400"), serde_json::json!({})).await;
    let unauthorized =
        enqueue_http(&store, &server.url("/status/401"), serde_json::json!({})).await;
    let silent = enqueue_http(
        &store,
        &server.url("/hang"),
        serde_json::json!({"timeout_ms": 300}),
    )
    .await;
    // A budget of one failure: if a snooze used it up, the job would fail.
    let mut limited = NewJob::new(
        "http",
        serde_json::json!({"url": server.url("/ratelimited/rl/2/1"), "method": "POST"}),
    );
    limited.max_attempts = 1;
    let rate_limited = store.enqueue(&limited).await.expect("enqueue").id;
    let recovers = enqueue_http(&store, &server.url("/flaky/f/2/503"), serde_json::json!({})).await;

    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    let timeout = Duration::from_secs(40);

    // 5xx: exponential backoff 200, 400, 800, 1600, 3200 ms; 6 attempts (5 retries); one
    // alert raised at the 3rd failure and raised again (same incident) when it gives up.
    let job = wait_final(&store, server_error, timeout).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(job.attempts.len(), 6, "{:?}", job.attempts);
    assert!(
        job.attempts
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Server) && a.http_status == Some(500))
    );
    assert_backoff(&job, 200.0);
    let alerts = store.alerts(true).await.expect("alerts");
    let mine = alerts_of(&alerts, &job);
    assert_eq!(mine.len(), 1, "one alert per incident: {mine:?}");
    assert_eq!(
        mine[0].occurrences, 2,
        "raised at the 3rd failure and when it failed: {mine:?}"
    );
    assert_eq!(
        (mine[0].kind.as_str(), mine[0].severity.as_str()),
        ("job_failed", "critical")
    );

    // Other 4xx: not retried, alert.
    let job = wait_final(&store, client_error, timeout).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 1);
    assert_eq!(job.attempts[0].error_class, Some(ErrorClass::Client));
    assert_eq!(
        alerts_of(&store.alerts(true).await.unwrap(), &job)[0].kind,
        "job_failed"
    );

    // 401 with no token refresher: fails at once and asks for re-authorisation.
    let job = wait_final(&store, unauthorized, timeout).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 1);
    assert_eq!(job.attempts[0].error_class, Some(ErrorClass::Auth));
    let mine = alerts_of(&store.alerts(true).await.unwrap(), &job);
    assert_eq!(
        (mine[0].kind.as_str(), mine[0].severity.as_str()),
        ("reauth_required", "critical")
    );

    // A server that never answers: timeout class, 200, 400, 800 ms, then it gives up.
    let job = wait_final(&store, silent, timeout).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts.len(), 4, "{:?}", job.attempts);
    assert!(
        job.attempts
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Timeout))
    );
    assert_backoff(&job, 200.0);
    assert_eq!(
        alerts_of(&store.alerts(true).await.unwrap(), &job)[0].kind,
        "job_failed"
    );

    // 429 + Retry-After: 1: waits at least a second each time, then completes; the two
    // snoozes did not use the budget of one failure.
    let job = wait_final(&store, rate_limited, timeout).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.max_attempts, 1);
    assert_eq!(job.attempts.len(), 3, "{:?}", job.attempts);
    for pair in job.attempts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a.error_class, Some(ErrorClass::RateLimit));
        let delay = a.next_delay_ms.unwrap();
        assert!(
            (1_000..=1_200).contains(&delay),
            "Retry-After 1 gave {delay} ms"
        );
        let gap = (b.started_at - a.finished_at.unwrap()).num_milliseconds();
        assert!(gap >= 1_000 - 15, "ran {gap} ms after a Retry-After of 1 s");
    }
    let hits = server.hits_on("/ratelimited/rl/");
    assert_eq!(hits.len(), 3);
    for pair in hits.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(990),
            "the server saw a retry before Retry-After"
        );
    }
    assert!(alerts_of(&store.alerts(true).await.unwrap(), &job).is_empty());

    // Two 503s then success: completes on attempt 3, and the open alert (none at 2
    // failures) stays absent.
    let job = wait_final(&store, recovers, timeout).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempts.len(), 3);
    assert_eq!(job.attempts[2].error_class, None);
    assert_backoff(&job, 200.0);

    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_on_postgres() {
    error_classes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_on_sqlite() {
    error_classes(Backend::Sqlite).await;
}

#[tokio::test]
async fn job_urls_reach_internal_addresses_only_when_allowed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store: Store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let literal = server.url("/status/200");
    let by_name = literal.replace("127.0.0.1", "localhost");
    let refused = [
        enqueue_http(&store, &literal, serde_json::json!({})).await,
        enqueue_http(&store, &by_name, serde_json::json!({})).await,
    ];

    // The default: public addresses only.
    let mut command = db.command(&["worker", "--bind", "127.0.0.1:0"]);
    command.env_remove("HANGAR_ALLOW_PRIVATE_TARGETS");
    let mut worker = db.spawn_command("guarded", command);
    for id in refused {
        let job = wait_final(&store, id, Duration::from_secs(20)).await;
        assert_eq!(job.state, JobState::Failed, "job {id}: {job:?}");
        assert_eq!(job.attempts.len(), 1, "a refused target is not retried");
        assert_eq!(job.attempts[0].error_class, Some(ErrorClass::Client));
        let error = job.attempts[0].error.clone().unwrap_or_default();
        assert!(
            error.contains("refused") && error.contains("HANGAR_ALLOW_PRIVATE_TARGETS"),
            "job {id}: {error}"
        );
    }
    assert!(
        server.hits().is_empty(),
        "nothing reached the loopback server"
    );
    worker.terminate();

    // A CIDR list lets exactly those networks through.
    let mut command = db.command(&["worker", "--bind", "127.0.0.1:0"]);
    command.env("HANGAR_ALLOW_PRIVATE_TARGETS", "10.0.0.0/8, 127.0.0.0/8");
    let _allowed = db.spawn_command("allowed", command);
    let id = enqueue_http(&store, &by_name, serde_json::json!({})).await;
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(server.hits().len(), 1);

    let mut command = db.command(&["worker"]);
    command.env("HANGAR_ALLOW_PRIVATE_TARGETS", "10.0.0.0/99");
    let out = command.output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HANGAR_ALLOW_PRIVATE_TARGETS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
