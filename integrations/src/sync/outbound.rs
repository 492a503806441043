//! Outbound records, driven by catalog events (QuickBooks: `invoice.created` → an invoice).
//!
//! **Who calls it.** The `sync` job that the engine's event subscription enqueues for a new
//! event (`crate::subscriptions`) calls it when it runs, for its own integration, and then
//! pushes (the jobs it returns are that job itself, by key). Otherwise: whoever fans an event out (the webhook fan-out once it exists, or the
//! ingress right after it stored the event) calls [`accept_event`] with the event and the
//! workspace's enabled integrations (read through the integration store). It stores one
//! outbox row per (integration, event) that takes the event — idempotent by event id — and
//! returns the `sync` jobs to enqueue (internal kind `sync`, args `{"integration_id",
//! "data_type", "trigger": "event", "event_id"}`, idempotency key
//! `hangar:sync:<integration>:<event id>`), which the caller enqueues in the same transaction
//! as its own writes or right after. Bad event data is refused with an error naming the field.
//!
//! **The push** ([`run`], an outbound `sync` run): the pending rows of the integration and
//! data type, oldest first. Each carries an idempotency key derived from the row and the
//! concurrency token it is sent with (QuickBooks `requestid`): a retry of the same write is
//! the same request, so a lost answer never makes a second invoice. A record pushed before is
//! sent as an update with its concurrency token (`SyncToken`); a stale token reads the
//! provider's copy and stores a conflict (ours = the event's record, theirs = the provider's):
//! resolving it with ours pushes again over theirs, with theirs the provider's copy is kept.
//! A pushed record's mapping holds the provider's copy and its hash, so the inbound read of
//! Hangar's own write is skipped as unchanged (echo suppression). A connector whose records
//! are the events themselves (notifications: [`Connector::one_record_per_event`]) keys each
//! record by its event's id, so every event is a create. An event-triggered run that the
//! rate budget stops ends once its own event's record is out, or snoozes until its turn
//! ([`own_turn`]).

use sha2::{Digest, Sha256};

use std::time::Duration;

use super::budget::{Calls, Stop};
use super::connector::{Connector, ConnectorError, Connectors, OutboundRecord, RateLimit};
use super::inbound::Outcome;
use super::{SyncArgs, Trigger};
use crate::access::IntegrationInfo;
use crate::store::sync_outbox::{NewOutbound, OutboxRow};
use crate::store::sync_pages::PageTarget;
use crate::store::{SyncStore, SyncStoreError};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::wire::EventEnvelope;

/// Why an event could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The event's data does not make a record; the message names the field.
    #[error("event {event_id} for integration {integration_id}: {message}")]
    InvalidData {
        event_id: String,
        integration_id: String,
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] SyncStoreError),
}

/// A `sync` job to enqueue for an accepted event.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundJob {
    /// The job's args.
    pub args: SyncArgs,
    /// Its idempotency key (one job per integration and event).
    pub idempotency_key: String,
}

/// Stores the outbound records `event` makes for `integrations` (enabled ones with an
/// outbound data type that takes the event) and returns the jobs to enqueue.
pub async fn accept_event(
    store: &SyncStore,
    connectors: &Connectors,
    integrations: &[IntegrationInfo],
    event: &EventEnvelope,
) -> Result<Vec<OutboundJob>, OutboundError> {
    let data = serde_json::Value::Object(event.data.clone());
    let mut jobs = Vec::new();
    for integration in integrations {
        if !integration.enabled || integration.workspace_id != event.workspace_id {
            continue;
        }
        let Some(connector) = connectors.get(integration.provider) else {
            continue;
        };
        for data_type in &integration.data_types {
            let Some(plan) = connector.outbound_for_event(data_type, &event.event_type, &data)
            else {
                continue;
            };
            let plan = plan.map_err(|message| OutboundError::InvalidData {
                event_id: event.id.clone(),
                integration_id: integration.id.clone(),
                message,
            })?;
            let internal_id = if connector.one_record_per_event(data_type) {
                event.id.clone()
            } else {
                plan.internal_id
            };
            store
                .enqueue_outbound(&NewOutbound {
                    integration_id: integration.id.clone(),
                    workspace_id: integration.workspace_id.clone(),
                    data_type: data_type.clone(),
                    object_type: plan.object_type.to_owned(),
                    internal_id,
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                    data: plan.body,
                    occurred_at: event.timestamp,
                })
                .await?;
            jobs.push(OutboundJob {
                args: SyncArgs {
                    integration_id: integration.id.clone(),
                    data_type: data_type.clone(),
                    trigger: Trigger::Event,
                    event_id: Some(event.id.clone()),
                },
                idempotency_key: format!("hangar:sync:{}:{}", integration.id, event.id),
            });
        }
    }
    Ok(jobs)
}

/// The idempotency key of pushing outbox row `row` with `token`: the same for every retry of
/// that write, another once the token moved (a push over a resolved conflict). 40 hex
/// characters, within QuickBooks' `requestid` limit.
fn request_id(integration_id: &str, row: i64, token: Option<&str>) -> String {
    let digest = Sha256::digest(format!("{integration_id}\n{row}\n{}", token.unwrap_or("")));
    digest[..20].iter().map(|b| format!("{b:02x}")).collect()
}

/// Pending records read at once (a Salesforce collection takes 200).
const BATCH: i64 = 200;

/// Pushes the pending records of `target`'s integration and data type: one by one, or in
/// batches of the connector's [`push_batch`](Connector::push_batch) when more than one of an
/// object type is waiting (Salesforce: sObject collections of 200). `own_event`: the event
/// that started the run (an event-triggered run), see [`own_turn`].
pub async fn run(
    connector: &dyn Connector,
    target: &PageTarget,
    own_event: Option<&str>,
    calls: &mut Calls,
    outcome: &mut Outcome,
) -> Result<(), Stop> {
    let store = calls.store.clone();
    loop {
        let rows = store
            .pending_outbound(&target.integration_id, &target.data_type, BATCH)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let full = rows.len() as i64 == BATCH;
        let mut i = 0;
        while i < rows.len() {
            // A batch holds one object type and each record once (a second event of the
            // same record waits for the next batch: it is pushed after the first).
            let batch = connector.push_batch(&rows[i].object_type).max(1);
            let mut end = i + 1;
            while end - i < batch
                && end < rows.len()
                && rows[end].object_type == rows[i].object_type
                && !rows[i..end]
                    .iter()
                    .any(|r| r.internal_id == rows[end].internal_id)
            {
                end += 1;
            }
            let pushed = if end - i == 1 {
                push_one(connector, target, calls, outcome, rows[i].clone()).await
            } else {
                push_chunk(connector, target, calls, outcome, rows[i..end].to_vec()).await
            };
            match pushed {
                Err(Stop::RateLimited {
                    wait,
                    message,
                    retry_after,
                    throttled,
                }) if own_event.is_some() => {
                    // Not among a full batch: somewhere after it, still pending.
                    let ahead = rows[i..]
                        .iter()
                        .position(|r| Some(r.event_id.as_str()) == own_event)
                        .or(full.then(|| rows.len() - i));
                    return match own_turn(ahead, wait, &calls.limit) {
                        None => {
                            outcome.log.push(format!(
                                "{message}: this run's event is pushed; the {} record(s) left \
                                 wait for their own runs",
                                rows.len() - i
                            ));
                            Ok(())
                        }
                        Some(turn) => Err(Stop::RateLimited {
                            retry_after: if ahead.unwrap_or(0) > 0 {
                                Some(turn.as_secs_f64().ceil().max(1.0).to_string())
                            } else {
                                retry_after
                            },
                            wait: turn,
                            message,
                            throttled,
                        }),
                    };
                }
                other => other?,
            }
            i = end;
        }
    }
}

/// The record of outbox row `row` to push, with what was pushed of it before.
async fn outbound_record(
    target: &PageTarget,
    calls: &Calls,
    row: &OutboxRow,
) -> Result<OutboundRecord, Stop> {
    let before = calls
        .store
        .pushed_before(&target.integration_id, &row.object_type, &row.internal_id)
        .await?;
    let (external_id, token) = before.unzip();
    let token = token.flatten();
    Ok(OutboundRecord {
        object_type: row.object_type.clone(),
        internal_id: row.internal_id.clone(),
        external_id,
        data: row.data.clone(),
        idempotency_key: request_id(&target.integration_id, row.id, token.as_deref()),
        concurrency_token: token,
    })
}

/// Pushes one row (a stale token holds a conflict).
async fn push_one(
    connector: &dyn Connector,
    target: &PageTarget,
    calls: &mut Calls,
    outcome: &mut Outcome,
    row: OutboxRow,
) -> Result<(), Stop> {
    let store = calls.store.clone();
    outcome.counts.read += 1;
    let record = outbound_record(target, calls, &row).await?;
    let external_id = record.external_id.clone();
    // The check runs once the budget's slot is had, right before the call: another run of
    // this integration (another event's) may have pushed the row while this one waited for
    // its slot with a list read before.
    let pushed = calls
        .call(|cx| {
            let store = store.clone();
            let record = record.clone();
            let row_id = row.id;
            async move {
                match store.outbound_pending(row_id).await {
                    Ok(false) => return Ok(None),
                    Ok(true) => {}
                    Err(e) => {
                        return Err(ConnectorError::Failed(JobFailure::new(
                            ErrorClass::Internal,
                            format!("reading outbox row {row_id}: {e}"),
                        )));
                    }
                }
                connector.push(cx, record).await.map(Some)
            }
        })
        .await;
    match pushed {
        Ok(None) => {
            outcome.log.push(format!(
                "{} {}: pushed by another run meanwhile",
                row.object_type, row.internal_id
            ));
            Ok(())
        }
        Ok(Some(pushed)) => {
            store.record_pushed(target, &row, &pushed).await?;
            if external_id.is_some() {
                outcome.counts.updated += 1;
            } else {
                outcome.counts.created += 1;
            }
            Ok(())
        }
        Err(Stop::StaleToken(message)) if external_id.is_some() => {
            let id = external_id.clone().unwrap_or_default();
            let object_type = row.object_type.clone();
            let theirs = calls
                .call(|cx| connector.fetch(cx, object_type.clone(), id.clone()))
                .await?;
            let conflict = store.record_push_conflict(target, &row, &theirs).await?;
            outcome.log.push(format!(
                "{} {} ({}): stale concurrency token ({message}), held as conflict {conflict}",
                row.object_type, id, row.internal_id
            ));
            outcome.counts.conflicted += 1;
            Ok(())
        }
        Err(stop) => Err(stop),
    }
}

/// Pushes `chunk` in one call: each record the provider took is recorded; the first it
/// refused stops the run after the others are recorded (that row stays pending, as a
/// failed single push would).
async fn push_chunk(
    connector: &dyn Connector,
    target: &PageTarget,
    calls: &mut Calls,
    outcome: &mut Outcome,
    chunk: Vec<OutboxRow>,
) -> Result<(), Stop> {
    let store = calls.store.clone();
    let mut records = Vec::with_capacity(chunk.len());
    for row in &chunk {
        records.push(outbound_record(target, calls, row).await?);
    }
    outcome.counts.read += chunk.len() as i64;
    let results = calls
        .call(|cx| connector.push_many(cx, records.clone()))
        .await?;
    if results.len() != chunk.len() {
        return Err(Stop::Failed(JobFailure::new(
            ErrorClass::Server,
            format!(
                "{} answered {} results for {} records",
                target.provider,
                results.len(),
                chunk.len()
            ),
        )));
    }
    outcome.log.push(format!(
        "{} {} records pushed in one call",
        chunk.len(),
        chunk[0].object_type
    ));
    let mut refused = None;
    for ((row, record), result) in chunk.iter().zip(&records).zip(results) {
        match result {
            Ok(pushed) => {
                store.record_pushed(target, row, &pushed).await?;
                if record.external_id.is_some() {
                    outcome.counts.updated += 1;
                } else {
                    outcome.counts.created += 1;
                }
            }
            Err(error) => {
                outcome.log.push(format!(
                    "{} {}: refused: {}",
                    row.object_type,
                    row.internal_id,
                    error.clone().into_failure().message
                ));
                refused.get_or_insert(error);
            }
        }
    }
    match refused {
        None => Ok(()),
        Some(error) => Err(Stop::Failed(error.into_failure())),
    }
}

/// When an event-triggered run stopped by the rate budget (or a provider's pause) comes
/// back: `None` when its own event's record is no longer pending (`ahead` is its place among
/// the pending records, oldest first) — the run ends, and the records left are each another
/// event's run's business; otherwise at its own slot of the budget: the next one (`wait`)
/// plus one per record ahead of it. So a burst of N events on a budget of one call a second (a Slack channel) snoozes
/// each of its N runs about once, instead of every run once a second until the burst is
/// through (which would spend the snooze cap of the later ones).
pub fn own_turn(ahead: Option<usize>, wait: Duration, limit: &RateLimit) -> Option<Duration> {
    let ahead = ahead?;
    let per_call = limit.window / u32::try_from(limit.per_window.max(1)).unwrap_or(u32::MAX);
    let turn = per_call.saturating_mul(u32::try_from(ahead).unwrap_or(u32::MAX));
    Some(wait.saturating_add(turn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_run_waits_for_its_own_turn_or_ends_once_its_record_is_out() {
        let limit = RateLimit {
            account: "slack:c".into(),
            per_window: 1,
            window: Duration::from_secs(1),
            concurrent: 1,
        };
        let wait = Duration::from_millis(400);
        assert_eq!(own_turn(None, wait, &limit), None);
        assert_eq!(own_turn(Some(0), wait, &limit), Some(wait));
        assert_eq!(
            own_turn(Some(5), wait, &limit),
            Some(Duration::from_millis(5400))
        );
        let fast = RateLimit {
            per_window: 100,
            ..limit
        };
        assert_eq!(
            own_turn(Some(5), wait, &fast),
            Some(Duration::from_millis(450))
        );
    }
}
