//! Owns the retry decision: given a failed attempt and the job's history, a
//! pure function says whether to retry, snooze or fail, how long to wait and
//! which alert (if any) to raise. No I/O, clock reads or randomness happen
//! here; the caller supplies `now` and the jitter sample.

use std::time::{Duration, SystemTime};

use crate::error_class::ErrorClass;
use crate::retry_after::parse_retry_after;

/// Exponential backoff limits for one error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassPolicy {
    /// Failures that are still retried; failure number `max_retries + 1` is final.
    pub max_retries: u32,
    /// Wait after the first failure; doubles with each further failure.
    pub base_delay: Duration,
    /// Upper bound on any single backoff wait.
    pub max_delay: Duration,
}

/// Limits for HTTP 429 snoozes, which do not consume the failure budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Snoozes allowed before a further 429 fails the job.
    pub max_snoozes: u32,
    /// Longest wait honoured from a Retry-After header, before upward jitter.
    pub max_wait: Duration,
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
    /// Retries allowed after a successful token refresh on HTTP 401.
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
                max_wait: Duration::from_secs(3_600),
                default_wait: Duration::from_secs(60),
            },
            auth_retries: 1,
            server_alert_after: 3,
            jitter: 0.2,
        }
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
}

/// Everything `decide` needs to know about one failed attempt.
#[derive(Debug, Clone)]
pub struct FailureInput<'a> {
    /// Class of this failure.
    pub class: ErrorClass,
    /// Budget-consuming failures so far, including this one unless it is a rate limit.
    pub failures: u32,
    /// Rate-limit snoozes so far, not including this one.
    pub snoozes: u32,
    /// The job's overall ceiling: it fails once `failures >= max_attempts`.
    pub max_attempts: u32,
    /// Class of the attempt before this one, if any.
    pub previous_class: Option<ErrorClass>,
    /// Raw Retry-After header of this response.
    pub retry_after: Option<&'a str>,
    /// For Auth only: outcome of the token refresh the caller attempted.
    pub refresh: Option<RefreshOutcome>,
    /// Current time, used to resolve an HTTP-date Retry-After.
    pub now: SystemTime,
    /// Uniform sample in [-1.0, 1.0] from the caller; NaN counts as 0.
    pub jitter_sample: f64,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The job keeps failing but will still be retried.
    JobFailing,
    /// The job has failed for good.
    JobFailed,
    /// An admin must re-authorise the integration.
    ReauthRequired,
}

impl AlertKind {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::JobFailing => "job_failing",
            AlertKind::JobFailed => "job_failed",
            AlertKind::ReauthRequired => "reauth_required",
        }
    }
}

/// How urgently an alert needs a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Needs action.
    Critical,
}

impl Severity {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

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
    // failures >= 1 is the contract; a 0 is read as the first failure rather
    // than granting an extra free retry.
    let failure = input.failures.max(1);
    let limit = class_policy.max_retries.saturating_add(1);
    let limit = limit.min(input.max_attempts);

    if failure > class_policy.max_retries {
        return fail(
            format!("{label} (failure {failure} of {limit}): retries exhausted"),
            AlertKind::JobFailed,
            final_severity,
            format!("job failed: {label} after {failure} failures, retries exhausted"),
        );
    }
    if let Some(decision) = ceiling(input, failure, label, final_severity) {
        return decision;
    }

    let raw = backoff(class_policy.base_delay, class_policy.max_delay, failure);
    let delay = jittered(raw, policy.jitter, input.jitter_sample);
    let reason = format!(
        "{label} (failure {failure} of {limit}): retry in {}",
        fmt_duration(delay)
    );
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
    let failure = input.failures.max(1);
    let why = match &input.refresh {
        // An auth failure is only ever followed by another attempt after a refresh, so a
        // 401 after a 401 means the refreshed token was refused too; callers do not refresh
        // again (no loop).
        _ if input.previous_class == Some(ErrorClass::Auth) => {
            "got 401 again after refresh".to_owned()
        }
        // "Retry once" is per incident: the previous attempt's class says whether this 401
        // already follows a refresh, whatever other failures the job had before.
        Some(RefreshOutcome::Refreshed) if policy.auth_retries == 0 => {
            "token refreshed but auth retries are disabled for this pool".to_owned()
        }
        Some(RefreshOutcome::Refreshed) => {
            return ceiling(input, failure, "auth error", Severity::Warning).unwrap_or_else(|| {
                // The new token is usable at once, so waiting (or jitter) gains nothing.
                let reason = format!("auth error (failure {failure}): token refreshed, retry now");
                retry(Duration::ZERO, reason)
            });
        }
        Some(RefreshOutcome::Failed { reason }) => format!("refresh failed: {reason}"),
        Some(RefreshOutcome::NotConfigured) => "no token refresher for this job".to_owned(),
        None => "no token refresh was attempted for this job".to_owned(),
    };
    let mut decision = fail(
        format!("auth error (failure {failure}): {why}; re-authorisation required"),
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

    let times = input.snoozes.saturating_add(1);
    if input.snoozes >= rl.max_snoozes {
        return fail(
            format!(
                "rate limited {times} times, {source}: snooze limit {} reached",
                rl.max_snoozes
            ),
            AlertKind::JobFailed,
            Severity::Warning,
            format!("job failed: rate limited {times} times"),
        );
    }

    let base = parsed.unwrap_or(rl.default_wait).min(rl.max_wait);
    // Jitter only ever adds, so the wait never undercuts the header (when it
    // fits under max_wait) and stays within max_wait * (1 + jitter) since
    // base <= max_wait and |sample| <= 1.
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
            "rate limited (snooze {times} of {}), {source}: retry in {wait}",
            rl.max_snoozes
        ),
        ..retry(delay, String::new())
    }
}

/// The job-wide ceiling applies to every class that would otherwise retry.
fn ceiling(input: &FailureInput, failure: u32, label: &str, sev: Severity) -> Option<Decision> {
    let max = input.max_attempts;
    (failure >= max).then(|| {
        fail(
            format!("{label} (failure {failure}): job ceiling of {max} attempts reached"),
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
