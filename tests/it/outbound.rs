//! Outbound requests as a hostile or broken endpoint meets them: an answer whose body never
//! ends (the `http` kind and the alert webhook read a bounded excerpt and finish at once), and
//! `HTTP(S)_PROXY` in the environment (ignored: the target guard judges the real target).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hangar_workers::alerts::deliver::send_test;
use hangar_workers::alerts::{AlertContext, ChannelConfig, NewChannel, channels};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::secrets::{Keyring, MasterKey};
use hangar_workers::targets::TargetPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Backend, TestDb, enqueue_http, fast_pools, wait_final};

/// A server on loopback that answers every request `500` with a chunked body that never ends
/// (64 KiB chunks until the client hangs up); counts the bytes it managed to send.
struct EndlessBody {
    url: String,
    sent: Arc<AtomicUsize>,
}

impl EndlessBody {
    async fn start() -> EndlessBody {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/endless", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = "HTTP/1.1 500 Internal Server Error\r\n\
                                content-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {
                        counter.fetch_add(0x10000, Ordering::Relaxed);
                    }
                });
            }
        });
        EndlessBody { url, sent }
    }
}

async fn endless_body_is_cut(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    db.pools(&fast_pools("max_attempts = 1", ""));
    let server = EndlessBody::start().await;
    // A long timeout: reading the whole body would hold the attempt for a minute.
    let id = enqueue_http(
        &store,
        &server.url,
        serde_json::json!({"timeout_ms": 60_000}),
    )
    .await;
    let started = Instant::now();
    let mut worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(worker.terminate().success(), "{}", worker.log());

    assert_eq!(job.state, JobState::Failed);
    let attempt = &job.attempts[0];
    assert_eq!(attempt.http_status, Some(500), "{attempt:?}");
    assert_eq!(attempt.error_class, Some(ErrorClass::Server));
    let error = attempt.error.as_deref().unwrap();
    assert!(error.starts_with("HTTP 500: xxx"), "{error}");
    assert!(error.len() <= 600, "the excerpt is {} bytes", error.len());
    assert!(took < Duration::from_secs(15), "the attempt took {took:?}");
    assert!(
        server.sent.load(Ordering::Relaxed) < 64 << 20,
        "the worker kept reading the body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_is_read_only_up_to_the_excerpt_postgres() {
    endless_body_is_cut(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_is_read_only_up_to_the_excerpt_sqlite() {
    endless_body_is_cut(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_webhook_with_an_endless_error_body_fails_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let server = EndlessBody::start().await;
    let channel = channels::add(
        &store,
        &keyring,
        &NewChannel {
            workspace_id: None,
            config: ChannelConfig::Slack {
                webhook_url: server.url.clone(),
            },
            min_severity: "warning".into(),
            reminder_every_ms: None,
        },
    )
    .await
    .unwrap();
    let context = AlertContext::new(
        store.clone(),
        keyring,
        "http://127.0.0.1:8080",
        TargetPolicy::allow_all(),
    );
    let started = Instant::now();
    let failure = send_test(&context, &channel.id).await.expect_err("500");
    // The client's own timeout is 30 s: reading the whole body would take that long.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failure.http_status, Some(500));
    assert_eq!(failure.class, ErrorClass::Server);
    assert!(
        failure.message.starts_with("HTTP 500: xxx"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.len() <= 300,
        "{} bytes",
        failure.message.len()
    );
}

/// A listener that plays an HTTP proxy and counts the connections it gets.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            // Answer like an open proxy would, so an old client would even "succeed".
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    });
    (url, seen)
}

async fn proxy_from_env_is_ignored(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    db.pools(&fast_pools("max_attempts = 1", ""));
    let (proxy, seen) = counting_listener().await;
    // `localhost` resolves to loopback, which the default policy refuses.
    let job = NewJob::new(
        "http",
        serde_json::json!({"url": "http://localhost:9/internal", "method": "GET"}),
    );
    let id = store.enqueue(&job).await.unwrap().id;
    let mut command = db.command(&["worker", "--bind", "127.0.0.1:0"]);
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        command.env(name, &proxy);
    }
    command
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("HANGAR_ALLOW_PRIVATE_TARGETS", "0");
    let mut worker = db.spawn_command("worker", command);
    let job = wait_final(&store, id, Duration::from_secs(20)).await;
    assert!(worker.terminate().success(), "{}", worker.log());

    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let error = job.attempts[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("HANGAR_ALLOW_PRIVATE_TARGETS"), "{error}");
    assert_eq!(
        seen.load(Ordering::Relaxed),
        0,
        "the proxy got a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_from_the_environment_cannot_bypass_the_target_guard_postgres() {
    proxy_from_env_is_ignored(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_from_the_environment_cannot_bypass_the_target_guard_sqlite() {
    proxy_from_env_is_ignored(Backend::Sqlite).await;
}

/// A TCP server on loopback that greets with `banner` and answers every line with `reply`;
/// counts its connections.
async fn fake_smtp(banner: &'static str, reply: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let (read, mut write) = socket.into_split();
                let _ = write.write_all(format!("{banner}\r\n").as_bytes()).await;
                let mut lines = tokio::io::BufReader::new(read).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_hosts_obey_the_target_policy_and_errors_never_echo_the_server() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let (_serve, base) = crate::support::serve_http(&db).await;
    let admin = crate::support::stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let add = |port: u16| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let response = http
                .post(format!("{base}/api/v1/workspaces/ws_1/alert-channels"))
                .bearer_auth(&admin)
                .json(
                    &serde_json::json!({"kind": "email", "host": "127.0.0.1", "port": port,
                    "from": "hangar@example.com", "to": ["oncall@example.com"], "tls": "none"}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            response.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let test = |id: String| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let response = http
                .post(format!(
                    "{base}/api/v1/workspaces/ws_1/alert-channels/{id}/test"
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 422);
            response.json::<serde_json::Value>().await.unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // Something that is not an SMTP server: its banner is not shown.
    let (ssh, _) = fake_smtp("SSH-2.0-OpenSSH_9.6 secret-banner", "secret-reply").await;
    let message = test(add(ssh).await).await;
    assert!(
        !message.contains("secret") && !message.contains("OpenSSH"),
        "{message}"
    );
    assert!(
        message.contains("did not answer as an SMTP server"),
        "{message}"
    );
    // An SMTP server that refuses: the code, not its text.
    let (refusing, _) = fake_smtp(
        "220 mx.internal ESMTP secret-banner",
        "554 5.7.1 secret-reply",
    )
    .await;
    let message = test(add(refusing).await).await;
    assert!(
        !message.contains("secret") && !message.contains("mx.internal"),
        "{message}"
    );
    assert!(
        message.contains("rejected by the server (554)"),
        "{message}"
    );
    // Nothing listening (port 1, tcpmux, is never served on these machines).
    let closed = 1;
    let message = test(add(closed).await).await;
    assert!(message.contains("connection refused"), "{message}");

    // With the default policy, a loopback SMTP host is refused before any connection.
    let (listening, seen) = fake_smtp("220 mx ESMTP", "250 ok").await;
    let id = add(listening).await;
    let mut command = db.command(&["alerts", "channels", "test", &id]);
    command.env("HANGAR_ALLOW_PRIVATE_TARGETS", "0");
    let out = command.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("HANGAR_ALLOW_PRIVATE_TARGETS"),
        "{stderr}"
    );
    assert_eq!(seen.load(Ordering::Relaxed), 0, "the SMTP host was reached");
}
