//! Test support: fresh databases (a new PostgreSQL database per test, or an SQLite file in a
//! temporary folder), the real `hangar` binary as a child process, waits for conditions; the
//! scripted HTTP receiver is in `receiver.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use hangar_workers::job::{Job, JobId, JobState};
use hangar_workers::store::Store;
use tempfile::TempDir;

pub use crate::receiver::{Hit, Receiver};

/// The `--bind` of every process under test: the system picks a free port when the process
/// binds, so two tests can never race for one; [`Proc::address`] reads which it got.
pub const ANY_PORT: &str = "127.0.0.1:0";

/// The master key the processes of the tests get (`HANGAR_MASTER_KEY`), so that `serve` on
/// PostgreSQL starts; a test that needs another key, or none, overrides it.
pub const TEST_MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmchISE=";

/// `hangar serve` on a port of its own, returned once it answers `/healthz`, with its base URL.
pub async fn serve_http(db: &TestDb) -> (Proc, String) {
    let serve = db.spawn("serve", &["serve", "--bind", ANY_PORT]);
    let base = format!("http://{}", serve.address().await);
    let health = format!("{base}/healthz");
    wait_for("the server", Duration::from_secs(30), || async {
        reqwest::get(&health).await.ok().map(|_| ())
    })
    .await;
    (serve, base)
}

/// Signs in to the dashboard at `base` with an API `token`; returns the session cookie's
/// value (the cookie never holds the token itself).
pub async fn dashboard_session(base: &str, token: &str) -> String {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{base}/login"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(response.status(), 303, "sign-in refused");
    let cookie = response.headers()["set-cookie"].to_str().expect("cookie");
    cookie
        .strip_prefix("hangar_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("the session cookie")
        .to_owned()
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hangar");

fn admin_url() -> String {
    std::env::var("HANGAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A fresh, empty database and a working folder for the processes of one test.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh database of `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("hangar.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let name = format!("hangar_test_{:016x}", fastrand::u64(..));
                let admin = admin_url();
                let status = Command::new("psql")
                    .args([admin.as_str(), "-qAtc", &format!("CREATE DATABASE {name}")])
                    .status()
                    .expect("psql runs");
                assert!(status.success(), "CREATE DATABASE failed on {admin}");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                TestDb {
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A migrated store on this database, for setting up and inspecting state: `hangar
    /// migrate` applies every crate's tables (the engine's, the planner's and the app's).
    pub async fn store(&self) -> Store {
        stdout_ok(&self.run(&["migrate"]));
        Store::connect(&self.url, 8).await.expect("connect")
    }

    /// Writes a pool file into this test's `workers` folder and returns the folder.
    pub fn pools(&self, toml: &str) -> PathBuf {
        let dir = self.dir.path().join("workers");
        std::fs::create_dir_all(&dir).expect("workers dir");
        std::fs::write(dir.join("pools.toml"), toml).expect("write pools");
        dir
    }

    /// Runs `hangar ARGS…` to completion against this database.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("hangar runs")
    }

    /// A `hangar` command against this database, in this test's folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("HANGAR_DATABASE_URL", &self.url)
            .env_remove("HANGAR_WORKERS_DIR")
            .env_remove("HANGAR_SCHEDULES_DIR")
            .env_remove("HANGAR_BIND")
            .env_remove("HANGAR_REDIS_URL")
            .env_remove("HANGAR_REDIS_PREFIX")
            .env_remove("HANGAR_INGRESS_BATCH")
            .env_remove("HANGAR_INGRESS_CLAIM_IDLE_MS")
            .env_remove("HANGAR_INGRESS_RETAIN_MS")
            .env_remove("HANGAR_INGRESS_DEAD_RETAIN_MS")
            .env_remove("HANGAR_PUBLIC_URL")
            // The receivers of the tests listen on loopback.
            .env("HANGAR_ALLOW_PRIVATE_TARGETS", "1")
            .env_remove("HANGAR_NEW_MASTER_KEY")
            .env_remove("HANGAR_ALERT_TICK_MS")
            .env("HANGAR_MASTER_KEY", TEST_MASTER_KEY)
            .env("HANGAR_LOG", "info")
            // The tests read the logs as text (`jobs=12`); JSON, the default off a terminal,
            // has a test of its own (`logs.rs`).
            .env("HANGAR_LOG_FORMAT", "text");
        if self.dir.path().join("workers").is_dir() {
            command.env("HANGAR_WORKERS_DIR", self.dir.path().join("workers"));
        }
        command
    }

    /// Starts `hangar ARGS…` in the background; its stderr goes to `NAME.log`.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        self.spawn_command(name, self.command(args))
    }

    /// Starts a prepared `hangar` command (see [`TestDb::command`]) in the background.
    pub fn spawn_command(&self, name: &str, mut command: Command) -> Proc {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn hangar");
        Proc { child, log }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = Command::new("psql")
                .args([
                    admin_url().as_str(),
                    "-qAtc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running `hangar` process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address the process's HTTP server listens on (`127.0.0.1:PORT`), from the
    /// `listening on ADDR` line it logs once bound; panics if the process exits first.
    pub async fn address(&self) -> String {
        wait_for(
            "the process to log its address",
            Duration::from_secs(30),
            || async { listening_address(&self.log()) },
        )
        .await
    }
}

/// `HOST:PORT` from the first `listening on HOST:PORT` in `log`.
fn listening_address(log: &str) -> Option<String> {
    let (_, rest) = log.split_once("listening on ")?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok_and(|p| p > 0))
        .then_some(addr)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stdout of a finished command, asserting it succeeded.
pub fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until job `id` reaches a final state and returns it.
pub async fn wait_final(store: &Store, id: JobId, timeout: Duration) -> Job {
    wait_for(&format!("job {id} to finish"), timeout, || async {
        let job = store.job(id).await.ok()?;
        job.state.is_final().then_some(job)
    })
    .await
}

/// Waits until job `id` is in `state`.
pub async fn wait_state(store: &Store, id: JobId, state: JobState, timeout: Duration) -> Job {
    wait_for(&format!("job {id} to be {state}"), timeout, || async {
        let job = store.job(id).await.ok()?;
        (job.state == state).then_some(job)
    })
    .await
}

/// Enqueues an `http` job through the library (as the Rust client would).
pub async fn enqueue_http(store: &Store, url: &str, extra: serde_json::Value) -> JobId {
    let mut args = serde_json::json!({"url": url, "method": "POST"});
    if let (Some(args), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            args.insert(k.clone(), v.clone());
        }
    }
    let job = hangar_workers::job::NewJob::new("http", args);
    store.enqueue(&job).await.expect("enqueue").id
}

/// A pool file for the built-in kinds with fast retry delays, so tests take seconds.
/// `keys` go into the `[[pool]]` table, `tables` after it.
pub fn fast_pools(keys: &str, tables: &str) -> String {
    format!(
        r#"
[[pool]]
name = "default"
queue = "default"
kinds = ["noop", "http"]
concurrency = 20
lease_ms = 2000
poll_interval_ms = 100
shutdown_grace_ms = 3000
{keys}

[pool.retry.timeout]
max_retries = 3
base_delay_ms = 200
max_delay_ms = 1600

[pool.retry.server]
max_retries = 5
base_delay_ms = 200
max_delay_ms = 10000

[pool.retry.internal]
max_retries = 3
base_delay_ms = 200
max_delay_ms = 10000

{tables}
"#
    )
}

/// The Redis of the machine with a key prefix of this test's own, driven with `redis-cli`
/// (a plain client, not Hangar's code). The test's keys are deleted when dropped.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> TestRedis {
        TestRedis::at(
            &std::env::var("HANGAR_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        )
    }

    /// The same, on another Redis server.
    pub fn at(url: &str) -> TestRedis {
        TestRedis {
            url: url.to_owned(),
            prefix: format!("hangar_test_{:016x}", fastrand::u64(..)),
        }
    }

    pub fn stream(&self) -> String {
        format!("{}:ingress", self.prefix)
    }

    pub fn dead_stream(&self) -> String {
        format!("{}:ingress:dead", self.prefix)
    }

    /// Runs one `redis-cli` command and returns its `--json` output parsed.
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let output = Command::new("redis-cli")
            .args(["-u", self.url.as_str(), "--json"])
            .args(args)
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success() && !text.starts_with("error:"),
            "redis-cli {args:?}: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// `XADD <stream> * msg <msg>`; returns the entry id. The value goes through stdin
    /// (`redis-cli -x`), so that it may be larger than a command-line argument.
    pub fn xadd(&self, msg: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("redis-cli")
            .args([
                "-u",
                self.url.as_str(),
                "-x",
                "XADD",
                &self.stream(),
                "*",
                "msg",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli -x");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(msg.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("wait");
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(id.contains('-'), "XADD failed: {id}");
        id
    }

    /// Many `XADD`s at once through `redis-cli --pipe` (the wire protocol, unquoted).
    pub fn xadd_many(&self, msgs: &[String]) {
        use std::io::Write;
        let mut resp = Vec::new();
        let stream = self.stream();
        for msg in msgs {
            let args = ["XADD", stream.as_str(), "*", "msg", msg.as_str()];
            write!(resp, "*{}\r\n", args.len()).unwrap();
            for arg in args {
                write!(resp, "${}\r\n{arg}\r\n", arg.len()).unwrap();
            }
        }
        let mut child = Command::new("redis-cli")
            .args(["-u", self.url.as_str(), "--pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-cli --pipe");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&resp)
            .expect("write");
        assert!(
            child.wait().expect("wait").success(),
            "redis-cli --pipe failed"
        );
    }

    /// The dead letters: (entry fields by name), oldest first.
    pub fn dead_letters(&self) -> Vec<HashMap<String, String>> {
        let entries = self.cli(&["XRANGE", &self.dead_stream(), "-", "+"]);
        entries
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                let fields = entry[1].as_array().cloned().unwrap_or_default();
                fields
                    .chunks(2)
                    .map(|kv| {
                        (
                            kv[0].as_str().unwrap_or_default().to_owned(),
                            kv[1].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// Entries of the group `hangar` read but not acknowledged.
    pub fn pending(&self) -> i64 {
        let summary = self.cli(&["XPENDING", &self.stream(), "hangar"]);
        summary[0].as_i64().unwrap_or(0)
    }

    /// Entries not acknowledged by the group `hangar`: read and pending, or not yet read.
    pub fn unacknowledged(&self) -> i64 {
        let groups = self.cli(&["XINFO", "GROUPS", &self.stream()]);
        let group = &groups[0];
        group["pending"].as_i64().unwrap_or(0) + group["lag"].as_i64().unwrap_or(0)
    }

    /// Points a `hangar` command at this Redis and prefix.
    pub fn env(&self, command: &mut Command) {
        command
            .env("HANGAR_REDIS_URL", &self.url)
            .env("HANGAR_REDIS_PREFIX", &self.prefix);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args([
                "-u",
                self.url.as_str(),
                "DEL",
                &self.stream(),
                &self.dead_stream(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The actor the tests' direct store actions record (as the CLI would).
pub fn test_actor() -> hangar_workers::job_action::Actor {
    hangar_workers::job_action::Actor::new("test", hangar_workers::job_action::ActionSource::Cli)
}
