//! Alerts delivered: channels on real PostgreSQL and SQLite, the real `hangar serve` with its
//! dispatcher and `alerts` pool, the scripted HTTP receiver as Slack and webhook endpoint, and
//! a small SMTP server written here (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT) that
//! answers what a test scripts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hangar_workers::alerts::deliver::send_test;
use hangar_workers::alerts::dispatcher::Dispatcher;
use hangar_workers::alerts::model::AlertKind;
use hangar_workers::alerts::{
    AlertContext, ChannelConfig, EmailConfig, KINDS, NewChannel, TlsMode, channels,
};
use hangar_workers::clock::ManualClock;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{JobFilter, JobId, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::{Keyring, MasterKey};
use hangar_workers::store::Store;
use hmac::{Hmac, Mac};
use sqlx::Row;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{ANY_PORT, Backend, Receiver, TEST_MASTER_KEY, TestDb, stdout_ok, wait_for};

const SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy1sb25nIQ==";
const SLACK_TOKEN: &str = "T000SECRET/B000SECRET/xoxtoken";

fn pools() -> &'static str {
    r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
poll_interval_ms = 100
lease_ms = 2000
max_attempts = 1

[[pool]]
name = "alerts"
queue = "alerts"
kinds = ["alert_slack", "alert_email", "alert_webhook"]
poll_interval_ms = 100
lease_ms = 2000
[pool.retry.server]
max_retries = 2
base_delay_ms = 100
max_delay_ms = 200
"#
}

/// Waits until every alert delivery job is final: no try of a notice is still to come.
async fn deliveries_settled(store: &Store) {
    wait_for(
        "the deliveries to settle",
        Duration::from_secs(20),
        || async {
            let jobs = store
                .jobs(&JobFilter {
                    limit: 10_000,
                    ..Default::default()
                })
                .await
                .ok()?;
            jobs.iter()
                .filter(|j| KINDS.contains(&j.kind.as_str()))
                .all(|j| j.state.is_final())
                .then_some(())
        },
    )
    .await;
}

/// How many notices a dispatcher whose clock stands an hour ahead finds due (and enqueues).
async fn due_in_an_hour(store: &Store) -> u64 {
    let pools = pool_config::parse("test", pools()).expect("pools");
    let clock = ManualClock::new(chrono::Utc::now() + chrono::Duration::hours(1));
    let routes = Routes::new(&pools, &Registry::builtin());
    let dispatcher =
        Dispatcher::new(store.clone(), routes, Duration::from_secs(1)).with_clock(clock.clock());
    dispatcher.run_once().await.expect("dispatch").enqueued
}

fn add_channel(db: &TestDb, args: &[&str]) -> String {
    let mut full = vec!["alerts", "channels", "add"];
    full.extend_from_slice(args);
    stdout_ok(&db.run(&full)).trim().to_owned()
}

async fn enqueue_flaky(db: &TestDb, url: &str) -> JobId {
    let mut job = NewJob::new("http", serde_json::json!({"url": url}));
    job.workspace_id = Some("ws_1".into());
    job.max_attempts = 1;
    db.store().await.enqueue(&job).await.expect("enqueue").id
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What a receiver checks: both signatures over the raw body, with the endpoint's secret.
fn verify_signature(hit: &crate::support::Hit) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let h = |n: &str| {
        hit.headers
            .get(n)
            .cloned()
            .unwrap_or_else(|| panic!("header {n}"))
    };
    let ts = h("x-planeconnection-timestamp");
    let hex: String = hmac(&key, &[ts.as_bytes(), b".", hit.body.as_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(h("x-planeconnection-signature"), format!("v1={hex}"));
    let std_sig = base64::engine::general_purpose::STANDARD.encode(hmac(
        &key,
        &[
            h("webhook-id").as_bytes(),
            b".",
            h("webhook-timestamp").as_bytes(),
            b".",
            hit.body.as_bytes(),
        ],
    ));
    assert_eq!(h("webhook-signature"), format!("v1,{std_sig}"));
    assert!(h("x-planeconnection-event").starts_with("alert."));
    assert!(!h("x-planeconnection-delivery-id").is_empty());
}

fn count(receiver: &Receiver, prefix: &str, needle: &str) -> usize {
    receiver
        .hits_on(prefix)
        .iter()
        .filter(|h| h.body.contains(needle))
        .count()
}

async fn once_per_incident_reminder_ack_resolved(backend: Backend) {
    let db = TestDb::new(backend).await;
    let _ = db.store().await;
    db.pools(pools());
    let receiver = Receiver::start().await;
    let slack_url = receiver.url(&format!("/slack/{SLACK_TOKEN}"));
    add_channel(
        &db,
        &[
            "slack",
            "--url",
            &slack_url,
            "--workspace",
            "ws_1",
            "--remind-every-ms",
            "1000",
        ],
    );
    add_channel(
        &db,
        &[
            "webhook",
            "--url",
            &receiver.url("/hook"),
            "--secret",
            SECRET,
        ],
    );

    // Secrets at rest: the raw column holds no plaintext; listings show hosts only.
    let store = db.store().await;
    let raw: Vec<String> = match db.database().await.pool() {
        hangar_workers::db::Pool::Postgres(s) => {
            sqlx::query("SELECT config_sealed FROM hangar_alert_channels")
                .fetch_all(s)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        }
        hangar_workers::db::Pool::Sqlite(s) => {
            sqlx::query("SELECT config_sealed FROM hangar_alert_channels")
                .fetch_all(s)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        }
    };
    assert_eq!(raw.len(), 2);
    for sealed in &raw {
        assert!(sealed.starts_with("hk1:"), "{sealed}");
        assert!(
            !sealed.contains("SECRET") && !sealed.contains("whsec_") && !sealed.contains("slack")
        );
    }
    for args in [
        &["alerts", "channels", "list"][..],
        &["alerts", "channels", "list", "--json"][..],
    ] {
        let out = stdout_ok(&db.run(args));
        assert!(out.contains("127.0.0.1"), "{out}");
        assert!(
            !out.contains("SECRET") && !out.contains("whsec_") && !out.contains("/slack"),
            "{out}"
        );
    }

    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command
        .env("HANGAR_ALERT_TICK_MS", "100")
        .env("HANGAR_PUBLIC_URL", "https://hangar.example.com/");
    let serve = db.spawn_command("serve", command);
    let job = enqueue_flaky(&db, &receiver.url("/flaky/inc/2/400")).await;

    let wait = Duration::from_secs(20);
    wait_for("opened on slack and webhook", wait, || async {
        (count(&receiver, "/slack", "alert opened") == 1 && receiver.hits_on("/hook").len() == 1)
            .then_some(())
    })
    .await;
    let hook = receiver.hits_on("/hook")[0].clone();
    verify_signature(&hook);
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["type"], "alert.opened");
    assert_eq!(body["data"]["alert"]["job_id"], job.0);
    let slack = &receiver.hits_on("/slack")[0].body;
    assert!(
        slack.contains("ws_1") && slack.contains(&format!("https://hangar.example.com/jobs/{job}")),
        "{slack}"
    );

    // The same incident again: occurrences rises, nothing new is sent.
    stdout_ok(&db.run(&["jobs", "retry", &job.to_string()]));
    wait_for("occurrences 2", wait, || async {
        let alerts = store.alerts(false).await.ok()?;
        alerts
            .iter()
            .any(|a| a.job_id == Some(job) && a.occurrences == 2)
            .then_some(())
    })
    .await;
    wait_for("a reminder", wait, || async {
        (count(&receiver, "/slack", "reminder 1") == 1).then_some(())
    })
    .await;
    assert_eq!(count(&receiver, "/slack", "alert opened"), 1);
    assert_eq!(
        receiver.hits_on("/hook").len(),
        1,
        "the webhook channel has no reminders"
    );

    // Acknowledged: no more reminders.
    let alert = store
        .alerts(false)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.job_id == Some(job))
        .unwrap();
    stdout_ok(&db.run(&["alerts", "ack", &alert.id.to_string()]));
    deliveries_settled(&store).await;
    let reminders = count(&receiver, "/slack", "reminder");
    assert_eq!(due_in_an_hour(&store).await, 0, "a reminder after the ack");
    deliveries_settled(&store).await;
    assert_eq!(count(&receiver, "/slack", "reminder"), reminders);

    // The job succeeds: the alert resolves and both channels hear it once.
    stdout_ok(&db.run(&["jobs", "retry", &job.to_string()]));
    wait_for("resolved notices", wait, || async {
        (count(&receiver, "/slack", "alert resolved") == 1 && receiver.hits_on("/hook").len() == 2)
            .then_some(())
    })
    .await;
    let resolved = receiver.hits_on("/hook")[1].clone();
    verify_signature(&resolved);
    assert!(resolved.body.contains("\"alert.resolved\""));
    let log = serve.log();
    assert!(
        !log.contains("SECRET") && !log.contains("whsec_"),
        "secret in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_once_per_incident_postgres() {
    once_per_incident_reminder_ack_resolved(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_once_per_incident_sqlite() {
    once_per_incident_reminder_ack_resolved(Backend::Sqlite).await;
}

async fn slack_410_disables(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    db.pools(pools());
    let receiver = Receiver::start().await;
    let id = add_channel(&db, &["slack", "--url", &receiver.url("/status/410")]);
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_ALERT_TICK_MS", "100");
    let _serve = db.spawn_command("serve", command);
    enqueue_flaky(&db, &receiver.url("/status/400")).await;
    wait_for("channel disabled", Duration::from_secs(20), || async {
        let c = channels::get(&store, &id).await.ok()?;
        (!c.enabled).then_some(())
    })
    .await;
    let alerts = store.alerts(false).await.unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == AlertKind::ChannelDisabled && a.message.contains(&id)),
        "{alerts:?}"
    );
    // One try, no retry; the disabled channel is not notified about itself.
    deliveries_settled(&store).await;
    assert_eq!(
        due_in_an_hour(&store).await,
        0,
        "a notice to the disabled channel"
    );
    assert_eq!(receiver.hits_on("/status/410").len(), 1);
    let list = stdout_ok(&db.run(&["alerts", "channels", "list"]));
    assert!(list.contains("410"), "{list}");

    // The operator fixes the cause and enables it again: its alert is resolved.
    stdout_ok(&db.run(&["alerts", "channels", "enable", &id]));
    let channel = channels::get(&store, &id).await.unwrap();
    assert!(
        channel.enabled && channel.disabled_reason.is_none(),
        "{channel:?}"
    );
    let open = store.alerts(false).await.unwrap();
    assert!(
        !open
            .iter()
            .any(|a| a.kind == AlertKind::ChannelDisabled && a.message.contains(&id)),
        "the channel_disabled alert is resolved: {open:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_slack_410_disables_postgres() {
    slack_410_disables(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_slack_410_disables_sqlite() {
    slack_410_disables(Backend::Sqlite).await;
}

/// A scripted SMTP server: replies to AUTH, MAIL and RCPT as told; records the messages.
#[derive(Clone, Default)]
struct Smtp {
    auth: Arc<Mutex<String>>,
    mail: Arc<Mutex<String>>,
    rcpt: Arc<Mutex<String>>,
    messages: Arc<Mutex<Vec<String>>>,
    logins: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    async fn start(&self) -> u16 {
        for (slot, reply) in [
            (&self.auth, "235 2.7.0 ok"),
            (&self.mail, "250 ok"),
            (&self.rcpt, "250 ok"),
        ] {
            *slot.lock().unwrap() = reply.to_owned();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let smtp = self.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(smtp.clone().session(socket));
            }
        });
        port
    }

    async fn session(self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                "250-test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".to_owned()
            } else if upper.starts_with("AUTH PLAIN") {
                self.logins
                    .lock()
                    .unwrap()
                    .push(line[10..].trim().to_owned());
                self.auth.lock().unwrap().clone()
            } else if upper.starts_with("MAIL") {
                self.mail.lock().unwrap().clone()
            } else if upper.starts_with("RCPT") {
                self.rcpt.lock().unwrap().clone()
            } else if upper.starts_with("DATA") {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut message = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    message.push_str(&l);
                    message.push('\n');
                }
                self.messages.lock().unwrap().push(message);
                "250 queued".to_owned()
            } else if upper.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                "250 ok".to_owned()
            };
            let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_smtp_classification() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let smtp = Smtp::default();
    let port = smtp.start().await;
    let channel = channels::add(
        &store,
        &keyring,
        &NewChannel {
            workspace_id: None,
            config: ChannelConfig::Email(EmailConfig {
                host: "127.0.0.1".into(),
                port,
                username: Some("ops".into()),
                password: Some("pa55word".into()),
                from: "hangar@example.com".into(),
                to: vec!["oncall@example.com".into()],
                tls: TlsMode::None,
            }),
            min_severity: "warning".into(),
            reminder_every_ms: None,
        },
    )
    .await
    .unwrap();
    assert!(!channel.summary.contains("pa55word"));
    let context = AlertContext::new(
        store.clone(),
        keyring,
        "http://127.0.0.1:8080",
        hangar_workers::targets::TargetPolicy::allow_all(),
    );
    send_test(&context, &channel.id).await.expect("delivered");
    assert_eq!(smtp.messages.lock().unwrap().len(), 1);
    assert!(smtp.messages.lock().unwrap()[0].contains("test notice"));
    let login = base64::engine::general_purpose::STANDARD
        .decode(&smtp.logins.lock().unwrap()[0])
        .unwrap();
    assert_eq!(login, b"\0ops\0pa55word");

    for (slot, reply, class) in [
        (&smtp.rcpt, "451 4.3.0 try later", ErrorClass::Server),
        (&smtp.rcpt, "550 5.1.1 no such user", ErrorClass::Client),
        (&smtp.auth, "535 5.7.8 bad credentials", ErrorClass::Auth),
    ] {
        *smtp.auth.lock().unwrap() = "235 2.7.0 ok".into();
        *smtp.rcpt.lock().unwrap() = "250 ok".into();
        *slot.lock().unwrap() = reply.to_owned();
        let failure = send_test(&context, &channel.id).await.expect_err(reply);
        assert_eq!(failure.class, class, "{reply}: {}", failure.message);
        assert!(!failure.message.contains("pa55word"));
    }
}

async fn rotate_keeps_channels_working(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let receiver = Receiver::start().await;
    let id = add_channel(&db, &["slack", "--url", &receiver.url("/rot/T1/B1/tok")]);
    stdout_ok(&db.run(&["alerts", "channels", "test", &id]));
    assert_eq!(receiver.hits_on("/rot").len(), 1);

    let new_key = stdout_ok(&db.run(&["keys", "generate"])).trim().to_owned();
    assert_eq!(
        MasterKey::parse(&new_key, "t").unwrap().to_base64(),
        new_key
    );
    stdout_ok(&db.run(&["keys", "rotate", "--new-key", &new_key]));
    // The old key alone no longer opens the secret, and the error names the channel.
    let old = db.run(&["alerts", "channels", "test", &id]);
    assert!(!old.status.success());
    let stderr = String::from_utf8_lossy(&old.stderr);
    assert!(stderr.contains(&id) && !stderr.contains("tok"), "{stderr}");
    let mut command = db.command(&["alerts", "channels", "test", &id]);
    command.env("HANGAR_MASTER_KEY", &new_key);
    stdout_ok(&command.output().unwrap());
    // NEW,OLD opens it too (the rolling-restart form).
    let mut command = db.command(&["alerts", "channels", "test", &id]);
    command.env("HANGAR_MASTER_KEY", format!("{new_key},{TEST_MASTER_KEY}"));
    stdout_ok(&command.output().unwrap());
    assert_eq!(receiver.hits_on("/rot").len(), 3);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_keys_rotate_postgres() {
    rotate_keeps_channels_working(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_keys_rotate_sqlite() {
    rotate_keeps_channels_working(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_master_key_required_on_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env_remove("HANGAR_MASTER_KEY");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HANGAR_MASTER_KEY") && stderr.contains("hangar keys generate"),
        "{stderr}"
    );

    std::fs::write(
        db.dir.path().join("hangar.toml"),
        format!("master_key = \"{TEST_MASTER_KEY}\"\n"),
    )
    .unwrap();
    let output = db.run(&["alerts", "channels", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("master_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_delivery_sqlite_key_file() {
    let db = TestDb::new(Backend::Sqlite).await;
    let _ = db.store().await;
    let receiver = Receiver::start().await;
    let mut command = db.command(&[
        "alerts",
        "channels",
        "add",
        "slack",
        "--url",
        &receiver.url("/k/T/B/x"),
    ]);
    command.env_remove("HANGAR_MASTER_KEY");
    let output = command.output().unwrap();
    let id = stdout_ok(&output).trim().to_owned();
    let key_file = db.dir.path().join("hangar.db.key");
    let text = std::fs::read_to_string(&key_file).expect("key file created");
    assert!(MasterKey::parse(&text, "file").is_ok());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("master key file") && !stderr.contains(text.trim()),
        "{stderr}"
    );
    let mut command = db.command(&["alerts", "channels", "test", &id]);
    command.env_remove("HANGAR_MASTER_KEY");
    stdout_ok(&command.output().unwrap());
}
