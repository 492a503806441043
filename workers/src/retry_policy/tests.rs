//! Exhaustive tests of the retry decision: every class, the boundaries of each budget,
//! sequences that mix classes, jitter extremes, Retry-After forms, the snooze cap, the
//! max_attempts ceiling and the fresh budget of an operator's retry.

use super::*;
use AlertKind::*;
use ErrorClass::*;
use RefreshOutcome::*;
use Severity::*;
use Verdict::*;

const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const HUGE: &str = "99999999999999999999999";
const SAMPLES: [f64; 8] = [-1.0, -0.5, 0.0, 0.5, 1.0, f64::NAN, 7.0, f64::NEG_INFINITY];
const FAILS: [u32; 9] = [0, 1, 2, 3, 4, 5, 6, 7, u32::MAX];
const HOUR: u64 = 3_600_000;
type Edit<'e> = &'e dyn Fn(&mut FailureInput<'static>);
type Kind = Option<(AlertKind, Severity)>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 100 s before the IMF date above.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 100)
}

fn plain(_: &mut FailureInput<'static>) {}

/// `spent` with `n` failures of `class` (snoozes for a rate limit).
fn with_class(mut spent: Spent, class: ErrorClass, n: u32) -> Spent {
    match class {
        Timeout => spent.timeout = n,
        Server => spent.server = n,
        Internal => spent.internal = n,
        Auth => spent.auth = n,
        RateLimit => spent.snoozes = n,
        Client => {}
    }
    spent
}

/// Decides failure number `failures` of the budget, which is also that number of its class
/// (0 breaks the contract and is read as the first).
fn run_with(policy: &RetryPolicy, class: ErrorClass, failures: u32, edit: Edit) -> Decision {
    let before = failures.saturating_sub(1);
    let spent = Spent {
        failures: before,
        ..Spent::default()
    };
    let mut input = FailureInput {
        class,
        spent: with_class(spent, class, before),
        max_attempts: 100,
        retry_after: None,
        refresh: None,
        now: now(),
        jitter_sample: 0.0,
    };
    edit(&mut input);
    decide(policy, &input)
}

fn run(class: ErrorClass, failures: u32, edit: Edit) -> Decision {
    run_with(&RetryPolicy::default(), class, failures, edit)
}

fn kind(d: &Decision) -> Kind {
    d.alert.as_ref().map(|a| (a.kind, a.severity))
}

fn check(d: &Decision, verdict: Verdict, delay_ms: u64, alert: Kind) {
    let want = (verdict, ms(delay_ms), alert);
    assert_eq!((d.verdict, d.delay, kind(d)), want, "{d:?}");
    assert_eq!(d.consumes_budget, verdict != Snooze, "{d:?}");
}

fn snooze(header: Option<&'static str>, snoozes: u32, sample: f64) -> Decision {
    let edit = |i: &mut FailureInput<'static>| {
        (i.retry_after, i.spent.snoozes, i.jitter_sample) = (header, snoozes, sample);
    };
    run(RateLimit, 0, &edit)
}

#[test]
fn defaults_and_names() {
    let p = RetryPolicy::default();
    assert_eq!(p.timeout, class_policy(3, 1, 8));
    assert_eq!(p.server, class_policy(5, 1, 3600));
    assert_eq!(p.internal, class_policy(3, 1, 3600));
    let rl = p.rate_limit;
    assert_eq!((rl.max_snoozes, rl.max_wait), (20, None));
    assert_eq!((rl.default_wait, p.auth_retries), (ms(60_000), 1));
    assert_eq!((p.server_alert_after, p.jitter), (3, 0.2));
    let kinds = [JobFailing, JobFailed, ReauthRequired].map(AlertKind::as_str);
    assert_eq!(kinds, ["job_failing", "job_failed", "reauth_required"]);
    let severities = [Warning, Critical].map(Severity::as_str);
    assert_eq!(severities, ["warning", "critical"]);
}

#[test]
fn backoff_doubles_caps_and_never_overflows() {
    let (sec, max, ns) = (ms(1_000), Duration::MAX, Duration::from_nanos(1));
    let seq = [0, 1, 2, 3, 4, 5, 6].map(|f| backoff(sec, ms(8_000), f).as_secs());
    assert_eq!(seq, [1, 1, 2, 4, 8, 8, 8]);
    assert_eq!(backoff(ms(250), ms(9_000), 3), sec);
    assert_eq!(backoff(ms(10_000), ms(5_000), 1), ms(5_000));
    assert_eq!(backoff(sec, max, 64), Duration::from_secs(1 << 63));
    assert_eq!(backoff(sec, max, 65), max);
    assert_eq!(backoff(ns, max, 94).as_nanos(), 1 << 93);
    assert_eq!(backoff(ns, ms(HOUR), 40).as_nanos(), 1 << 39);
    for f in [33, 64, 95, 96, 97, 1_000, u32::MAX] {
        assert_eq!(backoff(sec, ms(HOUR), f), ms(HOUR), "{f}");
        assert_eq!(backoff(max, max, f), max, "{f}");
        assert_eq!(backoff(Duration::ZERO, ms(10), f), Duration::ZERO, "{f}");
    }
}

#[test]
fn each_class_follows_its_schedule() {
    let table: [(ErrorClass, &[u64], Severity); 3] = [
        (Timeout, &[1_000, 2_000, 4_000], Warning),
        (Server, &[1_000, 2_000, 4_000, 8_000, 16_000], Critical),
        (Internal, &[1_000, 2_000, 4_000], Warning),
    ];
    for (class, waits, severity) in table {
        // failures 0 breaks the contract and is read as the first failure.
        check(&run(class, 0, &plain), Retry, 1_000, None);
        for (f, &wait) in (1..).zip(waits) {
            let alert = (class == Server && f == 3).then_some((JobFailing, Warning));
            check(&run(class, f, &plain), Retry, wait, alert);
        }
        let last = waits.len() as u32;
        for f in [last + 1, last + 2, 100, u32::MAX] {
            let d = run(class, f, &plain);
            check(&d, Fail, 0, Some((JobFailed, severity)));
        }
    }
    for f in FAILS {
        let d = run(Client, f, &plain);
        check(&d, Fail, 0, Some((JobFailed, Warning)));
        assert!(d.reason.contains("data problem") && !d.needs_reauth);
    }
}

#[test]
fn server_alerts_job_failing_exactly_once_at_third_failure() {
    let alerts: Vec<_> = (1..=6).map(|f| kind(&run(Server, f, &plain))).collect();
    let failing = alerts.iter().filter(|a| matches!(a, Some((JobFailing, _))));
    assert_eq!(failing.count(), 1);
    assert_eq!(alerts[2], Some((JobFailing, Warning)));
    // 0 disables it; past the last retry it is superseded by JobFailed.
    for threshold in [0, 6] {
        let policy = RetryPolicy {
            server_alert_after: threshold,
            ..RetryPolicy::default()
        };
        for f in FAILS {
            let d = run_with(&policy, Server, f, &plain);
            assert!(!matches!(kind(&d), Some((JobFailing, _))), "{d:?}");
        }
    }
}

#[test]
fn auth_retries_once_immediately_after_refresh() {
    for other in [None, Some(Timeout), Some(Server), Some(RateLimit)] {
        for sample in SAMPLES {
            let d = run(Auth, 1, &|i| {
                // Failures of other classes before this 401 do not use the auth budget.
                if let Some(class) = other {
                    i.spent = with_class(i.spent, class, 2);
                    i.spent.failures = 2;
                }
                (i.refresh, i.jitter_sample) = (Some(Refreshed), sample);
            });
            check(&d, Retry, 0, None);
            assert!(!d.needs_reauth);
        }
    }
    let ceiling = |i: &mut FailureInput| (i.refresh, i.max_attempts) = (Some(Refreshed), 1);
    let d = run(Auth, 1, &ceiling);
    check(&d, Fail, 0, Some((JobFailed, Warning)));
    assert!(d.reason.contains("ceiling") && !d.needs_reauth);
}

#[test]
fn auth_retry_once_ignores_earlier_failures_of_other_classes() {
    let d = run(Auth, 1, &|i| {
        (i.spent.failures, i.spent.timeout, i.spent.server) = (4, 2, 2);
        i.refresh = Some(Refreshed);
    });
    check(&d, Retry, 0, None);
    assert!(
        d.reason.contains("failure 1, job failure 5 of 100"),
        "{d:?}"
    );
    let policy = RetryPolicy {
        auth_retries: 0,
        ..RetryPolicy::default()
    };
    let d = run_with(&policy, Auth, 1, &|i| i.refresh = Some(Refreshed));
    assert_eq!(d.verdict, Fail);
    assert!(
        d.needs_reauth && d.reason.contains("auth retries are disabled"),
        "{d:?}"
    );
}

#[test]
fn auth_fails_with_reauth_and_says_why() {
    let again = "got 401 again after refresh";
    let none = "no token refresh was attempted";
    let failed = "refresh failed: invalid_grant";
    let unset = "no token refresher for this job";
    let bad = Some(Failed {
        reason: "invalid_grant".into(),
    });
    // (401s earlier in this budget, the refresh outcome, why it fails)
    let cases = [
        (1, Some(Refreshed), again),
        (2, Some(Refreshed), again),
        (0, bad.clone(), failed),
        (1, bad, again),
        (0, Some(NotConfigured), unset),
        (0, None, none),
        (u32::MAX, None, again),
    ];
    for (before, refresh, why) in cases {
        let d = run(Auth, 1, &|i| {
            (i.refresh, i.spent.auth) = (refresh.clone(), before);
        });
        check(&d, Fail, 0, Some((ReauthRequired, Critical)));
        assert!(d.needs_reauth && d.reason.contains(why), "{why}");
        assert!(d.alert.unwrap().message.contains(why), "{why}");
    }
}

#[test]
fn rate_limit_honours_every_retry_after_form() {
    let cases = [
        (Some("120"), 120_000),
        (Some(" 5 "), 5_000),
        (Some("0"), 0),
        (Some(IMF), 100_000),
        (Some("Sunday, 06-Nov-94 08:49:37 GMT"), 100_000),
        (Some("Sun Nov  6 08:49:37 1994"), 100_000),
        (Some("Sun, 06 Nov 1994 08:00:00 GMT"), 0),
        (Some("soon"), 60_000),
        (Some("-5"), 60_000),
        (None, 60_000),
        (Some("86400"), 24 * HOUR),
    ];
    for (header, want) in cases {
        let d = snooze(header, 0, 0.0);
        check(&d, Snooze, want, None);
        let shown = header.map_or("no Retry-After".into(), |h| format!("{h:?}"));
        assert!(d.reason.contains(&shown), "{}", d.reason);
    }
}

#[test]
fn rate_limit_jitter_is_upward_only_and_capped() {
    for sample in SAMPLES {
        let up = 1.0 + 0.2 * sample.abs().min(1.0);
        let up = if sample.is_nan() { 1.0 } else { up };
        for (header, wait) in [
            (Some("100"), 100_000),
            (None, 60_000),
            (Some("86400"), 24 * HOUR),
        ] {
            let d = snooze(header, 3, sample);
            check(&d, Snooze, (wait as f64 * up).round() as u64, None);
            assert!(d.delay >= ms(wait) && d.delay <= ms(wait * 6 / 5));
        }
    }
    check(&snooze(Some("0"), 0, 1.0), Snooze, 0, None);
    // A date 2.999999999 s away is rounded up, never undercut.
    let at = now() + Duration::from_secs(97) + Duration::from_nanos(1);
    let d = run(RateLimit, 0, &|i| (i.retry_after, i.now) = (Some(IMF), at));
    check(&d, Snooze, 3_000, None);
}

#[test]
fn rate_limit_snooze_cap() {
    check(&snooze(None, 19, 0.0), Snooze, 60_000, None);
    for snoozes in [20, 21, u32::MAX] {
        let d = snooze(Some("5"), snoozes, 0.0);
        check(&d, Fail, 0, Some((JobFailed, Warning)));
        let times = format!("rate limited {} times", snoozes.saturating_add(1));
        assert!(d.alert.unwrap().message.contains(&times));
    }
}

#[test]
fn rate_limit_never_uses_budget_or_ceiling() {
    for failures in FAILS {
        for max_attempts in [0, 1, 3, u32::MAX] {
            let d = run(RateLimit, failures, &|i| {
                (i.max_attempts, i.spent.snoozes) = (max_attempts, 19);
                i.retry_after = Some("30");
            });
            check(&d, Snooze, 30_000, None);
        }
    }
}

#[test]
fn ceiling_fails_any_retrying_class() {
    for (class, sev) in [(Timeout, Warning), (Server, Critical), (Internal, Warning)] {
        check(&run(class, 2, &|i| i.max_attempts = 3), Retry, 2_000, None);
        for (f, max) in [(2, 2), (3, 2), (1, 1), (1, 0), (0, 0)] {
            let d = run(class, f, &|i| i.max_attempts = max);
            check(&d, Fail, 0, Some((JobFailed, sev)));
            assert!(d.reason.contains("ceiling"), "{}", d.reason);
        }
    }
    // The ceiling outranks the server warning at the same failure.
    let d = run(Server, 3, &|i| i.max_attempts = 3);
    check(&d, Fail, 0, Some((JobFailed, Critical)));
}

#[test]
fn retry_jitter_is_symmetric_bounded_and_rounded() {
    let cases = [(-1.0, 3_200), (0.0, 4_000), (1.0, 4_800), (0.5, 4_400)];
    let odd = [(f64::NAN, 4_000), (f64::INFINITY, 4_800), (-9.0, 3_200)];
    for (sample, want) in cases.into_iter().chain(odd) {
        for class in [Timeout, Server, Internal] {
            let d = run(class, 3, &|i| i.jitter_sample = sample);
            check(&d, Retry, want, kind(&run(class, 3, &plain)));
        }
    }
    let d = run(Server, 1, &|i| i.jitter_sample = 0.123_456);
    check(&d, Retry, 1_025, None);
    let mut policy = RetryPolicy::default();
    policy.server.base_delay = Duration::ZERO;
    let d = run_with(&policy, Server, 2, &|i| i.jitter_sample = 1.0);
    check(&d, Retry, 0, None);
    // A misconfigured jitter is read as within [0, 1].
    for (jitter, factor) in [(f64::NAN, 1), (-0.5, 1), (3.0, 2), (f64::INFINITY, 2)] {
        policy.jitter = jitter;
        let d = run_with(&policy, Timeout, 3, &|i| i.jitter_sample = 1.0);
        check(&d, Retry, 4_000 * factor, None);
        let d = run_with(&policy, RateLimit, 0, &|i| i.jitter_sample = -1.0);
        check(&d, Snooze, 60_000 * factor, None);
    }
}

#[test]
fn reason_lines() {
    let d = run(Server, 2, &|i| i.jitter_sample = 0.25);
    assert_eq!(d.reason, "server error (failure 2 of 6): retry in 2.1s");
    let d = run(Server, 2, &|i| i.max_attempts = 4);
    assert_eq!(d.reason, "server error (failure 2 of 4): retry in 2s");
    let d = snooze(Some("120"), 2, 0.0);
    let want = r#"rate limited (snooze 3 of 20), Retry-After "120": retry in 120s"#;
    assert_eq!(d.reason, want);
    let d = snooze(None, 0, 0.0);
    let want = "rate limited (snooze 1 of 20), no Retry-After, default 60s: retry in 60s";
    assert_eq!(d.reason, want);
    let d = snooze(Some("soon"), 0, 0.0);
    let want = r#"Retry-After "soon" unparseable, default 60s: retry in 60s"#;
    assert!(d.reason.ends_with(want), "{}", d.reason);
    let long: &'static str = "x".repeat(10_000).leak();
    assert!(snooze(Some(long), 0, 0.0).reason.len() < 200);
    assert_eq!(fmt_duration(ms(250)), "0.25s");
}

#[test]
fn never_panics_and_keeps_invariants() {
    let headers = [None, Some("5"), Some(HUGE), Some("garbage"), Some(IMF)];
    let failed = Failed { reason: "x".into() };
    let refreshes = [None, Some(Refreshed), Some(NotConfigured), Some(failed)];
    let mut extreme = RetryPolicy::default();
    let mut huge = class_policy(u32::MAX, u64::MAX, u64::MAX);
    huge.max_delay = Duration::MAX;
    (extreme.timeout, extreme.server, extreme.jitter) = (huge, huge, 1.0);
    let rl = &mut extreme.rate_limit;
    (rl.max_wait, rl.default_wait, rl.max_snoozes) = (Some(Duration::MAX), Duration::MAX, u32::MAX);
    (extreme.auth_retries, extreme.server_alert_after) = (u32::MAX, u32::MAX);
    for policy in [RetryPolicy::default(), extreme] {
        for (class, failures) in ErrorClass::ALL.iter().flat_map(|&c| FAILS.map(|f| (c, f))) {
            for (sample, header) in SAMPLES.iter().flat_map(|&s| headers.map(|h| (s, h))) {
                for (refresh, snoozes) in refreshes.iter().zip([0, 20, u32::MAX, 1]) {
                    let d = run_with(&policy, class, failures, &|i| {
                        (i.spent.snoozes, i.retry_after, i.jitter_sample) =
                            (snoozes, header, sample);
                        i.refresh = refresh.clone();
                        i.spent.after_operator_retry = snoozes == 1;
                    });
                    assert_eq!(d.consumes_budget, d.verdict != Snooze);
                    assert!(d.verdict != Fail || (d.delay.is_zero() && d.alert.is_some()));
                    let reauth = matches!(kind(&d), Some((ReauthRequired, _)));
                    assert!(!d.reason.is_empty() && d.needs_reauth == reauth);
                }
            }
        }
    }
}

/// What one failure of a sequence led to.
type Step = (Verdict, Kind);

/// Runs failures of `classes` through `decide` one after another, counting each one as the
/// store does; a 401 gets a working token refresh whenever the rules ask for one.
fn sequence(max_attempts: u32, classes: &[ErrorClass]) -> Vec<Step> {
    let policy = RetryPolicy::default();
    let mut spent = Spent::default();
    let mut out = Vec::new();
    for &class in classes {
        let refresh = (class == Auth && policy.refreshes_token(&spent)).then_some(Refreshed);
        let input = FailureInput {
            class,
            spent,
            max_attempts,
            retry_after: Some("1"),
            refresh,
            now: now(),
            jitter_sample: 0.0,
        };
        let d = decide(&policy, &input);
        spent = spent.after(class);
        out.push((d.verdict, kind(&d)));
    }
    out
}

#[test]
fn each_class_has_its_own_budget_in_mixed_sequences() {
    const R: Step = (Retry, None);
    const S: Step = (Snooze, None);
    const WARN: Step = (Retry, Some((JobFailing, Warning)));
    const GAVE_UP: Step = (Fail, Some((JobFailed, Warning)));
    const GAVE_UP_5XX: Step = (Fail, Some((JobFailed, Critical)));
    const REAUTH: Step = (Fail, Some((ReauthRequired, Critical)));
    let table: [(u32, &[ErrorClass], &[Step]); 10] = [
        // The 3rd server failure alerts, whatever came between.
        (6, &[Server, Server, Timeout, Server], &[R, R, R, WARN]),
        (
            6,
            &[Server, Timeout, Server, Timeout, Server],
            &[R, R, R, R, WARN],
        ),
        (
            9,
            &[Server, RateLimit, Server, RateLimit, Server],
            &[R, S, R, S, WARN],
        ),
        // A timeout after three 5xx is the first timeout: retried.
        (6, &[Server, Server, Server, Timeout], &[R, R, WARN, R]),
        // The 4th timeout is final, however many failures of other classes came first.
        (
            9,
            &[Timeout, Timeout, Server, Timeout, Timeout],
            &[R, R, R, R, GAVE_UP],
        ),
        (
            9,
            &[Internal, Timeout, Internal, Internal, Internal],
            &[R, R, R, R, GAVE_UP],
        ),
        // The 6th server failure is final (5 retries).
        (9, &[Server; 6], &[R, R, WARN, R, R, GAVE_UP_5XX]),
        // The job's ceiling counts every class but rate limits: failure 6 of 6 is final, and
        // outranks the server warning due at the same failure.
        (
            6,
            &[Timeout, Timeout, Timeout, Server, Server, Server],
            &[R, R, R, R, R, GAVE_UP_5XX],
        ),
        // One refresh per budget: a 401 after the refreshed retry is final.
        (6, &[Auth, Server, Auth], &[R, R, REAUTH]),
        (6, &[Timeout, Auth, Auth], &[R, R, REAUTH]),
    ];
    for (max_attempts, classes, want) in table {
        assert_eq!(sequence(max_attempts, classes), want, "{classes:?}");
    }
}

#[test]
fn mixed_sequences_say_where_the_failure_stands() {
    let spent = Spent {
        failures: 3,
        server: 2,
        timeout: 1,
        ..Spent::default()
    };
    let d = run(Server, 1, &|i| (i.spent, i.max_attempts) = (spent, 6));
    let want = "server error (failure 3 of 5, job failure 4 of 6): retry in 4s";
    assert_eq!(d.reason, want);
    let d = run(Timeout, 1, &|i| (i.spent, i.max_attempts) = (spent, 6));
    let want = "timeout (failure 2 of 4, job failure 4 of 6): retry in 2s";
    assert_eq!(d.reason, want);
    let spent = Spent {
        failures: 5,
        timeout: 3,
        ..spent
    };
    let d = run(Timeout, 1, &|i| (i.spent, i.max_attempts) = (spent, 9));
    let want = "timeout (failure 4 of 4, job failure 6 of 9): retries exhausted";
    assert_eq!(d.reason, want);
}

#[test]
fn an_operator_retry_starts_a_fresh_budget() {
    let fresh = Spent {
        after_operator_retry: true,
        ..Spent::default()
    };
    // The job had failed with its server budget spent: its next 5xx is failure 1 again.
    let d = run(Server, 1, &|i| (i.spent, i.max_attempts) = (fresh, 6));
    let want = "server error (failure 1 of 6 since the operator's retry): retry in 1s";
    check(&d, Retry, 1_000, None);
    assert_eq!(d.reason, want);
    // A 401 refreshes the token again, and says what happened this time.
    let policy = RetryPolicy::default();
    assert!(policy.refreshes_token(&fresh));
    assert!(!policy.refreshes_token(&Spent { auth: 1, ..fresh }));
    let d = run(Auth, 1, &|i| {
        (i.spent, i.refresh) = (fresh, Some(NotConfigured))
    });
    let want = "auth error (failure 1 since the operator's retry): no token refresher for this \
                job; re-authorisation required";
    assert_eq!(d.reason, want);
    let d = run(Auth, 1, &|i| {
        (i.spent, i.refresh) = (fresh, Some(Refreshed))
    });
    check(&d, Retry, 0, None);
    let d = snooze(Some("5"), 0, 0.0);
    assert!(!d.reason.contains("operator"), "{}", d.reason);
    let d = run(RateLimit, 0, &|i| {
        (i.spent, i.retry_after) = (fresh, Some("5"))
    });
    let want =
        r#"rate limited (snooze 1 of 20 since the operator's retry), Retry-After "5": retry in 5s"#;
    assert_eq!(d.reason, want);
}

#[test]
fn a_long_retry_after_is_waited_in_full_or_fails_never_called_early() {
    // No cap by default: a daily quota waits its day (and jitter only adds).
    for (header, wait) in [("86400", 24 * HOUR), ("2592000", 720 * HOUR)] {
        let d = snooze(Some(header), 0, -1.0);
        check(&d, Snooze, wait * 6 / 5, None);
    }
    // A pool's max_wait turns a longer wait into a failure with an alert.
    let mut policy = RetryPolicy::default();
    policy.rate_limit.max_wait = Some(ms(HOUR));
    for header in ["3601", "86400", HUGE] {
        let d = run_with(&policy, RateLimit, 0, &|i| i.retry_after = Some(header));
        check(&d, Fail, 0, Some((JobFailed, Warning)));
        assert!(d.reason.contains("max_wait_ms (3600s)"), "{}", d.reason);
        assert!(!d.needs_reauth);
    }
    let d = run_with(&policy, RateLimit, 0, &|i| i.retry_after = Some("3600"));
    check(&d, Snooze, HOUR, None);
    // Without a pool cap, past a year is more than Hangar schedules.
    let d = snooze(Some(HUGE), 0, 0.0);
    check(&d, Fail, 0, Some((JobFailed, Warning)));
    assert!(
        d.reason.contains("longest wait Hangar schedules"),
        "{}",
        d.reason
    );
    let year = (LONGEST_WAIT.as_secs()).to_string().leak();
    check(
        &snooze(Some(year), 0, 0.0),
        Snooze,
        LONGEST_WAIT.as_millis() as u64,
        None,
    );
}
