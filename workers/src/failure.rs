//! Owns what happens after a failed attempt, between the handler's classified
//! [`JobFailure`] and the row that records it: the token refresh a 401 asks for, the retry
//! decision (made against the database's clock and the job's per-class budget), the durable
//! record of that decision, and the one log line that tells an operator about it. The pool's
//! attempts and its rescuer both come through here; nothing here runs in the background.

use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;

use crate::backoff::Backoff;
use crate::error_class::ErrorClass;
use crate::job::{ClaimedJob, JobState};
use crate::kinds::{JobFailure, Wait};
use crate::pool::PoolDeps;
use crate::pool_config::PoolSpec;
use crate::retry_policy::{Decision, FailureInput, RefreshOutcome, Verdict, decide};
use crate::store::FailureRecord;

/// Refreshes the token if the rules ask for it, decides, records the decision (retrying the
/// write while the lease lasts) and logs it once.
pub(crate) async fn handle(
    spec: &PoolSpec,
    deps: &PoolDeps,
    job: &ClaimedJob,
    failure: JobFailure,
) {
    match deps
        .registry
        .get(&job.kind)
        .and_then(|handler| handler.take_wait(job.id))
    {
        Some(Wait::After(after)) => {
            wait(spec, deps, job, after, &failure.message).await;
            return;
        }
        Some(Wait::PutBack) => {
            metrics::counter!("hangar_jobs_total", "queue" => spec.queue.clone(), "outcome" => "waiting")
                .increment(1);
            tracing::debug!(job_id = job.id.0, kind = %job.kind, reason = %failure.message, "waiting (put back by its handler); no attempt used");
            return;
        }
        None => {}
    }
    let refresh = if failure.class == ErrorClass::Auth && spec.retry.refreshes_token(&job.spent) {
        Some(deps.refresher.refresh(job, &failure).await)
    } else {
        None
    };
    let (failure, refresh) = after_refresh(failure, refresh);
    let mut decision = decide_failure(spec, job, &failure, refresh);
    if decision.needs_reauth
        && deps
            .refresher
            .mark_needs_reauth_alerted(job, &decision.reason)
            .await
    {
        // The integration's own alert says it (and is resolved when it recovers).
        decision.alert = None;
    }
    let record = failure_record(job, &failure, &decision, &deps.worker_id);
    let outcome = match decision.verdict {
        Verdict::Retry => "retried",
        Verdict::Snooze => "snoozed",
        Verdict::Fail => "failed",
    };
    metrics::counter!("hangar_jobs_total", "queue" => spec.queue.clone(), "outcome" => outcome)
        .increment(1);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    // The store may be briefly unreachable: keep the decision and try again while the
    // lease lasts; after that the rescuer owns the job.
    let deadline = Instant::now() + spec.lease;
    loop {
        match deps.store.record_failure(&record).await {
            Ok(true) => {
                log_decision(&spec.queue, job, &failure, &decision);
                return;
            }
            Ok(false) => {
                metrics::counter!("hangar_stale_results_total", "queue" => spec.queue.clone())
                    .increment(1);
                tracing::info!(
                    job_id = job.id.0,
                    "result rejected: the lease was taken over"
                );
                return;
            }
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(job_id = job.id.0, %error, "recording a failure failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(error) => {
                tracing::error!(job_id = job.id.0, %error, "could not record a failure; the rescuer will retry the job");
                return;
            }
        }
    }
}

/// A refresh that could not be tried (the token endpoint down, another process refreshing)
/// says nothing about the credential: the attempt becomes a `server` failure, retried by
/// that table, instead of an auth failure that would end in re-authorisation.
pub fn after_refresh(
    failure: JobFailure,
    refresh: Option<RefreshOutcome>,
) -> (JobFailure, Option<RefreshOutcome>) {
    match refresh {
        Some(RefreshOutcome::Unavailable { reason }) => (
            JobFailure {
                class: ErrorClass::Server,
                message: format!(
                    "{}; the token refresh is unavailable ({reason}), retried later",
                    failure.message
                ),
                ..failure
            },
            None,
        ),
        other => (failure, other),
    }
}

/// A job that could not start its work yet goes back to `scheduled`, `after` from now,
/// with its attempt number given back (see [`crate::kinds::Handler::take_wait`]). A write that fails leaves
/// the job to the rescuer, which runs it again when its lease ends.
async fn wait(spec: &PoolSpec, deps: &PoolDeps, job: &ClaimedJob, after: Duration, why: &str) {
    metrics::counter!("hangar_jobs_total", "queue" => spec.queue.clone(), "outcome" => "waiting")
        .increment(1);
    match deps.store.put_back(job.id, job.lease_token, after).await {
        Ok(true) => {
            tracing::debug!(job_id = job.id.0, kind = %job.kind, delay_ms = after.as_millis() as u64, reason = %why, "waiting; no attempt used");
        }
        Ok(false) => {
            tracing::info!(
                job_id = job.id.0,
                "put back rejected: the lease was taken over"
            );
        }
        Err(error) => {
            tracing::warn!(job_id = job.id.0, %error, "could not put a waiting job back; the rescuer will run it again");
        }
    }
}

/// Turns a classified failure into the retry decision of `spec`'s policy, with the
/// database's clock (see [`ClaimedJob::db_now`]) and a fresh jitter sample.
pub fn decide_failure(
    spec: &PoolSpec,
    job: &ClaimedJob,
    failure: &JobFailure,
    refresh: Option<RefreshOutcome>,
) -> Decision {
    let input = FailureInput {
        class: failure.class,
        spent: job.spent,
        max_attempts: u32::try_from(job.max_attempts.max(1)).unwrap_or(1),
        retry_after: failure.retry_after.as_deref(),
        refresh,
        now: SystemTime::from(job.db_now()),
        jitter_sample: fastrand::f64() * 2.0 - 1.0,
    };
    decide(&spec.retry, &input)
}

/// The row-level record of a failed attempt and its decision.
pub fn failure_record(
    job: &ClaimedJob,
    failure: &JobFailure,
    decision: &Decision,
    worker: &str,
) -> FailureRecord {
    let spent = job.spent.after(failure.class);
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    FailureRecord {
        id: job.id,
        lease_token: job.lease_token,
        attempt: job.attempt,
        workspace_id: job.workspace_id.clone(),
        started_at: job.started_at,
        finished_at: Utc::now(),
        class: failure.class,
        error: failure.message.clone(),
        http_status: failure.http_status.map(i32::from),
        next_state: match decision.verdict {
            Verdict::Retry => JobState::Retryable,
            Verdict::Snooze => JobState::Scheduled,
            Verdict::Fail => JobState::Failed,
        },
        delay: decision.delay,
        spent,
        budget_failure: (failure.class != ErrorClass::RateLimit).then(|| count(spent.failures)),
        class_failure: (failure.class != ErrorClass::Client)
            .then(|| count(spent.of(failure.class))),
        decision: decision.reason.clone(),
        alert: decision.alert.clone(),
        worker: worker.to_owned(),
    }
}

/// The one log line of a recorded decision, with structured fields an operator can filter
/// on: INFO for a retry or a snooze, WARN when the job has failed.
pub fn log_decision(queue: &str, job: &ClaimedJob, failure: &JobFailure, decision: &Decision) {
    let delay_ms = u64::try_from(decision.delay.as_millis()).unwrap_or(u64::MAX);
    let alert = decision.alert.as_ref().map_or("none", |a| a.kind.as_str());
    macro_rules! event {
        ($level:expr, $message:literal) => {
            tracing::event!(
                $level,
                job_id = job.id.0,
                kind = %job.kind,
                queue = %queue,
                attempt = job.attempt,
                class = %failure.class,
                http_status = failure.http_status,
                decision = %decision.verdict.as_str(),
                delay_ms,
                alert = %alert,
                reason = %decision.reason,
                $message
            )
        };
    }
    match decision.verdict {
        Verdict::Fail => event!(tracing::Level::WARN, "job failed"),
        Verdict::Retry => event!(tracing::Level::INFO, "attempt failed; retrying"),
        Verdict::Snooze => event!(tracing::Level::INFO, "rate limited; snoozing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobId;
    use crate::retry_policy::Spent;

    fn claimed(started_at: chrono::DateTime<Utc>) -> ClaimedJob {
        ClaimedJob {
            id: JobId(1),
            kind: "http".to_owned(),
            args: serde_json::json!({}),
            attempt: 1,
            max_attempts: 6,
            spent: Spent::default(),
            priority: 0,
            workspace_id: None,
            lease_token: 1,
            created_at: started_at,
            run_at: started_at,
            started_at,
            received_at: Instant::now(),
        }
    }

    fn rate_limited(retry_after: String) -> JobFailure {
        JobFailure {
            retry_after: Some(retry_after),
            ..JobFailure::new(ErrorClass::RateLimit, "429")
        }
    }

    /// The database's clock runs an hour ahead of this machine's: an HTTP-date 10 s past the
    /// database's now is a 10 s wait (the machine's clock would make it an hour and 10 s).
    #[test]
    fn http_date_retry_after_is_measured_against_the_claim_statements_clock() {
        let spec = crate::pool_config::builtin().remove(0);
        let db_now = Utc::now() + chrono::Duration::hours(1);
        let job = claimed(db_now);
        let date = SystemTime::from(db_now) + Duration::from_secs(10);
        let failure = rate_limited(httpdate::fmt_http_date(date));
        let decision = decide_failure(&spec, &job, &failure, None);
        assert_eq!(decision.verdict, Verdict::Snooze, "{decision:?}");
        // The date has whole seconds: the wait is 9 to 10 s, plus at most 20 % jitter upward.
        assert!(
            decision.delay >= Duration::from_secs(9) && decision.delay <= Duration::from_secs(12),
            "{decision:?}"
        );

        // And a database clock an hour behind: the same date is an hour and 10 s away.
        let job = claimed(Utc::now() - chrono::Duration::hours(1));
        let decision = decide_failure(&spec, &job, &failure, None);
        assert!(decision.delay >= Duration::from_secs(7_209), "{decision:?}");
    }

    #[test]
    fn an_unavailable_refresh_is_a_server_retry_not_a_reauthorisation() {
        let spec = crate::pool_config::builtin().remove(0);
        let job = claimed(Utc::now());
        let unauthorized = JobFailure::new(ErrorClass::Auth, "HTTP 401");
        let unavailable = Some(RefreshOutcome::Unavailable {
            reason: "the token endpoint answered HTTP 503".to_owned(),
        });
        let (failure, refresh) = after_refresh(unauthorized.clone(), unavailable);
        assert_eq!(failure.class, ErrorClass::Server);
        assert!(failure.message.contains("HTTP 503"), "{}", failure.message);
        let decision = decide_failure(&spec, &job, &failure, refresh);
        assert_eq!(decision.verdict, Verdict::Retry, "{decision:?}");
        assert!(
            !decision.needs_reauth && decision.alert.is_none(),
            "{decision:?}"
        );

        let failed = Some(RefreshOutcome::Failed {
            reason: "invalid_grant".to_owned(),
        });
        let (failure, refresh) = after_refresh(unauthorized, failed);
        assert_eq!(failure.class, ErrorClass::Auth);
        let decision = decide_failure(&spec, &job, &failure, refresh);
        assert_eq!(decision.verdict, Verdict::Fail);
        assert!(decision.needs_reauth, "{decision:?}");
    }

    #[test]
    fn the_record_counts_the_failure_in_its_class_and_the_budget() {
        let spec = crate::pool_config::builtin().remove(0);
        let mut job = claimed(Utc::now());
        job.spent = Spent {
            failures: 3,
            server: 2,
            timeout: 1,
            ..Spent::default()
        };
        let failure = JobFailure::new(ErrorClass::Server, "HTTP 503");
        let decision = decide_failure(&spec, &job, &failure, None);
        let record = failure_record(&job, &failure, &decision, "w");
        assert_eq!(
            (record.budget_failure, record.class_failure),
            (Some(4), Some(3))
        );
        assert_eq!((record.spent.failures, record.spent.server), (4, 3));
        assert!(decision.alert.is_some(), "third server failure alerts");

        let failure = rate_limited("5".to_owned());
        let decision = decide_failure(&spec, &job, &failure, None);
        let record = failure_record(&job, &failure, &decision, "w");
        assert_eq!(
            (record.budget_failure, record.class_failure),
            (None, Some(1))
        );
        assert_eq!((record.spent.failures, record.spent.snoozes), (3, 1));
    }
}
