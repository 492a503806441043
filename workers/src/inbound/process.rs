//! The `inbound_event` job: reads a stored push, applies the mapping table
//! ([`super::mapping::actions`]) and records what it did on the row (`processed` with its
//! outcome). Each action is idempotent, so a retried attempt repeats nothing: a published
//! event is stored once per (workspace, id), a `sync` job once per (push, integration).
//! Safety events are append-only: each report is its own row and its own Hangar event (see
//! [`super::mapping::hangar_event_id`]), never written over another.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{self, Action};
use super::{InboundContext, Scheme};
use crate::error_class::ErrorClass;
use crate::job::ClaimedJob;
use crate::kinds::{ArgsError, BoxFuture, Handler, JobFailure};
use crate::store::{InboundEvent, StoreError};
use crate::wire::EventEnvelope;

/// The arguments of an `inbound_event` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundArgs {
    /// The stored push (`hangar_inbound_events.id`).
    pub inbound_id: i64,
}

/// The handler of `inbound_event`.
pub struct InboundHandler {
    context: InboundContext,
}

impl InboundHandler {
    /// A handler over `context`.
    pub fn new(context: InboundContext) -> InboundHandler {
        InboundHandler { context }
    }
}

impl Handler for InboundHandler {
    fn validate(&self, args: &Value) -> Result<(), ArgsError> {
        serde_json::from_value::<InboundArgs>(args.clone())
            .map(|_| ())
            .map_err(|e| ArgsError::shape(super::KIND, &e))
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let context = self.context.clone();
        Box::pin(async move {
            let args: InboundArgs = serde_json::from_value(job.args.clone()).map_err(|e| {
                JobFailure::new(ErrorClass::Client, format!("inbound_event args: {e}"))
            })?;
            let event = context
                .store
                .inbound_event(args.inbound_id)
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    JobFailure::new(
                        ErrorClass::Client,
                        format!("inbound event {} not found", args.inbound_id),
                    )
                })?;
            if event.state != "received" {
                return Ok(());
            }
            let (action, outcome) = process(&context, &event).await?;
            metrics::counter!("hangar_inbound_events_processed_total",
                "provider" => event.provider.clone(), "action" => action)
            .increment(1);
            context
                .store
                .finish_inbound(event.id, "processed", &outcome)
                .await
                .map_err(internal)
        })
    }
}

fn internal(error: StoreError) -> JobFailure {
    JobFailure::new(ErrorClass::Internal, error.to_string())
}

/// Applies the mapping to `event`; returns the action's name (for the metric) and the
/// outcome recorded on the row.
async fn process(
    context: &InboundContext,
    event: &InboundEvent,
) -> Result<(&'static str, String), JobFailure> {
    let generic = Scheme::for_provider(&event.provider) == Scheme::PlaneConnection;
    let action = mapping::actions(
        &event.provider,
        generic,
        &event.workspace_id,
        &event.body,
        event.received_at,
    );
    match action {
        Action::Publish {
            event_type,
            timestamp,
            data,
        } => {
            let envelope = EventEnvelope {
                id: mapping::hangar_event_id(
                    &event.provider,
                    &event.event_id,
                    event.safety,
                    &event.body,
                ),
                event_type,
                workspace_id: event.workspace_id.clone(),
                timestamp,
                data,
            };
            let new = context
                .store
                .publish_event(&envelope, &context.webhook_route)
                .await
                .map_err(internal)?;
            Ok((
                "published",
                format!(
                    "published {} as event {}{}",
                    envelope.event_type,
                    envelope.id,
                    if new { "" } else { " (already stored)" }
                ),
            ))
        }
        Action::Sync { data_type } => {
            let found = context
                .integrations
                .integration_for(&event.workspace_id, &event.provider, data_type)
                .await
                .map_err(|e| JobFailure::new(ErrorClass::Internal, e))?;
            match found {
                Some(integration) => {
                    let job = super::enqueue_sync(
                        context,
                        &event.workspace_id,
                        &integration,
                        data_type,
                        event.id,
                    )
                    .await
                    .map_err(internal)?;
                    Ok((
                        "sync",
                        format!("sync job {job} for {data_type} of integration {integration}"),
                    ))
                }
                None => Ok((
                    "no_integration",
                    format!(
                        "no {} integration found for this workspace: no {data_type} sync \
                         enqueued (the scheduled sync picks the change up)",
                        event.provider
                    ),
                )),
            }
        }
        Action::Ignore { reason } => Ok(("ignored", format!("ignored: {reason}"))),
    }
}
