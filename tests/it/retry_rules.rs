//! Each error class end to end: `http` jobs run by the real `hangar worker` against a loopback
//! server that answers 500, 429 with Retry-After, 400, 401, or never. Attempts, delays (within
//! the ±20 % jitter) and alerts must follow the retry rules, on both backends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::alerts::model::AlertKind;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{Job, JobState, NewJob};
use hangar_workers::store::{AlertRow, Store};

use crate::support::{Backend, Receiver, TestDb, enqueue_http, fast_pools, wait_final, wait_state};

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
        AlertKind::JobFailed
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
        AlertKind::JobFailed
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

/// Each class has its own budget: the 3rd server failure alerts although a timeout came
/// between (`5xx, 5xx, timeout, 5xx`), and a timeout after three 5xx is the first timeout,
/// retried rather than compared with the timeout limit as the job's 4th failure.
async fn classes_keep_their_own_budgets(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store: Store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let short = serde_json::json!({"timeout_ms": 300});
    let alerting = enqueue_http(
        &store,
        &server.url("/script/a/500,500,hang,500"),
        short.clone(),
    )
    .await;
    let timeout_last = enqueue_http(&store, &server.url("/script/b/500,500,500,hang"), short).await;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    let timeout = Duration::from_secs(40);
    let (server_class, timeout_class) = (Some(ErrorClass::Server), Some(ErrorClass::Timeout));

    let job = wait_final(&store, alerting, timeout).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let classes: Vec<_> = job.attempts.iter().map(|a| a.error_class).collect();
    let want = [
        server_class,
        server_class,
        timeout_class,
        server_class,
        None,
    ];
    assert_eq!(classes, want, "{:?}", job.attempts);
    let mine = alerts_of(&store.alerts(true).await.expect("alerts"), &job);
    assert_eq!(
        mine.len(),
        1,
        "one alert at the 3rd server failure: {mine:?}"
    );
    assert_eq!(
        (
            mine[0].kind.as_str(),
            mine[0].severity.as_str(),
            mine[0].occurrences
        ),
        ("job_failing", "warning", 1)
    );
    assert!(mine[0].message.contains("3 server errors"), "{mine:?}");
    assert!(
        mine[0].resolved_at.is_some(),
        "the success resolves it: {mine:?}"
    );
    let fourth = job.attempts[3].decision.clone().unwrap_or_default();
    assert!(
        fourth.starts_with("server error (failure 3 of 5, job failure 4 of 6): retry in"),
        "{fourth}"
    );

    let job = wait_final(&store, timeout_last, timeout).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let classes: Vec<_> = job.attempts.iter().map(|a| a.error_class).collect();
    let want = [
        server_class,
        server_class,
        server_class,
        timeout_class,
        None,
    ];
    assert_eq!(classes, want, "{:?}", job.attempts);
    let fourth = job.attempts[3].decision.clone().unwrap_or_default();
    assert!(
        fourth.starts_with("timeout (failure 1 of 3, job failure 4 of 6): retry in"),
        "{fourth}"
    );
    assert_eq!(server.hits_on("/script/b/").len(), 5);
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_keep_their_own_budgets_on_postgres() {
    classes_keep_their_own_budgets(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_keep_their_own_budgets_on_sqlite() {
    classes_keep_their_own_budgets(Backend::Sqlite).await;
}

/// `Retry-After: 86400` (a daily quota) is waited in full, never retried within the day; an
/// HTTP-date is honoured to the second; a pool that sets `max_wait_ms` fails the job with an
/// alert instead of calling the provider early.
async fn long_retry_after_is_waited_in_full(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store: Store = db.store().await;
    let server = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let daily = enqueue_http(
        &store,
        &server.url("/retry-after/86400"),
        serde_json::json!({}),
    )
    .await;
    // An IMF-fixdate 3 s from now, in whole seconds as the format has them.
    let not_before = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 3, 0).expect("time");
    let date = not_before.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let encoded = date.replace(' ', "%20").replace(',', "%2C");
    let dated = enqueue_http(
        &store,
        &server.url(&format!("/ratelimited/d/1/{encoded}")),
        serde_json::json!({}),
    )
    .await;
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    let timeout = Duration::from_secs(20);

    let job = wait_final(&store, dated, timeout).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts.len(), 2, "{:?}", job.attempts);
    assert!(
        job.attempts[1].started_at >= not_before,
        "called at {} before the Retry-After date {date}",
        job.attempts[1].started_at
    );

    let job = wait_state(&store, daily, JobState::Scheduled, timeout).await;
    assert_eq!(job.attempts.len(), 1, "{:?}", job.attempts);
    let attempt = &job.attempts[0];
    assert_eq!(attempt.error_class, Some(ErrorClass::RateLimit));
    let delay = attempt.next_delay_ms.expect("a snooze records its delay");
    assert!(
        (86_400_000..=86_400_000 * 6 / 5).contains(&delay),
        "Retry-After 86400 gave {delay} ms"
    );
    let wait = job.run_at - attempt.finished_at.expect("finished");
    assert!(
        wait >= chrono::Duration::seconds(86_399),
        "runs again after {wait}, before the day the provider asked for"
    );
    worker.terminate();

    // A pool that waits at most an hour: the same answer fails the job, with an alert.
    db.pools(&fast_pools(
        "",
        "[pool.retry.rate_limit]\nmax_wait_ms = 3600000\n",
    ));
    let capped = enqueue_http(
        &store,
        &server.url("/retry-after/86400"),
        serde_json::json!({}),
    )
    .await;
    let mut worker = db.spawn("capped", &["worker", "--bind", "127.0.0.1:0"]);
    let job = wait_final(&store, capped, timeout).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(job.attempts.len(), 1);
    let decision = job.attempts[0].decision.clone().unwrap_or_default();
    assert!(
        decision.contains("longer than this pool's max_wait_ms (3600s)"),
        "{decision}"
    );
    let mine = alerts_of(&store.alerts(true).await.expect("alerts"), &job);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].kind, AlertKind::JobFailed);
    assert!(mine[0].message.contains("86400s"), "{mine:?}");
    assert_eq!(
        server.hits_on("/retry-after/").len(),
        2,
        "one call per job, none early"
    );
    let daily = store.job(daily).await.expect("job");
    assert_eq!(
        (daily.state, daily.attempts.len()),
        (JobState::Scheduled, 1)
    );
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_retry_after_is_waited_in_full_on_postgres() {
    long_retry_after_is_waited_in_full(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_retry_after_is_waited_in_full_on_sqlite() {
    long_retry_after_is_waited_in_full(Backend::Sqlite).await;
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
