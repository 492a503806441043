//! Provider faults (issue 14) against the `http` job kind and a webhook delivery, on both
//! backends: a 429 storm with `Retry-After`, a 5xx burst, slow-loris answers (headers, and a
//! body), a huge body, a name that does not resolve and a self-signed certificate. Each is
//! classified as the retry table says (`workers/src/error_class.rs`, `transport_failure.rs`):
//! 429 `rate_limit` waiting the whole `Retry-After`, 5xx `server`, no answer in time / DNS /
//! TLS `timeout`; an attempt ends at its timeout, and a huge body is read no further than the
//! excerpt cap (the fault server counts what it could send).

use std::time::Duration;

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{Job, JobId, JobState, NewJob};
use hangar_workers::store::Store;
use serde_json::{Value, json};

use crate::fault_server::FaultServer;
use crate::faults_tcp::start_pool;
use crate::support::{Backend, Receiver, TestDb, wait_final, wait_for};
use crate::webhooks_support::{Hangar, event, token};

/// A name under `.invalid`, which never resolves (RFC 6761).
const UNRESOLVABLE: &str = "http://hangar-fault-test.invalid/hook";

/// An `http` job to `url` with one attempt allowed and a timeout of `timeout_ms`.
async fn once(store: &Store, url: &str, timeout_ms: u64) -> JobId {
    let mut job = NewJob::new(
        "http",
        json!({"url": url, "method": "POST", "timeout_ms": timeout_ms}),
    );
    job.max_attempts = 1;
    store.enqueue(&job).await.expect("enqueue").id
}

/// The only attempt of a job that failed, and how long it took.
fn only_attempt(job: &Job) -> (ErrorClass, String, Duration) {
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(job.attempts.len(), 1, "{job:?}");
    let attempt = &job.attempts[0];
    let took = (attempt.finished_at.expect("finished") - attempt.started_at)
        .to_std()
        .expect("forward");
    (
        attempt.error_class.expect("a class"),
        attempt.error.clone().unwrap_or_default(),
        took,
    )
}

async fn http_kind_faults(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let receiver = Receiver::start().await;
    let faults = FaultServer::start().await;
    let tls = FaultServer::start_tls().await;
    let (shutdown, running) = start_pool(&store, "provider-faults");

    let mut storm = Vec::new();
    let mut burst = Vec::new();
    for i in 0..8 {
        let url = receiver.url(&format!("/ratelimited/storm{i}/3/1"));
        storm.push(crate::support::enqueue_http(&store, &url, json!({})).await);
        let url = receiver.url(&format!("/flaky/burst{i}/3/503"));
        burst.push(crate::support::enqueue_http(&store, &url, json!({})).await);
    }
    let slow_head = once(&store, &faults.url("/slow-head"), 1500).await;
    let slow_body = once(&store, &faults.url("/slow-body"), 1500).await;
    let huge = once(&store, &faults.url("/huge"), 10_000).await;
    let dns = once(&store, UNRESOLVABLE, 5000).await;
    let bad_tls = once(&store, &tls.url("/hook"), 5000).await;

    // Slow-loris before the headers end: no answer in time, a `timeout` at 1.5 s.
    let (class, error, took) = only_attempt(&wait_final(&store, slow_head, T).await);
    assert_eq!(class, ErrorClass::Timeout, "{error}");
    assert!(error.starts_with("timed out"), "{error}");
    assert!(within(took, 1500), "slow head took {took:?}");
    // Slow-loris body behind a 500: the status decides (`server`), the body read ends at the
    // same timeout with what arrived.
    let (class, error, took) = only_attempt(&wait_final(&store, slow_body, T).await);
    assert_eq!(class, ErrorClass::Server, "{error}");
    assert!(error.starts_with("HTTP 500: s"), "{error}");
    assert!(within(took, 1500), "slow body took {took:?}");
    // A 10 GiB body behind a 500: 512 bytes kept, the connection dropped.
    let (class, error, _) = only_attempt(&wait_final(&store, huge, T).await);
    assert_eq!(class, ErrorClass::Server, "{error}");
    assert_eq!(error, format!("HTTP 500: {}…", "h".repeat(512)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = faults.sent();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(faults.sent(), sent, "the huge body is no longer read");
    assert!(
        sent < 64 * 1024 * 1024,
        "{sent} bytes left the server: socket buffers, not the body"
    );
    // A name that does not resolve, and a certificate nobody signed: `timeout` (retried by
    // the timeout rule), with the cause in the message.
    let (class, error, _) = only_attempt(&wait_final(&store, dns, T).await);
    assert_eq!(class, ErrorClass::Timeout, "{error}");
    assert!(error.to_lowercase().contains("dns"), "{error}");
    let (class, error, _) = only_attempt(&wait_final(&store, bad_tls, T).await);
    assert_eq!(class, ErrorClass::Timeout, "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(
        tls.sent(),
        0,
        "nothing was served over the refused TLS session"
    );

    // 429 ×3 with `Retry-After: 1`, then 200: three `rate_limit` snoozes of the whole second
    // (never earlier), then completed; the 5xx burst: three `server` failures, then completed.
    for id in storm {
        let job = wait_final(&store, id, T).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(job.attempts.len(), 4, "{job:?}");
        for attempt in &job.attempts[..3] {
            assert_eq!(attempt.error_class, Some(ErrorClass::RateLimit), "{job:?}");
            assert!(attempt.next_delay_ms >= Some(1000), "{job:?}");
        }
        let key = job.args["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .nth(2)
            .unwrap();
        let hits = receiver.hits_on(&format!("/ratelimited/{key}/"));
        for pair in hits.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(990),
                "called again after {gap:?}"
            );
        }
    }
    for id in burst {
        let job = wait_final(&store, id, T).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        let classes: Vec<_> = job.attempts.iter().map(|a| a.error_class).collect();
        let server = Some(ErrorClass::Server);
        assert_eq!(classes, vec![server, server, server, None], "{job:?}");
    }
    shutdown.cancel();
    running.await.expect("pool stops");
}

/// How long a test waits for a job to settle.
const T: Duration = Duration::from_secs(30);

/// Whether `took` ended at a timeout of `ms` (not before, and not much after).
fn within(took: Duration, ms: u64) -> bool {
    took >= Duration::from_millis(ms) && took < Duration::from_millis(ms + 1500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_http_kind_postgres() {
    http_kind_faults(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_http_kind_sqlite() {
    http_kind_faults(Backend::Sqlite).await;
}

/// The first attempt's class of `delivery`'s job.
async fn first_class(store: &Store, delivery: &Value) -> Option<ErrorClass> {
    let job = JobId(delivery["job_id"].as_i64()?);
    store.job(job).await.ok()?.attempts.first()?.error_class
}

/// Webhook deliveries to a huge body, a self-signed certificate and a name that does not
/// resolve: `server` with 16 KiB of the body logged (and marked truncated), `timeout` with
/// the cause for the other two.
async fn webhook_faults(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let faults = FaultServer::start().await;
    let tls = FaultServer::start_tls().await;
    let mut endpoints = Vec::new();
    for url in [
        faults.url("/huge"),
        tls.url("/hook"),
        UNRESOLVABLE.to_owned(),
    ] {
        let created = hangar.create(&owner, "ws_1", json!({"url": url})).await;
        endpoints.push(created["id"].as_str().expect("id").to_owned());
    }
    hangar
        .publish(&owner, &event("evt_1", "trip.created", "ws_1"))
        .await;

    let mut firsts = Vec::new();
    for endpoint in &endpoints {
        let found = wait_for("a failed attempt of the delivery", T, || async {
            let deliveries = hangar.deliveries(&owner, "ws_1", endpoint).await;
            let delivery = deliveries.first()?.clone();
            if delivery["attempts"].as_array().is_none_or(Vec::is_empty) {
                return None;
            }
            first_class(&store, &delivery).await?;
            Some(delivery)
        })
        .await;
        firsts.push(found);
    }
    let huge = &firsts[0];
    assert_eq!(
        first_class(&store, huge).await,
        Some(ErrorClass::Server),
        "{huge}"
    );
    let attempt = &huge["attempts"][0];
    assert_eq!(attempt["status"], 500, "{attempt}");
    assert_eq!(attempt["body_truncated"], true, "{attempt}");
    let body = attempt["response_body"].as_str().unwrap_or_default();
    assert!(
        !body.is_empty() && body.len() <= 16 * 1024,
        "{} bytes kept",
        body.len()
    );
    let per_connection = faults.sent() / faults.connections().max(1);
    assert!(
        per_connection < 32 * 1024 * 1024,
        "{per_connection} bytes sent per connection: the body was not read to its end"
    );
    for (delivery, cause) in [(&firsts[1], "certificate"), (&firsts[2], "dns")] {
        assert_eq!(
            first_class(&store, delivery).await,
            Some(ErrorClass::Timeout),
            "{delivery}"
        );
        let error = delivery["last_error"].as_str().unwrap_or_default();
        assert!(error.to_lowercase().contains(cause), "{delivery}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_webhook_delivery_postgres() {
    webhook_faults(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_webhook_delivery_sqlite() {
    webhook_faults(Backend::Sqlite).await;
}
