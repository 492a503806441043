//! Replay in the background: a request counts the endpoint's deliveries in the range (a dry
//! run stops there), then stores a replay with that count and enqueues its job, the internal
//! kind `webhook_replay` (on the deliveries' queue), in one transaction; the job sends the
//! deliveries again [`BATCH`] at a time, each batch in one transaction with its progress
//! (`store/webhook_replays.rs`), so the API, the dashboard and the CLI show created / total and
//! when it finished, and a job retried after a crash resumes after the last batch done.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{WebhookContext, WebhookError};
use crate::error_class::ErrorClass;
use crate::job::ClaimedJob;
use crate::kinds::{ArgsError, BoxFuture, Handler, JobFailure};
use crate::routes::Route;
use crate::store::{NewReplay, REPLAY_KIND, Replay, Store};

/// Deliveries sent again per transaction.
pub const BATCH: i64 = 500;

/// The arguments of a `webhook_replay` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayArgs {
    /// The replay (`rpl_…`).
    pub replay_id: String,
}

/// What a replay request asks.
#[derive(Debug, Clone)]
pub struct ReplayAsk {
    /// The deliveries created from this time on …
    pub since: DateTime<Utc>,
    /// … and before this one.
    pub until: DateTime<Utc>,
    /// Only those that failed.
    pub failed_only: bool,
    /// Count them, send nothing.
    pub dry_run: bool,
}

/// Counts the deliveries of `endpoint` (of `workspace`) that `ask` covers and, unless it is a
/// dry run, starts their replay; the count and the replay started.
pub async fn start(
    store: &Store,
    route: &Route,
    workspace: &str,
    endpoint: &str,
    ask: &ReplayAsk,
) -> Result<(u64, Option<Replay>), WebhookError> {
    if ask.until <= ask.since {
        return Err(WebhookError::Invalid(
            "until: must be after since".to_owned(),
        ));
    }
    let ids = store
        .webhook_replay_set(endpoint, ask.since, ask.until, ask.failed_only)
        .await?;
    let count = ids.len() as u64;
    if ask.dry_run || count == 0 {
        return Ok((count, None));
    }
    let id = new_id();
    store
        .start_webhook_replay(
            &NewReplay {
                id: &id,
                endpoint_id: endpoint,
                workspace_id: workspace,
                since: ask.since,
                until: ask.until,
                failed_only: ask.failed_only,
                total: i64::try_from(count).unwrap_or(i64::MAX),
            },
            route,
        )
        .await?;
    let replay = store.webhook_replay(&id).await?;
    Ok((count, replay))
}

/// A new replay id, `rpl_` and 24 hex digits.
fn new_id() -> String {
    format!(
        "rpl_{:012x}{:012x}",
        fastrand::u64(..1 << 48),
        fastrand::u64(..1 << 48)
    )
}

/// The handler of `webhook_replay`.
pub struct ReplayHandler {
    context: WebhookContext,
}

impl ReplayHandler {
    /// The handler over `context`.
    pub fn new(context: WebhookContext) -> Self {
        ReplayHandler { context }
    }
}

impl Handler for ReplayHandler {
    fn validate(&self, args: &Value) -> Result<(), ArgsError> {
        serde_json::from_value::<ReplayArgs>(args.clone())
            .map(|_| ())
            .map_err(|e| ArgsError::shape(REPLAY_KIND, &e))
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let context = self.context.clone();
        Box::pin(async move {
            let args: ReplayArgs = serde_json::from_value(job.args.clone()).map_err(|e| {
                JobFailure::new(ErrorClass::Client, format!("webhook replay args: {e}"))
            })?;
            let route = context.route();
            loop {
                let replay = context
                    .store
                    .advance_webhook_replay(&args.replay_id, BATCH, &route)
                    .await
                    .map_err(|e| JobFailure::new(ErrorClass::Internal, e.to_string()))?;
                match replay {
                    None => return Ok(()),
                    Some(replay) if replay.finished_at.is_some() => {
                        tracing::info!(replay = %replay.id, endpoint = %replay.endpoint_id,
                            created = replay.created, total = replay.total, "webhook replay done");
                        return Ok(());
                    }
                    Some(_) => {}
                }
            }
        })
    }
}
