//! Configuration, loaded once: command-line flag > environment > `hangar.toml` > built-in
//! default. Every error names its source and field and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hangar_schedules::file::{self as schedule_file, FileSchedule};
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::targets::TargetPolicy;
use serde::Deserialize;

use crate::exit::Fatal;

/// How long the first connection to the database may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default database: an SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hangar.db";
/// The default listen address of the HTTP server.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--database-url` / `HANGAR_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--workers-dir` / `HANGAR_WORKERS_DIR`.
    pub workers_dir: Option<PathBuf>,
    /// `--schedules-dir` / `HANGAR_SCHEDULES_DIR`.
    pub schedules_dir: Option<PathBuf>,
    /// `--bind` / `HANGAR_BIND`.
    pub bind: Option<String>,
    /// `--config`: the `hangar.toml` to read (default `./hangar.toml` when present).
    pub config_file: Option<PathBuf>,
    /// `--redis-url` / `HANGAR_REDIS_URL`.
    pub redis_url: Option<String>,
    /// `--redis-prefix` / `HANGAR_REDIS_PREFIX`.
    pub redis_prefix: Option<String>,
    /// `--ingress-batch` / `HANGAR_INGRESS_BATCH`.
    pub ingress_batch: Option<usize>,
    /// `--ingress-claim-idle-ms` / `HANGAR_INGRESS_CLAIM_IDLE_MS`.
    pub ingress_claim_idle_ms: Option<u64>,
    /// `--ingress-retain-ms` / `HANGAR_INGRESS_RETAIN_MS`.
    pub ingress_retain_ms: Option<u64>,
    /// `--ingress-dead-retain-ms` / `HANGAR_INGRESS_DEAD_RETAIN_MS`.
    pub ingress_dead_retain_ms: Option<u64>,
    /// `--allow-private-targets` / `HANGAR_ALLOW_PRIVATE_TARGETS`.
    pub allow_private_targets: Option<String>,
    /// `--public-url` / `HANGAR_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--master-key` / `HANGAR_MASTER_KEY` (never from the file).
    pub master_key: Option<String>,
    /// `--alert-tick-ms` / `HANGAR_ALERT_TICK_MS`.
    pub alert_tick_ms: Option<u64>,
}

/// `hangar.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    bind: Option<String>,
    workers_dir: Option<PathBuf>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    ingress_batch: Option<usize>,
    ingress_claim_idle_ms: Option<u64>,
    ingress_retain_ms: Option<u64>,
    ingress_dead_retain_ms: Option<u64>,
    allow_private_targets: Option<String>,
    public_url: Option<String>,
    schedules_dir: Option<PathBuf>,
    alert_tick_ms: Option<u64>,
    /// Refused with a clear message: a key in a file next to the config defeats the point.
    master_key: Option<toml::Value>,
}

/// The default key prefix of the ingress streams.
pub const DEFAULT_REDIS_PREFIX: &str = "hangar";

/// The Redis ingress settings (present when `HANGAR_REDIS_URL` is set).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://…`.
    pub url: String,
    /// Streams are `{prefix}:ingress` and `{prefix}:ingress:dead`.
    pub prefix: String,
    /// Entries read per XREADGROUP.
    pub batch: usize,
    /// A dead consumer's entries are reclaimed after this idle time.
    pub claim_idle: Duration,
    /// Acknowledged entries are trimmed from the stream once this old.
    pub retain: Duration,
    /// Dead letters are trimmed once this old.
    pub dead_retain: Duration,
}

impl RedisConfig {
    /// The ingress stream.
    pub fn stream(&self) -> String {
        format!("{}:ingress", self.prefix)
    }

    /// The dead-letter stream.
    pub fn dead_stream(&self) -> String {
        format!("{}:ingress:dead", self.prefix)
    }
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where jobs live.
    pub database_url: String,
    /// Where the HTTP server listens.
    pub bind: SocketAddr,
    /// The pools, from the workers folder or built in.
    pub pools: Vec<PoolSpec>,
    /// Where the pools came from, for logs.
    pub pools_source: String,
    /// The Redis ingress, when configured.
    pub redis: Option<RedisConfig>,
    /// Which addresses job URLs may reach.
    pub targets: TargetPolicy,
    /// Where people reach this Hangar (links in alert notices), without a trailing slash.
    pub public_url: String,
    /// The file schedules, validated against the pools, from the schedules folder or built in.
    pub schedules: Vec<FileSchedule>,
    /// Where the schedules came from, for logs.
    pub schedules_source: String,
    /// `HANGAR_MASTER_KEY` as given (`NEW[,OLD…]`); see `keys::keyring`.
    pub master_key: Option<String>,
    /// How often the alert dispatcher looks for notices to send (`HANGAR_ALERT_TICK_MS`,
    /// default 1000).
    pub alert_tick_ms: u64,
}

impl Config {
    /// Loads and validates everything.
    pub fn load(overrides: &Overrides) -> Result<Config, Fatal> {
        let file = read_file_config(overrides.config_file.as_deref())?;
        if file.master_key.is_some() {
            return Err(Fatal::config(
                "hangar.toml: master_key: not allowed in the configuration file (a key stored next to the config protects nothing); set HANGAR_MASTER_KEY or pass --master-key",
            ));
        }
        let database_url = overrides
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if database_url.trim().is_empty() {
            return Err(Fatal::config("HANGAR_DATABASE_URL is empty"));
        }
        let bind_text = overrides
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            Fatal::config(format!(
                "HANGAR_BIND: '{bind_text}' is not an address like 127.0.0.1:8080"
            ))
        })?;
        let workers_dir = overrides.workers_dir.clone().or(file.workers_dir);
        let (pools, pools_source) = match workers_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(Fatal::config(format!(
                        "HANGAR_WORKERS_DIR: '{}' is not a folder",
                        dir.display()
                    )));
                }
                (
                    pool_config::load_dir(&dir).map_err(|e| Fatal::config(e.to_string()))?,
                    dir.display().to_string(),
                )
            }
            None if has_pool_files(Path::new("workers")) => (
                pool_config::load_dir(Path::new("workers"))
                    .map_err(|e| Fatal::config(e.to_string()))?,
                "workers".to_owned(),
            ),
            None => (pool_config::builtin(), "built-in pools".to_owned()),
        };
        let redis = match overrides.redis_url.clone().or(file.redis_url) {
            None => None,
            Some(url) => Some(redis_config(
                url,
                overrides.redis_prefix.clone().or(file.redis_prefix),
                overrides.ingress_batch.or(file.ingress_batch),
                overrides
                    .ingress_claim_idle_ms
                    .or(file.ingress_claim_idle_ms),
                Retention {
                    retain_ms: overrides.ingress_retain_ms.or(file.ingress_retain_ms),
                    dead_retain_ms: overrides
                        .ingress_dead_retain_ms
                        .or(file.ingress_dead_retain_ms),
                },
            )?),
        };
        let (schedules, schedules_source) = load_schedules(
            overrides.schedules_dir.clone().or(file.schedules_dir),
            &pools,
        )?;
        let targets = TargetPolicy::parse(
            overrides
                .allow_private_targets
                .clone()
                .or(file.allow_private_targets)
                .as_deref(),
        )
        .map_err(|e| Fatal::config(format!("HANGAR_ALLOW_PRIVATE_TARGETS: {e}")))?;
        let public_url = overrides
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{bind}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(Fatal::config(format!(
                "HANGAR_PUBLIC_URL: '{public_url}' is not an http:// or https:// URL"
            )));
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        Ok(Config {
            targets,
            public_url,
            database_url,
            bind,
            pools,
            pools_source,
            redis,
            schedules,
            schedules_source,
            master_key: overrides
                .master_key
                .clone()
                .filter(|k| !k.trim().is_empty()),
            alert_tick_ms: alert_tick_ms(overrides.alert_tick_ms.or(file.alert_tick_ms))?,
        })
    }

    /// The pool that runs `kind`.
    pub fn pool_for_kind(&self, kind: &str) -> Option<&PoolSpec> {
        self.pools
            .iter()
            .find(|p| p.kinds.iter().any(|k| k == kind))
    }
}

/// How long the ingress streams keep their entries, as given.
struct Retention {
    retain_ms: Option<u64>,
    dead_retain_ms: Option<u64>,
}

/// The longest retention accepted for either stream: 365 days.
const MAX_RETAIN_MS: u64 = 365 * 86_400_000;

fn redis_config(
    url: String,
    prefix: Option<String>,
    batch: Option<usize>,
    claim_idle_ms: Option<u64>,
    retention: Retention,
) -> Result<RedisConfig, Fatal> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix:")) {
        return Err(Fatal::config(format!(
            "HANGAR_REDIS_URL: '{}' is not a Redis URL (expected redis://HOST:PORT)",
            hangar_workers::store::redact_url(&url)
        )));
    }
    let prefix = prefix.unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        return Err(Fatal::config(format!(
            "HANGAR_REDIS_PREFIX: '{prefix}' must be non-empty and without spaces"
        )));
    }
    let batch = batch.unwrap_or(500);
    if !(1..=10_000).contains(&batch) {
        return Err(Fatal::config(format!(
            "HANGAR_INGRESS_BATCH: {batch} is out of range (1 to 10000)"
        )));
    }
    let claim_idle_ms = claim_idle_ms.unwrap_or(30_000);
    if !(100..=86_400_000).contains(&claim_idle_ms) {
        return Err(Fatal::config(format!(
            "HANGAR_INGRESS_CLAIM_IDLE_MS: {claim_idle_ms} is out of range (100 to 86400000)"
        )));
    }
    let retain_ms = retention.retain_ms.unwrap_or(3_600_000);
    if retain_ms > MAX_RETAIN_MS {
        return Err(Fatal::config(format!(
            "HANGAR_INGRESS_RETAIN_MS: {retain_ms} is out of range (0 to {MAX_RETAIN_MS})"
        )));
    }
    let dead_retain_ms = retention.dead_retain_ms.unwrap_or(7 * 86_400_000);
    if !(1_000..=MAX_RETAIN_MS).contains(&dead_retain_ms) {
        return Err(Fatal::config(format!(
            "HANGAR_INGRESS_DEAD_RETAIN_MS: {dead_retain_ms} is out of range (1000 to {MAX_RETAIN_MS})"
        )));
    }
    Ok(RedisConfig {
        url,
        prefix,
        batch,
        claim_idle: Duration::from_millis(claim_idle_ms),
        retain: Duration::from_millis(retain_ms),
        dead_retain: Duration::from_millis(dead_retain_ms),
    })
}

/// The schedule files of `dir` (`HANGAR_SCHEDULES_DIR`), else of `./schedules` when it has
/// any, else the built-in file; each schedule's kind and queue checked against the pools.
fn load_schedules(
    dir: Option<PathBuf>,
    pools: &[PoolSpec],
) -> Result<(Vec<FileSchedule>, String), Fatal> {
    let (mut schedules, source) = match dir {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Fatal::config(format!(
                    "HANGAR_SCHEDULES_DIR: '{}' is not a folder",
                    dir.display()
                )));
            }
            (
                schedule_file::load_dir(&dir).map_err(|e| Fatal::config(e.to_string()))?,
                dir.display().to_string(),
            )
        }
        None if schedule_file::has_schedule_files(Path::new("schedules")) => (
            schedule_file::load_dir(Path::new("schedules"))
                .map_err(|e| Fatal::config(e.to_string()))?,
            "schedules".to_owned(),
        ),
        None => (schedule_file::builtin(), "built-in schedules".to_owned()),
    };
    let registry = Registry::builtin();
    let pool_kinds: Vec<(&str, &[String])> = pools
        .iter()
        .map(|p| (p.queue.as_str(), p.kinds.as_slice()))
        .collect();
    schedule_file::check_refs(&mut schedules, &registry.kinds(), &pool_kinds)
        .map_err(|e| Fatal::config(e.to_string()))?;
    Ok((schedules, source))
}

fn alert_tick_ms(value: Option<u64>) -> Result<u64, Fatal> {
    let ms = value.unwrap_or(1_000);
    if !(50..=600_000).contains(&ms) {
        return Err(Fatal::config(format!(
            "HANGAR_ALERT_TICK_MS: {ms} is out of range (50 to 600000)"
        )));
    }
    Ok(ms)
}

fn has_pool_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| pool_config::is_pool_file(&e.path()))
    })
}

fn read_file_config(explicit: Option<&Path>) -> Result<FileConfig, Fatal> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("hangar.toml");
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Fatal::config(format!("{}: cannot read: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| Fatal::config(format!("{}: {}", path.display(), e.message().trim())))
}

/// Opens one connection to a PostgreSQL `url` before any pool does: a pool retries a refused
/// connection until its acquire timeout and then reports only that it timed out, while this
/// says at once what the first attempt met. SQLite URLs have nothing to reach.
pub async fn probe_database(url: &str) -> Result<(), Fatal> {
    use sqlx::ConnectOptions;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(());
    }
    let redacted = hangar_workers::store::redact_url(url);
    let fail = |reason: String| Fatal::config(format!("cannot connect to {redacted}: {reason}"));
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| fail(format!("not a valid PostgreSQL URL ({e})")))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Err(_) => Err(fail(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(error)) => Err(fail(connect_reason(&error))),
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            Ok(())
        }
    }
}

/// What a failed connection attempt met, in a few words.
fn connect_reason(error: &sqlx::Error) -> String {
    use std::io::ErrorKind;
    match error {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            ErrorKind::TimedOut => "connection timed out".to_owned(),
            ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
            ErrorKind::NotFound => "host not found".to_owned(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Tls(tls) => format!("TLS failed: {tls}"),
        other => other.to_string(),
    }
}
