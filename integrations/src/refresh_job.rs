//! The `token_refresh` kind (internal: its arguments name an integration) and the engine's
//! token-refresh seam ([`hangar_workers::refresher::TokenRefresher`]) for every job of an
//! integration, both over [`IntegrationContext::refresh_token`].
//!
//! A `token_refresh` job carries `{"integration_id", "version"}`: it refreshes only if the
//! credential is still at that version (otherwise another refresh already happened and
//! planned its own next job). Its outcome: refreshed or already refreshed → completed; the
//! provider refused → the connection is `needs_reauth` with its alert, and the job completes
//! (it decided the connection's state; the alert is the integration's, not the job's); the
//! endpoint's 5xx, 429, a timeout or another process still refreshing → a failure of that
//! class, retried by the retry table.

use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::ClaimedJob;
use hangar_workers::kinds::{ArgsError, BoxFuture, Handler, JobFailure};
use hangar_workers::refresher::TokenRefresher;
use hangar_workers::retry_policy::RefreshOutcome;
use serde::Deserialize;

use crate::context::{IntegrationContext, TOKEN_REFRESH};
use crate::integration::Status;
use crate::refresh::RefreshError;
use crate::store::refresh::RefreshNeed;

/// A `token_refresh` job's arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshArgs {
    /// The connection.
    pub integration_id: String,
    /// The credential version the job was planned for.
    pub version: i64,
}

/// Runs `token_refresh` jobs.
#[derive(Clone)]
pub struct RefreshHandler {
    context: IntegrationContext,
}

impl RefreshHandler {
    /// A handler over `context`.
    pub fn new(context: IntegrationContext) -> RefreshHandler {
        RefreshHandler { context }
    }
}

impl Handler for RefreshHandler {
    fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        RefreshArgs::deserialize(args)
            .map(|_| ())
            .map_err(|e| ArgsError::shape(TOKEN_REFRESH, &e))
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let context = self.context.clone();
        Box::pin(async move {
            let args = RefreshArgs::deserialize(&job.args).map_err(|e| {
                JobFailure::new(
                    ErrorClass::Client,
                    ArgsError::shape(TOKEN_REFRESH, &e).to_string(),
                )
            })?;
            let need = RefreshNeed::VersionIs(args.version);
            match context.refresh_token(&args.integration_id, need).await {
                Ok(_) => Ok(()),
                Err(RefreshError::Transient {
                    reason,
                    class,
                    retry_after,
                }) => Err(JobFailure {
                    retry_after,
                    ..JobFailure::new(class, reason)
                }),
                Err(outcome) => {
                    tracing::info!(job_id = job.id.0, integration = %args.integration_id, %outcome, "token refresh not done");
                    Ok(())
                }
            }
        })
    }
}

/// The integration a job belongs to: its `integration_id` argument.
fn integration_of(job: &ClaimedJob) -> Option<&str> {
    job.args.get("integration_id").and_then(|v| v.as_str())
}

/// The engine's 401 rule for integration jobs: refresh single-flight (a credential saved
/// after the failed attempt started is the refresh it asks for), and mark the connection
/// `needs_reauth` when the rules say so.
#[derive(Clone)]
pub struct IntegrationRefresher {
    context: IntegrationContext,
}

impl IntegrationRefresher {
    /// A refresher over `context`.
    pub fn new(context: IntegrationContext) -> IntegrationRefresher {
        IntegrationRefresher { context }
    }
}

impl TokenRefresher for IntegrationRefresher {
    fn refresh<'a>(
        &'a self,
        job: &'a ClaimedJob,
        _failure: &'a JobFailure,
    ) -> BoxFuture<'a, RefreshOutcome> {
        Box::pin(async move {
            let Some(id) = integration_of(job) else {
                return RefreshOutcome::NotConfigured;
            };
            let need = RefreshNeed::SavedBefore(job.started_at);
            match self.context.refresh_token(id, need).await {
                Ok(_) => RefreshOutcome::Refreshed,
                Err(RefreshError::Transient { reason, .. }) => {
                    RefreshOutcome::Unavailable { reason }
                }
                Err(other) => RefreshOutcome::Failed {
                    reason: other.to_string(),
                },
            }
        })
    }

    fn mark_needs_reauth<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.mark_needs_reauth_alerted(job, reason).await;
        })
    }

    /// Marks the job's integration `needs_reauth` (which raises the integration's alert,
    /// once); true when the integration is `needs_reauth` afterwards (marked now, or by the
    /// access layer during the attempt): its alert is the one, the job raises none.
    fn mark_needs_reauth_alerted<'a>(
        &'a self,
        job: &'a ClaimedJob,
        reason: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(id) = integration_of(job) else {
                return false;
            };
            let row = match self.context.rows.get(id).await {
                Ok(row) => row,
                Err(error) => {
                    tracing::error!(integration = %id, %error, "could not read the integration to mark it needs_reauth");
                    return false;
                }
            };
            // Marked already (by the run: a 401 again with the token its own refresh gave,
            // or `invalid_grant`): its alert is the one.
            if row.integration.status == Status::NeedsReauth {
                return true;
            }
            // A credential saved after the attempt started that the run did not mark: another
            // refresher won, the next attempt (an operator's retry) has a new token.
            if row.credential_saved_at.is_some_and(|s| s > job.started_at) {
                return false;
            }
            matches!(
                self.context.needs_reauth(&row.integration, reason).await,
                Err(RefreshError::NeedsReauth { .. })
            )
        })
    }
}
