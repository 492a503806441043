//! Owns the retry decision: given a failed attempt and what the job has used of its budget
//! ([`Spent`]: each class counted on its own), a pure function says whether to retry, snooze
//! or fail, how long to wait and which alert (if any) to raise. No I/O, clock reads or
//! randomness happen here; the caller supplies `now` (the database's clock) and the jitter
//! sample.

use std::time::{Duration, SystemTime};

use crate::error_class::ErrorClass;
use crate::retry_after::parse_retry_after;
pub use crate::retry_budget::Spent;

/// The longest wait Hangar schedules: a `Retry-After` further out than this (a year) fails the
/// job with an alert instead, as a pool's own `max_wait` does; it is never called earlier.
pub const LONGEST_WAIT: Duration = Duration::from_secs(365 * 86_400);

/// Exponential backoff limits for one error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassPolicy {
    /// Failures of this class that are still retried (counted on their own, since the budget
    /// began); failure number `max_retries + 1` of the class is final.
    pub max_retries: u32,
    /// Wait after the first failure; doubles with each further failure.
    pub base_delay: Duration,
    /// Upper bound on any single backoff wait.
    pub max_delay: Duration,
}

/// Limits for HTTP 429 snoozes, which do not consume the failure budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Snoozes allowed (per budget) before a further 429 fails the job: the cap that keeps a
    /// provider that always answers 429 from looping forever.
    pub max_snoozes: u32,
    /// Longest wait this pool accepts from a Retry-After; a longer one fails the job with an
    /// alert (it is never shortened into an early call). `None`: up to [`LONGEST_WAIT`].
    pub max_wait: Option<Duration>,
    /// Wait used when Retry-After is absent or unparseable.
    pub default_wait: Duration,
}

/// Every knob of the retry decision; `Default` holds the product defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Policy for timeouts and connection resets/refusals.
    pub timeout: ClassPolicy,
    /// Policy for HTTP 5xx.
    pub server: ClassPolicy,
    /// Policy for failures of the job handler itself.
    pub internal: ClassPolicy,
    /// Policy for HTTP 429.
    pub rate_limit: RateLimitPolicy,
    /// Retries allowed after a successful token refresh on HTTP 401, per budget.
    pub auth_retries: u32,
    /// Server failure number that raises the single `JobFailing` alert (0 = never).
    pub server_alert_after: u32,
    /// Largest relative jitter, e.g. 0.2 for ±20 %; sanitised into [0, 1].
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: class_policy(3, 1, 8),
            server: class_policy(5, 1, 3_600),
            internal: class_policy(3, 1, 3_600),
            rate_limit: RateLimitPolicy {
                max_snoozes: 20,
                max_wait: None,
                default_wait: Duration::from_secs(60),
            },
            auth_retries: 1,
            server_alert_after: 3,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Whether a 401 with these counts should first refresh the token: on the budget's first
    /// 401, and on later ones while auth retries remain. A 401 right after a refresh gets
    /// none (no refresh loop); an operator's retry starts a fresh budget, so it gets one.
    pub fn refreshes_token(&self, spent: &Spent) -> bool {
        spent.auth < self.auth_retries.max(1)
    }
}

fn class_policy(max_retries: u32, base_secs: u64, max_secs: u64) -> ClassPolicy {
    ClassPolicy {
        max_retries,
        base_delay: Duration::from_secs(base_secs),
        max_delay: Duration::from_secs(max_secs),
    }
}

/// Result of the token refresh the caller attempted after an HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new token was obtained.
    Refreshed,
    /// The refresh was attempted and failed.
    Failed {
        /// Why the refresh failed, for the alert.
        reason: String,
    },
    /// The job's integration has no token refresher.
    NotConfigured,
    /// The refresh could not be tried now (the token endpoint answered 5xx or 429, timed
    /// out, or another process holds the connection's refresh): never a credential failure.
    /// [`crate::failure`] retries such an attempt as a `server` failure, by that table.
    Unavailable {
        /// Why, for the attempt's record.
        reason: String,
    },
}

/// Everything `decide` needs to know about one failed attempt.
#[derive(Debug, Clone)]
pub struct FailureInput<'a> {
    /// Class of this failure.
    pub class: ErrorClass,
    /// What the job had used of its budget before this failure.
    pub spent: Spent,
    /// The job's overall ceiling: it fails at budget-consuming failure number `max_attempts`.
    pub max_attempts: u32,
    /// Raw Retry-After header of this response.
    pub retry_after: Option<&'a str>,
    /// For Auth only: outcome of the token refresh the caller attempted.
    pub refresh: Option<RefreshOutcome>,
    /// The database's current time, used to resolve an HTTP-date Retry-After (the run_at it
    /// leads to is written against the database's clock too).
    pub now: SystemTime,
    /// Uniform sample in [-1.0, 1.0] from the caller; NaN counts as 0.
    pub jitter_sample: f64,
}

pub use crate::alerts::model::{AlertKind, Severity};

/// An alert to raise alongside the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What the alert is about.
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// One human-readable line.
    pub message: String,
}

/// What happens to the job next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Run again after `delay`, counting this failure against the budget.
    Retry,
    /// Run again after `delay` without counting against the budget.
    Snooze,
    /// Stop; the job has failed.
    Fail,
}

impl Verdict {
    /// Stable snake_case name (`retry`, `snooze`, `fail`), as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Retry => "retry",
            Verdict::Snooze => "snooze",
            Verdict::Fail => "fail",
        }
    }
}

/// The full outcome of `decide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Retry, snooze or fail.
    pub verdict: Verdict,
    /// Wait before the next attempt (ZERO for Fail).
    pub delay: Duration,
    /// Whether this failure counts against the job's budget (false only for Snooze).
    pub consumes_budget: bool,
    /// Alert to raise, if any.
    pub alert: Option<Alert>,
    /// Whether an admin must re-authorise the integration.
    pub needs_reauth: bool,
    /// One human line recorded on the attempt.
    pub reason: String,
}

/// `base * 2^(failure-1)` capped at `max`; failure 0 counts as 1 and nothing overflows.
pub fn backoff(base: Duration, max: Duration, failure: u32) -> Duration {
    // Saturating at u128::MAX is exact for the comparison below: Duration::MAX
    // is under 2^94 ns, so any saturated product is past every possible cap.
    let factor = 1u128
        .checked_shl(failure.saturating_sub(1))
        .unwrap_or(u128::MAX);
    let nanos = base.as_nanos().saturating_mul(factor);
    if nanos >= max.as_nanos() {
        return max;
    }
    // Below max.as_nanos(), so the seconds fit in u64.
    Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    )
}

/// Decides what to do after one failed attempt.
pub fn decide(policy: &RetryPolicy, input: &FailureInput) -> Decision {
    use ErrorClass as C;
    match input.class {
        C::Timeout => decide_backoff(policy, input, &policy.timeout, Severity::Warning),
        C::Server => decide_backoff(policy, input, &policy.server, Severity::Critical),
        C::Internal => decide_backoff(policy, input, &policy.internal, Severity::Warning),
        C::Auth => decide_auth(policy, input),
        C::RateLimit => decide_rate_limit(policy, input),
        C::Client => fail(
            "client error: data problem, not retried".to_owned(),
            AlertKind::JobFailed,
            Severity::Warning,
            "job failed: client error (data problem, not retried)".to_owned(),
        ),
    }
}

fn decide_backoff(
    policy: &RetryPolicy,
    input: &FailureInput,
    class_policy: &ClassPolicy,
    final_severity: Severity,
) -> Decision {
    let label = label(input.class);
    let standing = Standing::of(input, class_policy.max_retries);
    let (failure, at) = (standing.class_n, standing.to_string());

    if failure > class_policy.max_retries {
        return fail(
            format!("{label} ({at}): retries exhausted"),
            AlertKind::JobFailed,
            final_severity,
            format!("job failed: {label} after {failure} failures, retries exhausted"),
        );
    }
    if let Some(decision) = ceiling(input, &standing, label, final_severity) {
        return decision;
    }

    let raw = backoff(class_policy.base_delay, class_policy.max_delay, failure);
    let delay = jittered(raw, policy.jitter, input.jitter_sample);
    let reason = format!("{label} ({at}): retry in {}", fmt_duration(delay));
    let mut decision = retry(delay, reason);
    if input.class == ErrorClass::Server && failure == policy.server_alert_after {
        decision.alert = Some(Alert {
            kind: AlertKind::JobFailing,
            severity: Severity::Warning,
            message: format!("job failing: {failure} server errors so far, still retrying"),
        });
    }
    decision
}

fn decide_auth(policy: &RetryPolicy, input: &FailureInput) -> Decision {
    let standing = Standing::of(input, policy.auth_retries);
    // A 401 is final unless the refresh works, so "of N" would mislead here.
    let mut at = format!("failure {}", standing.class_n);
    if standing.job_n != standing.class_n {
        at += &format!(
            ", job failure {} of {}",
            standing.job_n, standing.max_attempts
        );
    }
    at += since_operator_retry(&input.spent);
    let why = match &input.refresh {
        // The budget's earlier 401 was followed by a refresh and a retry (nothing else lets
        // a job go on after a 401), so the refreshed token was refused too; callers do not
        // refresh again (no loop) until an operator's retry starts a fresh budget.
        _ if !policy.refreshes_token(&input.spent) => "got 401 again after refresh".to_owned(),
        Some(RefreshOutcome::Refreshed) if policy.auth_retries == 0 => {
            "token refreshed but auth retries are disabled for this pool".to_owned()
        }
        Some(RefreshOutcome::Refreshed) => {
            return ceiling(input, &standing, "auth error", Severity::Warning).unwrap_or_else(
                || {
                    // The new token is usable at once, so waiting (or jitter) gains nothing.
                    retry(
                        Duration::ZERO,
                        format!("auth error ({at}): token refreshed, retry now"),
                    )
                },
            );
        }
        Some(RefreshOutcome::Failed { reason }) => format!("refresh failed: {reason}"),
        Some(RefreshOutcome::NotConfigured) => "no token refresher for this job".to_owned(),
        // `failure::handle` turns these into server failures before deciding; a caller that
        // passes one here gets the conservative answer.
        Some(RefreshOutcome::Unavailable { reason }) => format!("refresh unavailable: {reason}"),
        None => "no token refresh was attempted for this job".to_owned(),
    };
    let mut decision = fail(
        format!("auth error ({at}): {why}; re-authorisation required"),
        AlertKind::ReauthRequired,
        Severity::Critical,
        format!("re-authorisation required: {why}"),
    );
    decision.needs_reauth = true;
    decision
}

fn decide_rate_limit(policy: &RetryPolicy, input: &FailureInput) -> Decision {
    let rl = &policy.rate_limit;
    let parsed = input
        .retry_after
        .and_then(|raw| parse_retry_after(raw, input.now));
    let default = fmt_duration(rl.default_wait);
    let source = match (input.retry_after, parsed) {
        (None, _) => format!("no Retry-After, default {default}"),
        (Some(raw), None) => format!(
            "Retry-After {:?} unparseable, default {default}",
            shorten(raw)
        ),
        (Some(raw), Some(_)) => format!("Retry-After {:?}", shorten(raw)),
    };

    let times = input.spent.snoozes.saturating_add(1);
    let since = since_operator_retry(&input.spent);
    if input.spent.snoozes >= rl.max_snoozes {
        return fail(
            format!(
                "rate limited {times} times{since}, {source}: snooze limit {} reached",
                rl.max_snoozes
            ),
            AlertKind::JobFailed,
            Severity::Warning,
            format!("job failed: rate limited {times} times"),
        );
    }

    // The whole wait the provider asked for, or none: a wait longer than the pool accepts
    // fails the job (with an alert) rather than calling the provider early.
    let base = parsed.unwrap_or(rl.default_wait);
    let (limit, whose) = match rl.max_wait {
        Some(max) if max < LONGEST_WAIT => (max, "this pool's max_wait_ms"),
        _ => (LONGEST_WAIT, "the longest wait Hangar schedules"),
    };
    if base > limit {
        let (asked, limit) = (fmt_duration(base), fmt_duration(limit));
        return fail(
            format!(
                "rate limited, {source}: a wait of {asked} is longer than {whose} ({limit}); not retried earlier"
            ),
            AlertKind::JobFailed,
            Severity::Warning,
            format!(
                "job failed: the provider asked to wait {asked}, longer than {whose} ({limit})"
            ),
        );
    }
    // Jitter only ever adds, so the wait never undercuts the header; base is at most a year,
    // so the jittered wait fits every type below.
    let up = clamp_or_zero(input.jitter_sample, -1.0, 1.0).abs();
    let factor = 1.0 + clamp_or_zero(policy.jitter, 0.0, 1.0) * up;
    let jittered_ms = (base.as_secs_f64() * 1_000.0 * factor).round() as u128;
    // Rounding up the un-jittered wait keeps a sub-millisecond header from
    // being undercut by float rounding.
    let delay_ms = jittered_ms.max(base.as_nanos().div_ceil(1_000_000));
    let delay = Duration::from_millis(u64::try_from(delay_ms).unwrap_or(u64::MAX));
    let wait = fmt_duration(delay);
    Decision {
        verdict: Verdict::Snooze,
        consumes_budget: false,
        reason: format!(
            "rate limited (snooze {times} of {}{since}), {source}: retry in {wait}",
            rl.max_snoozes
        ),
        ..retry(delay, String::new())
    }
}

/// Where a budget-consuming failure stands: its number in its class and in the job's budget,
/// and the limits that apply to it, as the attempt's decision text shows them.
struct Standing {
    /// This failure's number among its class's failures in this budget.
    class_n: u32,
    /// The class failure at which the job fails if the class keeps failing: the class's own
    /// limit, or sooner when the job's ceiling comes first.
    class_limit: u32,
    /// This failure's number among all budget-consuming failures in this budget.
    job_n: u32,
    /// The job's ceiling.
    max_attempts: u32,
    /// Whether an operator's retry started this budget.
    after_operator_retry: bool,
}

impl Standing {
    fn of(input: &FailureInput, max_retries: u32) -> Standing {
        let class_n = input.spent.of(input.class).saturating_add(1);
        let job_n = input.spent.failures.saturating_add(1);
        let room = input.max_attempts.saturating_sub(job_n);
        Standing {
            class_n,
            class_limit: max_retries
                .saturating_add(1)
                .min(class_n.saturating_add(room)),
            job_n,
            max_attempts: input.max_attempts,
            after_operator_retry: input.spent.after_operator_retry,
        }
    }
}

impl std::fmt::Display for Standing {
    /// "failure 2 of 6", "failure 3 of 5, job failure 4 of 6", "… since the operator's retry".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failure {} of {}", self.class_n, self.class_limit)?;
        if self.job_n != self.class_n {
            write!(f, ", job failure {} of {}", self.job_n, self.max_attempts)?;
        }
        f.write_str(if self.after_operator_retry {
            " since the operator's retry"
        } else {
            ""
        })
    }
}

fn since_operator_retry(spent: &Spent) -> &'static str {
    if spent.after_operator_retry {
        " since the operator's retry"
    } else {
        ""
    }
}

/// The job-wide ceiling applies to every class that would otherwise retry.
fn ceiling(input: &FailureInput, at: &Standing, label: &str, sev: Severity) -> Option<Decision> {
    let max = input.max_attempts;
    (at.job_n >= max).then(|| {
        fail(
            format!("{label} ({at}): job ceiling of {max} attempts reached"),
            AlertKind::JobFailed,
            sev,
            format!("job failed: {label}, reached its ceiling of {max} attempts"),
        )
    })
}

fn retry(delay: Duration, reason: String) -> Decision {
    Decision {
        verdict: Verdict::Retry,
        delay,
        consumes_budget: true,
        alert: None,
        needs_reauth: false,
        reason,
    }
}

fn fail(reason: String, kind: AlertKind, severity: Severity, message: String) -> Decision {
    Decision {
        verdict: Verdict::Fail,
        alert: Some(Alert {
            kind,
            severity,
            message,
        }),
        ..retry(Duration::ZERO, reason)
    }
}

fn label(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Timeout => "timeout",
        ErrorClass::Auth => "auth error",
        ErrorClass::RateLimit => "rate limited",
        ErrorClass::Server => "server error",
        ErrorClass::Client => "client error",
        ErrorClass::Internal => "internal error",
    }
}

/// NaN (a broken RNG or config) must not turn into a NaN or negative delay.
fn clamp_or_zero(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(lo, hi) }
}

/// Symmetric jitter for retries, rounded to whole milliseconds.
fn jittered(delay: Duration, jitter: f64, sample: f64) -> Duration {
    let factor = 1.0 + clamp_or_zero(jitter, 0.0, 1.0) * clamp_or_zero(sample, -1.0, 1.0);
    // `as u64` saturates, so an absurd max_delay cannot overflow here.
    Duration::from_millis((delay.as_secs_f64() * 1_000.0 * factor).round() as u64)
}

/// Seconds with up to millisecond precision, e.g. "2.1s", "60s".
fn fmt_duration(d: Duration) -> String {
    let (secs, frac) = (d.as_millis() / 1_000, d.as_millis() % 1_000);
    let frac = format!(".{frac:03}");
    format!(
        "{secs}{}s",
        frac.trim_end_matches('0').trim_end_matches('.')
    )
}

/// Keeps a hostile or huge header from bloating the recorded reason.
fn shorten(raw: &str) -> String {
    let mut short: String = raw.chars().take(64).collect();
    if short.len() < raw.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests;
