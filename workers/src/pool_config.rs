//! Pool declarations: `workers/*.toml` files, each with one or more `[[pool]]` tables, parsed
//! and validated once at start. An error names the file and the field. `Cargo.toml` in the
//! same folder (the engine crate lives there too) is not a pool file and is skipped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::retry_policy::{ClassPolicy, LONGEST_WAIT, RateLimitPolicy, RetryPolicy};

mod error;

pub use error::{FieldProblem, PoolConfigError, PoolProblem, Syntax};

/// The pool file compiled into the binary, used when no workers folder exists.
pub const BUILTIN_POOLS: &str = include_str!("../default.toml");

/// A validated pool: one queue, its kinds, its concurrency, timeout and retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// The pool's name (`hangar worker --pool NAME`).
    pub name: String,
    /// The queue it claims from.
    pub queue: String,
    /// The job kinds it runs (and that enqueue routes to its queue by default).
    pub kinds: Vec<String>,
    /// The file it was declared in (or `built-in pools`), for messages about it.
    pub source: String,
    /// Jobs run at once by one process.
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots (leased, waiting in memory), so claims stay batched
    /// under load. 0 claims only for free slots.
    pub prefetch: usize,
    /// Longest time one attempt may take; past it, the attempt is a timeout failure.
    pub timeout: Duration,
    /// Ceiling on budget-consuming failures for jobs enqueued to this pool's kinds.
    pub max_attempts: i32,
    /// How long a claim is leased; heartbeats renew it every third of it.
    pub lease: Duration,
    /// Idle poll interval (the fallback to LISTEN/NOTIFY and in-process wake-ups).
    pub poll_interval: Duration,
    /// Most jobs claimed or completed in one statement.
    pub batch_size: usize,
    /// How long shutdown waits for running jobs before handing them back.
    pub shutdown_grace: Duration,
    /// Completed jobs are deleted this long after they finish.
    pub retention: Duration,
    /// The retry rules.
    pub retry: RetryPolicy,
    /// How a pool that runs `webhook_delivery` shares the delivery slots (`webhook_workspace_share`,
    /// `webhook_retry_share`; defaults 25 and 20); other pools ignore it.
    pub webhook_shares: crate::webhooks::Shares,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    #[serde(default)]
    pool: Vec<RawPool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    queue: Option<String>,
    kinds: Vec<String>,
    concurrency: Option<i64>,
    prefetch: Option<i64>,
    timeout_ms: Option<i64>,
    max_attempts: Option<i64>,
    lease_ms: Option<i64>,
    poll_interval_ms: Option<i64>,
    batch_size: Option<i64>,
    shutdown_grace_ms: Option<i64>,
    retention_ms: Option<i64>,
    webhook_workspace_share: Option<i64>,
    webhook_retry_share: Option<i64>,
    #[serde(default)]
    retry: RawRetry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    timeout: Option<RawClass>,
    server: Option<RawClass>,
    internal: Option<RawClass>,
    rate_limit: Option<RawRateLimit>,
    auth_retries: Option<i64>,
    server_alert_after: Option<i64>,
    jitter: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    max_retries: Option<i64>,
    base_delay_ms: Option<i64>,
    max_delay_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    max_snoozes: Option<i64>,
    max_wait_ms: Option<i64>,
    default_wait_ms: Option<i64>,
}

/// Whether `path` is a pool file: a `*.toml` other than `Cargo.toml`.
pub fn is_pool_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && path.file_name().is_some_and(|n| n != "Cargo.toml")
}

/// Reads every pool file of `dir` (see [`is_pool_file`]), in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<PoolSpec>, PoolConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PoolConfigError {
        file: dir.display().to_string(),
        problem: PoolProblem::ReadFolder(e),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_pool_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(PoolConfigError {
            file: dir.display().to_string(),
            problem: PoolProblem::NoFiles,
        });
    }
    let mut pools = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| PoolConfigError {
            file: path.display().to_string(),
            problem: PoolProblem::ReadFile(e),
        })?;
        pools.extend(parse(&path.display().to_string(), &text)?);
    }
    check_unique(&dir.display().to_string(), &pools)?;
    Ok(pools)
}

/// The built-in pools.
pub fn builtin() -> Vec<PoolSpec> {
    parse("built-in pools", BUILTIN_POOLS).unwrap_or_default()
}

/// Parses and validates one pool file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<PoolSpec>, PoolConfigError> {
    let error = |problem: PoolProblem| PoolConfigError {
        file: file.to_owned(),
        problem,
    };
    let raw: PoolFile =
        toml::from_str(text).map_err(|e| error(PoolProblem::Syntax(syntax(&e, text))))?;
    if raw.pool.is_empty() {
        return Err(error(PoolProblem::NoPool));
    }
    let pools = raw
        .pool
        .into_iter()
        .map(|p| validate(p).map_err(|e| error(e.into())))
        .map(|p| {
            p.map(|mut p| {
                p.source = file.to_owned();
                p
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(file, &pools)?;
    Ok(pools)
}

fn syntax(e: &toml::de::Error, text: &str) -> Syntax {
    Syntax {
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1)),
        message: e.message().trim().to_owned(),
    }
}

/// A field problem of the pool named `pool`.
#[derive(Debug)]
struct InPool(String, FieldProblem);

impl From<InPool> for PoolProblem {
    fn from(InPool(pool, problem): InPool) -> Self {
        PoolProblem::Field {
            pool,
            problem: Box::new(problem),
        }
    }
}

fn in_file(file: &str, problem: InPool) -> PoolConfigError {
    PoolConfigError {
        file: file.to_owned(),
        problem: problem.into(),
    }
}

fn check_unique(file: &str, pools: &[PoolSpec]) -> Result<(), PoolConfigError> {
    let mut names = HashSet::new();
    let mut kinds = HashSet::new();
    // A queue is pruned with one retention: pools that share a queue must agree on it.
    let mut retention_of: HashMap<&str, &PoolSpec> = HashMap::new();
    for pool in pools {
        if let Some(first) = retention_of.insert(pool.queue.as_str(), pool)
            && first.retention != pool.retention
        {
            return Err(in_file(
                file,
                InPool(
                    pool.name.clone(),
                    FieldProblem::RetentionDiffers {
                        retention_ms: pool.retention.as_millis(),
                        other_ms: first.retention.as_millis(),
                        other: first.name.clone(),
                        queue: pool.queue.clone(),
                    },
                ),
            ));
        }
        if !names.insert(pool.name.as_str()) {
            return Err(in_file(
                file,
                InPool(pool.name.clone(), FieldProblem::NameTwice),
            ));
        }
        for kind in &pool.kinds {
            if !kinds.insert(kind.as_str()) {
                return Err(in_file(
                    file,
                    InPool(pool.name.clone(), FieldProblem::KindTwice(kind.clone())),
                ));
            }
        }
    }
    Ok(())
}

/// `value` checked against `min..=max`, or the message naming `field`.
fn ranged(
    pool: &str,
    field: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, InPool> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(InPool(
            pool.to_owned(),
            FieldProblem::OutOfRange {
                field: field.to_owned(),
                value,
                min,
                max,
            },
        ))
    }
}

fn ms(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

const DAY_MS: i64 = 86_400_000;

fn validate(raw: RawPool) -> Result<PoolSpec, InPool> {
    let name = raw.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(InPool(raw.name, FieldProblem::Name));
    }
    let queue = raw.queue.unwrap_or_else(|| name.clone());
    if queue.is_empty() || queue.len() > 64 {
        return Err(InPool(name, FieldProblem::QueueLength));
    }
    if raw.kinds.is_empty() {
        return Err(InPool(name, FieldProblem::NoKinds));
    }
    let n = name.as_str();
    let lease = ranged(n, "lease_ms", raw.lease_ms, 15_000, 1_000, 600_000)?;
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        timeout: class(n, "retry.timeout", raw.retry.timeout, &defaults.timeout)?,
        server: class(n, "retry.server", raw.retry.server, &defaults.server)?,
        internal: class(n, "retry.internal", raw.retry.internal, &defaults.internal)?,
        rate_limit: rate_limit(n, raw.retry.rate_limit, &defaults.rate_limit)?,
        auth_retries: ranged(
            n,
            "retry.auth_retries",
            raw.retry.auth_retries,
            i64::from(defaults.auth_retries),
            0,
            1,
        )? as u32,
        server_alert_after: ranged(
            n,
            "retry.server_alert_after",
            raw.retry.server_alert_after,
            i64::from(defaults.server_alert_after),
            1,
            1_000,
        )? as u32,
        jitter: match raw.retry.jitter {
            None => defaults.jitter,
            Some(j) if (0.0..=0.2).contains(&j) => j,
            Some(j) => {
                return Err(InPool(name, FieldProblem::Jitter(j)));
            }
        },
    };
    let concurrency = ranged(n, "concurrency", raw.concurrency, 50, 1, 10_000)?;
    let shares = crate::webhooks::Shares::default();
    let webhook_shares = crate::webhooks::Shares {
        workspace: ranged(
            n,
            "webhook_workspace_share",
            raw.webhook_workspace_share,
            shares.workspace,
            1,
            100_000,
        )?,
        retries: ranged(
            n,
            "webhook_retry_share",
            raw.webhook_retry_share,
            shares.retries,
            1,
            100_000,
        )?,
    };
    Ok(PoolSpec {
        webhook_shares,
        source: String::new(),
        concurrency: concurrency as usize,
        prefetch: ranged(n, "prefetch", raw.prefetch, concurrency.min(500), 0, 10_000)? as usize,
        timeout: ms(ranged(n, "timeout_ms", raw.timeout_ms, 60_000, 1, DAY_MS)?),
        max_attempts: ranged(n, "max_attempts", raw.max_attempts, 6, 1, 1_000)? as i32,
        lease: ms(lease),
        poll_interval: ms(ranged(
            n,
            "poll_interval_ms",
            raw.poll_interval_ms,
            1_000,
            10,
            60_000,
        )?),
        batch_size: ranged(n, "batch_size", raw.batch_size, 500, 1, 10_000)? as usize,
        shutdown_grace: ms(ranged(
            n,
            "shutdown_grace_ms",
            raw.shutdown_grace_ms,
            10_000,
            0,
            600_000,
        )?),
        retention: ms(ranged(
            n,
            "retention_ms",
            raw.retention_ms,
            DAY_MS,
            0,
            365 * DAY_MS,
        )?),
        kinds: raw.kinds,
        retry,
        name,
        queue,
    })
}

fn class(
    pool: &str,
    field: &str,
    raw: Option<RawClass>,
    default: &ClassPolicy,
) -> Result<ClassPolicy, InPool> {
    let Some(raw) = raw else {
        return Ok(*default);
    };
    let max_retries = ranged(
        pool,
        &format!("{field}.max_retries"),
        raw.max_retries,
        i64::from(default.max_retries),
        0,
        1_000,
    )?;
    let base = ranged(
        pool,
        &format!("{field}.base_delay_ms"),
        raw.base_delay_ms,
        default.base_delay.as_millis() as i64,
        0,
        DAY_MS,
    )?;
    let max = ranged(
        pool,
        &format!("{field}.max_delay_ms"),
        raw.max_delay_ms,
        default.max_delay.as_millis() as i64,
        0,
        7 * DAY_MS,
    )?;
    if max < base {
        return Err(InPool(
            pool.to_owned(),
            FieldProblem::DelayBelowBase {
                field: field.to_owned(),
                max,
                base,
            },
        ));
    }
    Ok(ClassPolicy {
        max_retries: max_retries as u32,
        base_delay: ms(base),
        max_delay: ms(max),
    })
}

fn rate_limit(
    pool: &str,
    raw: Option<RawRateLimit>,
    default: &RateLimitPolicy,
) -> Result<RateLimitPolicy, InPool> {
    let Some(raw) = raw else {
        return Ok(*default);
    };
    let field = "retry.rate_limit";
    let longest = LONGEST_WAIT.as_millis() as i64;
    // Unset means no cap of the pool's own: the provider's Retry-After is honoured in full.
    let max_wait = match raw.max_wait_ms {
        None => default.max_wait,
        Some(value) => Some(ms(ranged(
            pool,
            &format!("{field}.max_wait_ms"),
            Some(value),
            longest,
            1,
            longest,
        )?)),
    };
    let default_wait = ranged(
        pool,
        &format!("{field}.default_wait_ms"),
        raw.default_wait_ms,
        default.default_wait.as_millis() as i64,
        0,
        7 * DAY_MS,
    )?;
    if let Some(max) = max_wait
        && ms(default_wait) > max
    {
        return Err(InPool(
            pool.to_owned(),
            FieldProblem::DefaultWaitAboveMax {
                field: field.to_owned(),
                default_wait,
                max_wait: max.as_millis(),
            },
        ));
    }
    Ok(RateLimitPolicy {
        max_snoozes: ranged(
            pool,
            &format!("{field}.max_snoozes"),
            raw.max_snoozes,
            i64::from(default.max_snoozes),
            0,
            10_000,
        )? as u32,
        max_wait,
        default_wait: ms(default_wait),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_limit_of(table: &str) -> Result<RateLimitPolicy, PoolConfigError> {
        let text =
            format!("[[pool]]\nname = \"p\"\nkinds = [\"k\"]\n[pool.retry.rate_limit]\n{table}");
        parse("pools.toml", &text).map(|mut pools| pools.remove(0).retry.rate_limit)
    }

    #[test]
    fn max_wait_is_unset_by_default_and_validated_when_set() {
        assert_eq!(builtin()[0].retry.rate_limit.max_wait, None);
        assert_eq!(rate_limit_of("max_snoozes = 3").unwrap().max_wait, None);
        let set = rate_limit_of("max_wait_ms = 3600000").unwrap();
        assert_eq!(set.max_wait, Some(Duration::from_secs(3_600)));
        for (table, says) in [
            (
                "max_wait_ms = 0",
                "retry.rate_limit.max_wait_ms: 0 is out of range",
            ),
            (
                "max_wait_ms = 31536000001",
                "max_wait_ms: 31536000001 is out of range",
            ),
            (
                "max_wait_ms = 1000\ndefault_wait_ms = 60000",
                "default_wait_ms: 60000 is above max_wait_ms 1000",
            ),
        ] {
            let error = rate_limit_of(table).unwrap_err().to_string();
            assert!(error.starts_with("pools.toml: pool 'p': "), "{error}");
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn the_webhook_shares_default_and_are_set_per_pool() {
        let webhooks = builtin()
            .into_iter()
            .find(|p| p.queue == "webhooks")
            .unwrap();
        assert_eq!(webhooks.webhook_shares, crate::webhooks::Shares::default());
        let text = "[[pool]]\nname = \"w\"\nkinds = [\"webhook_delivery\"]\n\
                    webhook_workspace_share = 5\nwebhook_retry_share = 2\n";
        let shares = parse("pools.toml", text).unwrap().remove(0).webhook_shares;
        assert_eq!((shares.workspace, shares.retries), (5, 2));
        let error = parse("pools.toml", &text.replace("= 5", "= 0"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("webhook_workspace_share: 0 is out of range"),
            "{error}"
        );
    }
}
