//! `hangar doctor`: checks what a process of this configuration needs before it starts — the
//! configuration itself, the database (reachable, its version, the schema migrated, nothing
//! newer than this binary), Redis, the master key, the pool and schedule files, the
//! private-target setting and the public URL — and prints one line per check, `ok`, `warn`
//! or `fail`, with what to fix. Read-only: it creates no database, key file or stream.
//! Exit status: 0 when nothing failed, 1 when a check failed, 2 when the configuration does
//! not load (the other checks need it).

use std::path::Path;

use serde::Serialize;

use hangar_workers::kinds::Registry;
use hangar_workers::secrets::Keyring;
use hangar_workers::store::{Store, redact_url};

use crate::config::Config;
use crate::exit::Fatal;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but probably not what production wants.
    Warn,
    /// A process of this configuration would not start, or not do its work.
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `configuration`, `database`, `schema`, `queues`, `redis`, `master key`,
    /// `pools`, `schedules`, `private targets`, `public url`.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about a warning or a failure.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// No check failed.
    ok: bool,
    checks: &'a [Check],
}

/// `hangar doctor`: runs the checks on `config` (or reports why it did not load) and prints
/// the report.
pub async fn command(config: Result<Config, Fatal>, json: bool) -> Result<(), Fatal> {
    let config = match config {
        Ok(config) => config,
        Err(fatal) => {
            let checks = [Check::fail(
                "configuration",
                fatal.message.clone(),
                "correct the setting named above (flag, environment variable or hangar.toml); the other checks need a configuration that loads",
            )];
            print(&checks, json);
            return Err(Fatal::config("doctor: the configuration does not load"));
        }
    };
    let checks = run(&config).await;
    print(&checks, json);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    match failed {
        0 => Ok(()),
        n => Err(Fatal::runtime(format!("doctor: {n} check(s) failed"))),
    }
}

/// Every check on a configuration that loaded, in the order of the report.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks = vec![Check::ok(
        "configuration",
        "loaded: every setting is valid (flags > environment > hangar.toml > defaults)",
    )];
    checks.extend(database(config).await);
    checks.push(redis(config).await);
    checks.push(master_key(config));
    checks.push(pools(config));
    checks.push(Check::ok(
        "schedules",
        format!(
            "{} schedule(s) from {}, each kind and queue run by a pool",
            config.schedules.len(),
            config.schedules_source
        ),
    ));
    checks.push(private_targets(config));
    checks.push(public_url(config));
    checks
}

/// The database and, when it answers, its schema.
async fn database(config: &Config) -> Vec<Check> {
    let url = redact_url(&config.database_url);
    let fix = if config.database_url.starts_with("sqlite:") {
        "run `hangar migrate` (or `hangar serve`, which migrates at start) to create it, or point HANGAR_DATABASE_URL at the right file"
    } else {
        "start the server or correct HANGAR_DATABASE_URL (or --database-url, database_url in hangar.toml)"
    };
    if let Err(fatal) = crate::config::probe_database(&config.database_url).await {
        return vec![Check::fail("database", fatal.message, fix)];
    }
    let store = match Store::connect_existing(&config.database_url, 2).await {
        Ok(store) => store,
        Err(error) => return vec![Check::fail("database", error.to_string(), fix)],
    };
    let db = store.database();
    let reached = match hangar_workers::store::schema::server_version(db).await {
        Ok(version) => Check::ok(
            "database",
            format!("{} {version} at {url}", db.backend_name()),
        ),
        Err(error) => {
            return vec![Check::fail(
                "database",
                format!("{url} answers but a query failed: {error}"),
                "check the user's rights on this database",
            )];
        }
    };
    let schema = match crate::store::schema_status(db).await {
        Err(error) => Check::fail(
            "schema",
            format!("cannot read the migration history: {error}"),
            "check the user's rights on _sqlx_migrations",
        ),
        Ok(status) if !status.pending.is_empty() => Check::fail(
            "schema",
            format!(
                "{} of this binary's migrations pending: {}",
                status.pending.len(),
                status.pending.join(", ")
            ),
            "run `hangar migrate` once (serve migrates at start; workers, planners and the operator commands refuse a schema that is behind)",
        ),
        Ok(status) if !status.unknown.is_empty() => Check::warn(
            "schema",
            format!(
                "up to date for this binary, and {} migration(s) it does not know (versions {}): a newer Hangar migrated this database",
                status.unknown.len(),
                status
                    .unknown
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "upgrade this binary to the fleet's version (README, \"Running it in production\")",
        ),
        Ok(status) => Check::ok(
            "schema",
            format!("up to date: {} migration(s) applied", status.applied),
        ),
    };
    let mut checks = vec![reached, schema];
    // Only on a schema that has the table: a pending migration is reported above.
    if checks.iter().all(|c| c.status != Status::Fail) {
        checks.push(paused_queues(&store).await);
    }
    store.database().close().await;
    checks
}

/// Paused queues: their jobs wait until someone resumes them.
async fn paused_queues(store: &Store) -> Check {
    match store.paused_queues().await {
        Ok(paused) if paused.is_empty() => Check::ok("queues", "none paused"),
        Ok(paused) => {
            let names: Vec<String> = paused
                .iter()
                .map(|p| {
                    format!(
                        "{} (since {})",
                        p.queue,
                        p.paused_at.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .collect();
            Check::warn(
                "queues",
                format!("paused, their jobs wait: {}", names.join(", ")),
                format!("`hangar queues resume {}` when it is time", paused[0].queue),
            )
        }
        Err(error) => Check::fail(
            "queues",
            format!("cannot read the paused queues: {error}"),
            "check the user's rights on hangar_queue_pauses",
        ),
    }
}

/// Redis, when configured.
async fn redis(config: &Config) -> Check {
    let Some(redis) = &config.redis else {
        return Check::ok(
            "redis",
            "not configured: no Redis ingress (set HANGAR_REDIS_URL to take jobs and events from the main application's stream)",
        );
    };
    match crate::redis_ingress::probe::probe(redis).await {
        Ok(found) => Check::ok(
            "redis",
            format!(
                "redis {} at {}: {} has {} entries, {} has {} dead letter(s)",
                found.version,
                redact_url(&redis.url),
                redis.stream(),
                found.ingress_len,
                redis.dead_stream(),
                found.dead_len
            ),
        ),
        Err(message) => Check::fail(
            "redis",
            message,
            "start Redis or correct HANGAR_REDIS_URL (or unset it to run without the ingress)",
        ),
    }
}

/// The master key: given and valid; or, on SQLite, the local key file.
fn master_key(config: &Config) -> Check {
    const NAME: &str = "master key";
    if let Some(text) = &config.master_key {
        return match Keyring::parse(text, &config.master_key_source) {
            Ok(ring) => Check::ok(
                NAME,
                format!(
                    "from {}: key id(s) {}",
                    config.master_key_source,
                    ring.ids()
                ),
            ),
            Err(error) => Check::fail(
                NAME,
                error.to_string(),
                "set it to the output of `hangar keys generate` (base64 of 32 bytes), the same on every process",
            ),
        };
    }
    let Some(path) = crate::keys::key_file(&config.database_url) else {
        return Check::fail(
            NAME,
            "HANGAR_MASTER_KEY is not set: on PostgreSQL serve, and workers that deliver alerts, webhooks or run integrations, do not start without it",
            "run `hangar keys generate` and set HANGAR_MASTER_KEY to its output on every process",
        );
    };
    key_file(&path)
}

/// The SQLite default's key file, read without creating it.
fn key_file(path: &Path) -> Check {
    const NAME: &str = "master key";
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::warn(
                NAME,
                format!(
                    "HANGAR_MASTER_KEY is not set and {shown} does not exist yet: the first process that needs a key creates it"
                ),
                "set HANGAR_MASTER_KEY (`hangar keys generate`) to keep the key apart from the database file",
            );
        }
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot read {shown}: {e}"),
                "give this user read access to the key file, or set HANGAR_MASTER_KEY",
            );
        }
    };
    let ring = match Keyring::parse(text.trim(), &shown.to_string()) {
        Ok(ring) => ring,
        Err(error) => {
            return Check::fail(
                NAME,
                error.to_string(),
                "restore the key file from a backup: the secrets stored with it cannot be opened without it",
            );
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            return Check::warn(
                NAME,
                format!(
                    "{shown} (key id(s) {}) is readable by other users (mode {:o})",
                    ring.ids(),
                    meta.permissions().mode() & 0o777
                ),
                format!("chmod 600 {shown}"),
            );
        }
    }
    Check::ok(NAME, format!("key file {shown}: key id(s) {}", ring.ids()))
}

/// The pools: every kind has a handler, and the engine's own kinds are run by some pool.
fn pools(config: &Config) -> Check {
    const NAME: &str = "pools";
    let mut registry = Registry::builtin_with(config.targets.clone());
    hangar_integrations::reserve_kinds(&mut registry);
    if let Err(fatal) = crate::runtime::check_kinds(&registry, &config.pools) {
        return Check::fail(
            NAME,
            fatal.message,
            "remove the kind from the pool file, or run a build that has its handler",
        );
    }
    let names: Vec<String> = config
        .pools
        .iter()
        .map(|p| format!("{} (queue {}, {} slots)", p.name, p.queue, p.concurrency))
        .collect();
    let summary = format!(
        "{} pool(s) from {}: {}",
        config.pools.len(),
        config.pools_source,
        names.join(", ")
    );
    let engine_kinds = hangar_workers::alerts::KINDS
        .iter()
        .copied()
        .chain([
            hangar_workers::webhooks::KIND,
            hangar_workers::inbound::KIND,
        ])
        .chain(hangar_integrations::KINDS);
    let unrun: Vec<&str> = engine_kinds
        .filter(|kind| config.pool_for_kind(kind).is_none())
        .collect();
    if unrun.is_empty() {
        Check::ok(NAME, summary)
    } else {
        Check::warn(
            NAME,
            format!(
                "{summary}; no pool runs {}: those jobs (alert notices, webhook deliveries, inbound events, syncs) would wait forever",
                unrun.join(", ")
            ),
            "add these kinds to a pool file (the built-in pools run every one)",
        )
    }
}

/// Whether job, webhook and provider URLs may reach private addresses.
fn private_targets(config: &Config) -> Check {
    const NAME: &str = "private targets";
    if config.targets.allows_all() {
        Check::warn(
            NAME,
            "HANGAR_ALLOW_PRIVATE_TARGETS lets job, webhook and provider URLs reach every loopback and private address (this machine, your network, cloud metadata)",
            "unset it in production, or list only the networks that must be reached (CIDRs)",
        )
    } else if config.targets.allows_private() {
        Check::ok(
            NAME,
            "only public addresses, and the private networks HANGAR_ALLOW_PRIVATE_TARGETS lists",
        )
    } else {
        Check::ok(
            NAME,
            "only public addresses: loopback and private targets are refused",
        )
    }
}

/// Where the links in alert notices point.
fn public_url(config: &Config) -> Check {
    const NAME: &str = "public url";
    let loopback = config.bind.ip().is_loopback() || config.bind.ip().is_unspecified();
    if config.public_url == format!("http://{}", config.bind) && loopback {
        Check::warn(
            NAME,
            format!(
                "{} (from the bind address): links in alert notices reach only this machine",
                config.public_url
            ),
            "set HANGAR_PUBLIC_URL to the address people open the dashboard at",
        )
    } else {
        Check::ok(NAME, config.public_url.clone())
    }
}

/// Prints the report: one aligned line per check and its fix, then a count; or JSON.
fn print(checks: &[Check], json: bool) {
    if json {
        crate::commands::output::print_json(&Report {
            ok: checks.iter().all(|c| c.status != Status::Fail),
            checks,
        });
        return;
    }
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in checks {
        println!(
            "{:<4}  {:<width$}  {}",
            check.status.word(),
            check.name,
            check.message
        );
        if let Some(fix) = &check.fix {
            println!("{:<4}  {:<width$}  fix: {fix}", "", "");
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    println!(
        "{} ok, {} warning(s), {} failure(s)",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    );
}
