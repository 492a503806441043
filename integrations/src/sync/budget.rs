//! The calls of one run ([`Calls`]): each takes a request of the provider account's shared,
//! paced budget first and calls at its slot (a fraction of a second off at most: QuickBooks
//! paces one request every 126 ms). A slot further off than [`MAX_PACING_WAIT`], a run
//! that has already waited [`PACING_PER_RUN`] for slots, a provider's pause or a full house of
//! calls in flight end the run as `rate_limited` with the wait, so the job waits instead of
//! sleeping in a worker slot (a wait for Hangar's own budget uses no attempt and no snooze:
//! see [`Stop::RateLimited`]). A 429 pauses the whole account for its `Retry-After` (the job
//! that got it snoozes), and a 401 refreshes the token once (single-flight, through
//! [`IntegrationAccess::refresh_after_unauthorized`]) and retries once; a 401 again, with the
//! token the refresh gave, marks the connection `needs_reauth`
//! ([`IntegrationAccess::unauthorized_after_refresh`]: unless another refresher moved the
//! credential meanwhile, whose token is then tried). A destination gone for good disables the
//! integration ([`IntegrationAccess::disable`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::retry_after::parse_retry_after;

use super::connector::{CallContext, ConnectorError, RateLimit};
use crate::access::{AccessError, AccessToken, IntegrationAccess, IntegrationInfo};
use crate::store::SyncStore;
use crate::store::sync_budget::Grant;

/// The longest a call waits for its slot in the paced budget inside the run (longer: the
/// run yields and the job snoozes).
pub const MAX_PACING_WAIT: Duration = Duration::from_secs(2);

/// The most a run waits for slots in all (then it yields: a backfill under the budget is a
/// chain of runs, each well inside a pool's attempt timeout, none holding a worker slot for
/// minutes of pacing).
pub const PACING_PER_RUN: Duration = Duration::from_secs(15);

/// The most tokens of other refreshers a run tries after its own refresh was refused too
/// (each one a credential another process saved meanwhile); then the 401 is the job's.
const MAX_RACED: u32 = 3;

/// Why a run stops early.
#[derive(Debug)]
pub enum Stop {
    /// The budget is spent, or the provider throttled: wait this long (the raw
    /// `Retry-After` when the provider gave one).
    RateLimited {
        wait: Duration,
        message: String,
        retry_after: Option<String>,
        /// The provider answered 429: the job snoozes (counted against the pool's
        /// `max_snoozes`). False: Hangar's own paced budget (no slot near enough, the run's
        /// pacing spent, the account paused, a full house of calls in flight): the job waits
        /// without using an attempt or a snooze, however long the backfill.
        throttled: bool,
    },
    /// A write carried a concurrency token the provider no longer has (the provider's
    /// message): the caller holds the record as a conflict.
    StaleToken(String),
    /// A classified failure.
    Failed(JobFailure),
}

impl Stop {
    /// The failure the job ends with (a stale token that reached here is a client failure).
    pub fn into_failure(self) -> JobFailure {
        match self {
            Stop::Failed(f) => f,
            Stop::StaleToken(message) => ConnectorError::StaleToken(message).into_failure(),
            Stop::RateLimited {
                message,
                retry_after,
                ..
            } => JobFailure {
                class: ErrorClass::RateLimit,
                message,
                http_status: Some(429),
                retry_after,
            },
        }
    }
}

impl From<crate::store::SyncStoreError> for Stop {
    fn from(e: crate::store::SyncStoreError) -> Self {
        Stop::Failed(JobFailure::new(ErrorClass::Internal, e.to_string()))
    }
}

/// The calls of one run.
pub struct Calls {
    pub store: SyncStore,
    pub access: Arc<dyn IntegrationAccess>,
    pub integration: IntegrationInfo,
    pub token: AccessToken,
    pub http: reqwest::Client,
    pub targets: hangar_workers::targets::TargetPolicy,
    pub limit: RateLimit,
    /// Calls made to the provider.
    pub made: i64,
    /// Whether the one refresh after a 401 was used.
    pub refreshed: bool,
    /// Tokens saved by other refreshers tried after this run's refreshed token got a 401.
    pub raced: u32,
    /// The time spent waiting for slots of the paced budget.
    pub paced: Duration,
}

impl Calls {
    /// Makes one call `f` under the budget and the 401 rule.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Stop>
    where
        F: FnMut(CallContext) -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        loop {
            let ready = MAX_PACING_WAIT.min(PACING_PER_RUN.saturating_sub(self.paced));
            match self.store.take_request(&self.limit, ready).await? {
                Grant::Go(after) => {
                    if !after.is_zero() {
                        metrics::counter!("hangar_sync_rate_budget_waits_total",
                            "provider" => self.integration.provider.id(), "reason" => "paced")
                        .increment(1);
                        tokio::time::sleep(after).await;
                        self.paced += after;
                    }
                }
                Grant::Wait(wait) => {
                    metrics::counter!("hangar_sync_rate_budget_waits_total",
                        "provider" => self.integration.provider.id(), "reason" => "budget")
                    .increment(1);
                    return Err(Stop::RateLimited {
                        wait,
                        message: format!(
                            "rate budget of {} spent; resumes in {} ms",
                            self.limit.account,
                            wait.as_millis()
                        ),
                        retry_after: Some(wait.as_secs().max(1).to_string()),
                        throttled: false,
                    });
                }
            }
            self.made += 1;
            let result = f(CallContext {
                integration: self.integration.clone(),
                token: self.token.clone(),
                http: self.http.clone(),
                targets: self.targets.clone(),
            })
            .await;
            self.store.release_request(&self.limit.account).await?;
            match result {
                Ok(value) => return Ok(value),
                Err(ConnectorError::Unauthorized(message)) if !self.refreshed => {
                    self.refreshed = true;
                    tracing::info!(integration = %self.integration.id, %message, "401: refreshing the token once");
                    self.token = self
                        .access
                        .refresh_after_unauthorized(&self.integration.id, self.token.version)
                        .await
                        .map_err(access_failure)?;
                }
                Err(ConnectorError::Unauthorized(message)) if self.raced < MAX_RACED => {
                    // Refused again with the token of this run's refresh: the credential is
                    // dead, unless another refresher saved a newer one meanwhile (then its
                    // token is tried, and the connection stays active).
                    let reason = format!("401 again after a token refresh: {message}");
                    self.token = self
                        .access
                        .unauthorized_after_refresh(
                            &self.integration.id,
                            self.token.version,
                            &reason,
                        )
                        .await
                        .map_err(access_failure)?;
                    self.raced += 1;
                    tracing::info!(integration = %self.integration.id, version = self.token.version,
                        "401 after the refresh; another refresher's token is tried");
                }
                Err(ConnectorError::Throttled {
                    message,
                    retry_after,
                }) => {
                    let wait = retry_after
                        .as_deref()
                        .and_then(|r| parse_retry_after(r, std::time::SystemTime::now()))
                        .unwrap_or(Duration::from_secs(60));
                    let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    self.store.pause_account(&self.limit.account, until).await?;
                    metrics::counter!("hangar_sync_rate_budget_waits_total",
                        "provider" => self.integration.provider.id(), "reason" => "throttled")
                    .increment(1);
                    return Err(Stop::RateLimited {
                        wait,
                        message,
                        retry_after,
                        throttled: true,
                    });
                }
                Err(ConnectorError::StaleToken(message)) => return Err(Stop::StaleToken(message)),
                Err(ConnectorError::Gone(message)) => {
                    if let Err(error) = self.access.disable(&self.integration.id, &message).await {
                        tracing::error!(integration = %self.integration.id, %error,
                            "could not disable an integration whose destination is gone");
                    }
                    return Err(Stop::Failed(ConnectorError::Gone(message).into_failure()));
                }
                Err(other) => return Err(Stop::Failed(other.into_failure())),
            }
        }
    }
}

/// A credential that could not be had, as a failure: a transient cause is retried, a dead
/// credential is final (the integration was marked `needs_reauth` by the access layer).
pub fn access_failure(error: AccessError) -> Stop {
    let class = match &error {
        AccessError::Transient(_) => ErrorClass::Server,
        AccessError::NeedsReauth(..) => ErrorClass::Auth,
        AccessError::NotFound(_) | AccessError::NotActive { .. } => ErrorClass::Client,
    };
    Stop::Failed(JobFailure::new(class, error.to_string()))
}
