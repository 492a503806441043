//! A job's attempts on a time line, drawn on the server as inline SVG like the charts
//! (`chart.rs`): each attempt a bar from its start to its end, coloured by how it ended, and
//! the waits between them as thin dashed lines, named below the drawing by their reason as the
//! attempt rows record it (Retry-After, a snooze at the default rate-limit wait, backoff). A
//! job that waits now shows its wait up to `run_at`. The numbers are on the `<svg>` as
//! `data-` attributes (Unix milliseconds, comma-separated, oldest first), the same as the
//! attempts of `GET /api/v1/jobs/{id}`.

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{AttemptRecord, Job, JobState};
use maud::{Markup, html};

use super::fragments::millis;

/// The drawing's width and height in its own units.
const WIDTH: f64 = 1000.0;
const HEIGHT: i64 = 24;

/// Why a job waited after an attempt, from the attempt's record.
fn wait_reason(a: &AttemptRecord) -> (&'static str, &'static str) {
    let decision = a.decision.as_deref().unwrap_or("");
    match a.error_class {
        Some(ErrorClass::RateLimit)
            if decision.contains("Retry-After \"") && !decision.contains("unparseable") =>
        {
            ("retry_after", "Retry-After")
        }
        Some(ErrorClass::RateLimit) => ("snooze", "snooze (rate limited, default wait)"),
        Some(_) => ("backoff", "backoff"),
        None => ("wait", "wait"),
    }
}

/// How an attempt ended: its error class, `ok`, or `running`.
fn outcome(a: &AttemptRecord) -> &'static str {
    match (a.finished_at, a.error_class) {
        (None, _) => "running",
        (Some(_), Some(class)) => class.as_str(),
        (Some(_), None) => "ok",
    }
}

/// The colour class of an outcome.
fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "c-ok",
        "running" => "c-run",
        "rate_limit" => "c-warn",
        _ => "c-bad",
    }
}

/// One wait between two times after an attempt.
struct Wait {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    reason: (&'static str, &'static str),
    /// The wait the rules decided (the attempt's `next_delay_ms`).
    decided_ms: Option<i64>,
    /// Whether the job is still in it.
    now: bool,
}

/// The timeline of `job`'s attempts as of `now`; nothing when it has none.
pub fn timeline(job: &Job, now: DateTime<Utc>) -> Markup {
    let attempts = &job.attempts;
    let Some(first) = attempts.first() else {
        return html! {};
    };
    let end_of = |a: &AttemptRecord| a.finished_at.unwrap_or(now).max(a.started_at);
    let mut waits: Vec<Wait> = attempts
        .windows(2)
        .map(|w| Wait {
            from: end_of(&w[0]),
            until: w[1].started_at.max(end_of(&w[0])),
            reason: wait_reason(&w[0]),
            decided_ms: w[0].next_delay_ms,
            now: false,
        })
        .collect();
    let last = attempts.last().unwrap_or(first);
    let waiting = matches!(job.state, JobState::Retryable | JobState::Scheduled)
        && last.finished_at.is_some()
        && job.run_at > end_of(last);
    if waiting {
        waits.push(Wait {
            from: end_of(last),
            until: job.run_at,
            reason: wait_reason(last),
            decided_ms: last.next_delay_ms,
            now: true,
        });
    }
    let t0 = first.started_at;
    let t1 = waits
        .last()
        .map_or(end_of(last), |w| w.until.max(end_of(last)));
    let span = ((t1 - t0).num_milliseconds()).max(1) as f64;
    let x = |at: DateTime<Utc>| (at - t0).num_milliseconds() as f64 / span * WIDTH;
    let ms = |at: DateTime<Utc>| at.timestamp_millis().to_string();
    let list =
        |f: &dyn Fn(&AttemptRecord) -> String| attempts.iter().map(f).collect::<Vec<_>>().join(",");
    let between = &waits[..attempts.len() - 1];
    html! {
        figure.timeline {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } preserveAspectRatio="none" role="img"
                aria-label={ "the job's " (attempts.len()) " attempts over time" }
                data-attempts=(list(&|a| a.attempt.to_string()))
                data-starts=(list(&|a| ms(a.started_at)))
                data-ends=(list(&|a| a.finished_at.map(ms).unwrap_or_default()))
                data-outcomes=(list(&|a| outcome(a).to_owned()))
                data-waits=(between.iter().map(|w| w.reason.0).collect::<Vec<_>>().join(","))
                data-wait-ms=(between.iter().map(|w| (w.until.timestamp_millis() - w.from.timestamp_millis()).to_string()).collect::<Vec<_>>().join(","))
            {
                @for w in &waits {
                    g {
                        title { (wait_title(w)) }
                        line class=(if w.now { "wait now" } else { "wait" })
                            x1=(format!("{:.2}", x(w.from))) y1=(HEIGHT / 2)
                            x2=(format!("{:.2}", x(w.until))) y2=(HEIGHT / 2) {}
                    }
                }
                @for a in attempts {
                    @let left = x(a.started_at);
                    @let width = (x(end_of(a)) - left).max(2.0);
                    g {
                        title { "attempt " (a.attempt) ": " (outcome(a)) ", " (millis((end_of(a) - a.started_at).num_milliseconds())) }
                        rect class=(outcome_class(outcome(a))) x=(format!("{left:.2}")) y="2"
                            width=(format!("{width:.2}")) height=(HEIGHT - 4) {}
                    }
                }
            }
            figcaption {
                small { (t0.format("%H:%M:%S")) " UTC" }
                ol.waits {
                    @for (i, w) in waits.iter().enumerate() {
                        li {
                            @if w.now { "now: " } @else { (i + 1) " → " (i + 2) ": " }
                            b { (w.reason.1) } " " (wait_title(w))
                        }
                    }
                }
                small { (t1.format("%H:%M:%S")) " UTC" }
            }
        }
    }
}

/// A wait's figures: how long it lasted (or lasts) and what the rules decided.
fn wait_title(w: &Wait) -> String {
    let took = millis((w.until - w.from).num_milliseconds());
    let decided = w
        .decided_ms
        .map(|d| format!(" (decided {})", millis(d)))
        .unwrap_or_default();
    if w.now {
        format!("waits {took} until the next attempt{decided}")
    } else {
        format!("waited {took}{decided}")
    }
}
