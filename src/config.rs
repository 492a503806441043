//! Configuration, loaded once: command-line flag > environment > `hangar.toml` > built-in
//! default. Every error names its source and field and exits with status 2. The settings are
//! declared in `settings` (one option group per concern), merged in `layers`, and checked here.

mod layers;
pub mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hangar_schedules::file::{self as schedule_file, FileSchedule};
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::targets::TargetPolicy;

use crate::exit::Fatal;
pub use layers::Flags;
use layers::Layers;
use settings::{
    AlertOptions, BindOptions, DatabaseOptions, IngressOptions, KeyOptions, PoolOptions,
    PublicUrlOptions, RedisOptions, ScheduleOptions, SyncOptions, TargetOptions,
};

/// How long the first connection to the database may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default database: an SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hangar.db";
/// The default listen address of the HTTP server.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The schemes of the database URLs Hangar opens.
const SUPPORTED_DATABASES: [&str; 3] = ["postgres://", "postgresql://", "sqlite:"];

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
    /// The master key as given (`NEW[,OLD…]`); see `keys::keyring`.
    pub master_key: Option<String>,
    /// Where the master key came from (`HANGAR_MASTER_KEY` or `--master-key`), for errors.
    pub master_key_source: String,
    /// How often the alert dispatcher looks for notices to send (default 1000).
    pub alert_tick_ms: u64,
    /// How long applied inbound changes are kept after their run (`serve`'s maintenance
    /// prunes them).
    pub sync_changes_retain: Duration,
}

impl Config {
    /// Loads and validates everything: the option groups from the layers (defaults →
    /// `hangar.toml` → environment → `flags`), each value checked and any error naming the
    /// layer it came from.
    pub fn load(config_file: Option<&Path>, flags: Flags) -> Result<Config, Fatal> {
        let layers = Layers::load(config_file, flags)?;
        let DatabaseOptions { database_url } = layers.group()?;
        let database_url = database_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if database_url.trim().is_empty() {
            return Err(layers.invalid("database_url", "is empty"));
        }
        if !SUPPORTED_DATABASES
            .iter()
            .any(|s| database_url.starts_with(s))
        {
            return Err(layers.invalid(
                "database_url",
                format!(
                    "unsupported database URL '{}' (expected postgres://… or sqlite://PATH)",
                    hangar_workers::store::redact_url(&database_url)
                ),
            ));
        }
        let BindOptions { bind } = layers.group()?;
        let bind_text = bind.unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            layers.invalid(
                "bind",
                format!("invalid socket address \"{bind_text}\" (expected an address like 127.0.0.1:8080)"),
            )
        })?;
        let PoolOptions { workers_dir } = layers.group()?;
        let (pools, pools_source) = match workers_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(layers.invalid(
                        "workers_dir",
                        format!("'{}' is not a folder", dir.display()),
                    ));
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
        let redis = redis_config(&layers, layers.group()?, layers.group()?)?;
        let ScheduleOptions { schedules_dir } = layers.group()?;
        let (schedules, schedules_source) = load_schedules(&layers, schedules_dir, &pools)?;
        let TargetOptions {
            allow_private_targets,
        } = layers.group()?;
        let targets = TargetPolicy::parse(allow_private_targets.as_deref())
            .map_err(|e| layers.invalid("allow_private_targets", e))?
            .with_remedy(
                "set HANGAR_ALLOW_PRIVATE_TARGETS (or --allow-private-targets) to allow them",
            );
        let PublicUrlOptions { public_url } = layers.group()?;
        let AlertOptions { alert_tick_ms } = layers.group()?;
        let public_url = public_url.unwrap_or_else(|| format!("http://{bind}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(layers.invalid(
                "public_url",
                format!(
                    "'{}' is not an http:// or https:// URL",
                    hangar_workers::store::redact_url(&public_url)
                ),
            ));
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        let alert_tick_ms = alert_tick_ms.unwrap_or(1_000);
        if !(50..=600_000).contains(&alert_tick_ms) {
            return Err(layers.invalid(
                "alert_tick_ms",
                format!("{alert_tick_ms} is out of range (50 to 600000)"),
            ));
        }
        let SyncOptions {
            sync_changes_retain_ms,
        } = layers.group()?;
        let sync_changes_retain_ms = sync_changes_retain_ms.unwrap_or(30 * 86_400_000);
        if !(60_000..=MAX_RETAIN_MS).contains(&sync_changes_retain_ms) {
            return Err(layers.invalid(
                "sync_changes_retain_ms",
                format!("{sync_changes_retain_ms} is out of range (60000 to {MAX_RETAIN_MS})"),
            ));
        }
        let KeyOptions { master_key } = layers.group()?;
        let master_key = master_key.filter(|k| !k.trim().is_empty());
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
            master_key_source: layers.source("master_key"),
            master_key,
            alert_tick_ms,
            sync_changes_retain: Duration::from_millis(sync_changes_retain_ms),
        })
    }

    /// The pool that runs `kind`.
    pub fn pool_for_kind(&self, kind: &str) -> Option<&PoolSpec> {
        self.pools
            .iter()
            .find(|p| p.kinds.iter().any(|k| k == kind))
    }
}

/// The longest retention accepted for either stream: 365 days.
const MAX_RETAIN_MS: u64 = 365 * 86_400_000;

/// The Redis ingress settings, checked; none without a Redis URL.
fn redis_config(
    layers: &Layers,
    redis: RedisOptions,
    ingress: IngressOptions,
) -> Result<Option<RedisConfig>, Fatal> {
    let RedisOptions {
        redis_url,
        redis_prefix,
    } = redis;
    let IngressOptions {
        ingress_batch,
        ingress_claim_idle_ms,
        ingress_retain_ms,
        ingress_dead_retain_ms,
    } = ingress;
    let Some(url) = redis_url else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix:")) {
        return Err(layers.invalid(
            "redis_url",
            format!(
                "'{}' is not a Redis URL (expected redis://HOST:PORT)",
                hangar_workers::store::redact_url(&url)
            ),
        ));
    }
    let prefix = redis_prefix.unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        return Err(layers.invalid(
            "redis_prefix",
            format!("'{prefix}' must be non-empty and without spaces"),
        ));
    }
    let batch = ingress_batch.unwrap_or(500);
    if !(1..=10_000).contains(&batch) {
        return Err(layers.invalid(
            "ingress_batch",
            format!("{batch} is out of range (1 to 10000)"),
        ));
    }
    let claim_idle_ms = ingress_claim_idle_ms.unwrap_or(30_000);
    if !(100..=86_400_000).contains(&claim_idle_ms) {
        return Err(layers.invalid(
            "ingress_claim_idle_ms",
            format!("{claim_idle_ms} is out of range (100 to 86400000)"),
        ));
    }
    let retain_ms = ingress_retain_ms.unwrap_or(3_600_000);
    if retain_ms > MAX_RETAIN_MS {
        return Err(layers.invalid(
            "ingress_retain_ms",
            format!("{retain_ms} is out of range (0 to {MAX_RETAIN_MS})"),
        ));
    }
    let dead_retain_ms = ingress_dead_retain_ms.unwrap_or(7 * 86_400_000);
    if !(1_000..=MAX_RETAIN_MS).contains(&dead_retain_ms) {
        return Err(layers.invalid(
            "ingress_dead_retain_ms",
            format!("{dead_retain_ms} is out of range (1000 to {MAX_RETAIN_MS})"),
        ));
    }
    Ok(Some(RedisConfig {
        url,
        prefix,
        batch,
        claim_idle: Duration::from_millis(claim_idle_ms),
        retain: Duration::from_millis(retain_ms),
        dead_retain: Duration::from_millis(dead_retain_ms),
    }))
}

/// The schedule files of `dir` (`HANGAR_SCHEDULES_DIR`), else of `./schedules` when it has
/// any, else the built-in file; each schedule's kind and queue checked against the pools.
fn load_schedules(
    layers: &Layers,
    dir: Option<PathBuf>,
    pools: &[PoolSpec],
) -> Result<(Vec<FileSchedule>, String), Fatal> {
    let (mut schedules, source) = match dir {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(layers.invalid(
                    "schedules_dir",
                    format!("'{}' is not a folder", dir.display()),
                ));
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

fn has_pool_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| pool_config::is_pool_file(&e.path()))
    })
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
