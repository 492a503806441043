//! The token-refresh seam of the auth retry rule. A 401 means "refresh the token and retry
//! once"; the integrations (which own credentials) implement [`TokenRefresher`]. The engine
//! asks it to refresh before deciding, and tells it when an integration needs an admin to
//! re-authorise it. [`NoRefresher`] is the default for jobs that belong to no integration.

use crate::job::ClaimedJob;
use crate::kinds::{BoxFuture, JobFailure};
use crate::retry_policy::RefreshOutcome;

/// Refreshes the credentials a job uses, after the job got a 401.
pub trait TokenRefresher: Send + Sync + 'static {
    /// Refreshes the token the job's next attempt will use.
    fn refresh<'a>(
        &'a self,
        job: &'a ClaimedJob,
        failure: &'a JobFailure,
    ) -> BoxFuture<'a, RefreshOutcome>;

    /// Records that the job's integration must be re-authorised by an admin.
    fn mark_needs_reauth<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, ()>;

    /// [`TokenRefresher::mark_needs_reauth`], then whether the job's integration carries its
    /// own re-authorisation alert (raised once per integration, resolved when it recovers):
    /// then the job's failure raises none, so that one dead credential is one alert, not
    /// the integration's and the job's. By default the job's alert is the only one.
    fn mark_needs_reauth_alerted<'a>(
        &'a self,
        job: &'a ClaimedJob,
        reason: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.mark_needs_reauth(job, reason).await;
            false
        })
    }
}

/// No credentials to refresh: every 401 is final and alerts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRefresher;

impl TokenRefresher for NoRefresher {
    fn refresh<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        _failure: &'a JobFailure,
    ) -> BoxFuture<'a, RefreshOutcome> {
        Box::pin(async { RefreshOutcome::NotConfigured })
    }

    fn mark_needs_reauth<'a>(
        &'a self,
        _job: &'a ClaimedJob,
        _reason: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
