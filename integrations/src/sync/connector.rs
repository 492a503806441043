//! The [`Connector`] trait every provider implements, and [`Connectors`], the registry by
//! provider (like the engine's job kinds). A connector speaks its provider's HTTP shapes and
//! classifies its provider's own failure signals; everything else (cursors, mappings,
//! conflicts, budgets, audit) is the engine's and the same for every provider.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::{BoxFuture, JobFailure};

use super::{Direction, InboundRecord, RecordClass};
use crate::access::{AccessToken, IntegrationInfo};
use crate::provider::Provider;

/// A provider call that failed, classified by the connector from the provider's own shapes.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorError {
    /// The access token was refused (QuickBooks: 401, Fault code 3200): refresh and retry once.
    Unauthorized(String),
    /// The provider throttled the call (QuickBooks: 429 `ThrottleExceeded`); wait this long.
    Throttled {
        message: String,
        retry_after: Option<String>,
    },
    /// A write carried a concurrency token the provider no longer has (QuickBooks: stale
    /// `SyncToken`): the record is a conflict.
    StaleToken(String),
    /// The provider says the destination is gone for good (Slack: the channel is archived
    /// or was deleted, a webhook answered 410): the integration is disabled with an alert and
    /// the call is not retried.
    Gone(String),
    /// Any other failure, already classified.
    Failed(JobFailure),
}

impl ConnectorError {
    /// The engine's failure for this error.
    pub fn into_failure(self) -> JobFailure {
        match self {
            ConnectorError::Unauthorized(message) => JobFailure {
                class: ErrorClass::Auth,
                message,
                http_status: Some(401),
                retry_after: None,
            },
            ConnectorError::Throttled {
                message,
                retry_after,
            } => JobFailure {
                class: ErrorClass::RateLimit,
                message,
                http_status: Some(429),
                retry_after,
            },
            ConnectorError::StaleToken(message) => JobFailure {
                class: ErrorClass::Client,
                message,
                http_status: Some(400),
                retry_after: None,
            },
            ConnectorError::Gone(message) => JobFailure {
                class: ErrorClass::Client,
                message,
                http_status: Some(410),
                retry_after: None,
            },
            ConnectorError::Failed(failure) => failure,
        }
    }

    /// The class this error is counted under.
    pub fn class(&self) -> ErrorClass {
        self.clone().into_failure().class
    }
}

/// One page of changes, in (modified time, id) order. The engine reads on from the last
/// record's time until a page brings nothing past the cursor.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The records of the page.
    pub records: Vec<InboundRecord>,
}

/// One page of a full scan.
#[derive(Clone, Debug, Default)]
pub struct ScanPage {
    /// The records of the page.
    pub records: Vec<InboundRecord>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<String>,
}

/// How a call reaches the provider: the integration, its token, and the HTTP client.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The integration, read when the job started.
    pub integration: IntegrationInfo,
    /// The token, read when the job started (or after a refresh).
    pub token: AccessToken,
    /// An HTTP client that obeys the target policy.
    pub http: reqwest::Client,
    /// The target policy itself, for connectors that do not speak HTTP (SMTP).
    pub targets: hangar_workers::targets::TargetPolicy,
}

/// A provider account's request budget (QuickBooks: per realm).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// The account the budget belongs to (`quickbooks:<realm id>`).
    pub account: String,
    /// Requests per window.
    pub per_window: i64,
    /// The window.
    pub window: Duration,
    /// Calls in flight at once.
    pub concurrent: i64,
}

/// The result of pushing one outbound record.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    /// The provider's id of the record.
    pub external_id: String,
    /// The record as the provider now holds it (its hash is what an inbound re-read of
    /// Hangar's own write is recognised by).
    pub payload: serde_json::Value,
    /// The provider's modification time.
    pub modified_at: DateTime<Utc>,
    /// The provider's new concurrency token.
    pub concurrency_token: Option<String>,
}

/// An outbound record to push.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRecord {
    /// The provider's object type (`Invoice`).
    pub object_type: String,
    /// The platform's id of the record.
    pub internal_id: String,
    /// The provider's id, when it was pushed before (an update).
    pub external_id: Option<String>,
    /// The concurrency token last seen for it (QuickBooks `SyncToken`).
    pub concurrency_token: Option<String>,
    /// The platform's data, as the event carried it.
    pub data: serde_json::Value,
    /// The idempotency key of this write (the same on every retry of it).
    pub idempotency_key: String,
}

/// What a connector does for the engine.
pub trait Connector: Send + Sync + 'static {
    /// The provider.
    fn provider(&self) -> Provider;

    /// The data types it moves, each with its direction and the object types it reads.
    fn data_type(&self, data_type: &str) -> Option<DataTypeSpec>;

    /// The names of every data type [`Connector::data_type`] knows (what an admin may
    /// enable, listed when one asks for another). Empty by default: a connector that does
    /// not list them still has each one checked by `data_type`.
    fn data_types(&self) -> &'static [&'static str] {
        &[]
    }

    /// The conflict rule class of an object type.
    fn record_class(&self, object_type: &str) -> RecordClass;

    /// The request budget of the integration's provider account (`token`: the credential
    /// the run calls with; Stripe's budget depends on the key's mode).
    fn rate_limit(
        &self,
        integration: &IntegrationInfo,
        token: &AccessToken,
    ) -> Result<RateLimit, JobFailure>;

    /// How far back the changes feed reaches; an older cursor needs a full reconciliation.
    fn changes_window(&self) -> chrono::Duration;

    /// How far back the changes feed of `data_type` reaches for `integration` (default:
    /// [`Connector::changes_window`]; the manifest connector reads it from the
    /// integration's manifest, per stream).
    fn changes_window_for(
        &self,
        integration: &IntegrationInfo,
        data_type: &str,
    ) -> chrono::Duration {
        let _ = (integration, data_type);
        self.changes_window()
    }

    /// How far before the cursor a run starts reading (late-committed records).
    fn lookback(&self) -> chrono::Duration;

    /// Changes of `data_type` since `since` (inclusive), oldest first, one page.
    fn changes_since(
        &self,
        cx: CallContext,
        data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>>;

    /// One page of a full scan of `data_type` from `position` (`None`: the start); the
    /// position of the next page, or `None` when this one was the last.
    fn scan(
        &self,
        cx: CallContext,
        data_type: String,
        position: Option<String>,
    ) -> BoxFuture<'static, Result<ScanPage, ConnectorError>>;

    /// Pushes one record (create, or update with its concurrency token), idempotently.
    fn push(
        &self,
        cx: CallContext,
        record: OutboundRecord,
    ) -> BoxFuture<'static, Result<Pushed, ConnectorError>>;

    /// The catalog event types outbound `data_type` takes (what its integration subscribes
    /// to while enabled; see [`Connector::outbound_for_event`]).
    fn event_types(&self, data_type: &str) -> &'static [&'static str] {
        let _ = data_type;
        &[]
    }

    /// Whether each event makes a record of its own for outbound `data_type` (notifications:
    /// a message per event, keyed by the event's id) rather than a create or an update of
    /// the platform record the event names (an invoice).
    fn one_record_per_event(&self, data_type: &str) -> bool {
        let _ = data_type;
        false
    }

    /// Whether outbound `data_type` takes events of `event_type` (`None`: it does not), and
    /// the provider's record built from the event's `data` (an error names the field).
    fn outbound_for_event(
        &self,
        data_type: &str,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Option<Result<OutboundPlan, String>>;

    /// Reads the provider's current copy of a record (for a stale-token conflict's "theirs").
    fn fetch(
        &self,
        cx: CallContext,
        object_type: String,
        external_id: String,
    ) -> BoxFuture<'static, Result<InboundRecord, ConnectorError>>;

    /// Whether the records of inbound `data_type` arrive by provider push only (Avinode's
    /// RFQs: the provider publishes no list to read or reconcile against). A run started by
    /// a push reads the records the push names ([`Connector::records_of_push`]); any other
    /// run of such a data type reads nothing (and never reconciles, so removes nothing).
    fn reads_pushes(&self, data_type: &str) -> bool {
        let _ = data_type;
        false
    }

    /// The records a verified provider push (`push`, its JSON body) names, read from the
    /// provider, for a data type that [`reads_pushes`](Connector::reads_pushes).
    fn records_of_push(
        &self,
        cx: CallContext,
        data_type: String,
        push: serde_json::Value,
    ) -> BoxFuture<'static, Result<Page, ConnectorError>> {
        let _ = (cx, data_type, push);
        Box::pin(async { Ok(Page::default()) })
    }

    /// Whether inbound `data_type` has a feed of deletions the provider reports record by
    /// record (Salesforce's `deleted`): read after the changes feed by
    /// [`Connector::removed_since`], each one removed at once (an ordinary record marked
    /// removed, a financial one held for review, a safety one appended), instead of waiting
    /// for a full reconciliation to find it gone.
    fn removals_feed(&self, data_type: &str) -> bool {
        let _ = data_type;
        false
    }

    /// The records of `data_type` deleted at the provider since `since` (inclusive), each
    /// with `deleted: true`, for a data type with a [`removals_feed`](Connector::removals_feed).
    /// `Ok(None)`: the provider no longer holds deletions that old (a later full
    /// reconciliation finds them gone).
    fn removed_since(
        &self,
        cx: CallContext,
        data_type: String,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Option<Vec<InboundRecord>>, ConnectorError>> {
        let _ = (cx, data_type, since);
        Box::pin(async { Ok(Some(Vec::new())) })
    }

    /// How many outbound records of `object_type` one provider call may push together
    /// ([`Connector::push_many`]); 1 (the default): one [`Connector::push`] each.
    fn push_batch(&self, object_type: &str) -> usize {
        let _ = object_type;
        1
    }

    /// Pushes `records` (all of one object type, at most [`push_batch`](Connector::push_batch))
    /// in one provider call; one result per record, in order. `Err`: the call itself failed
    /// (nothing is known to be pushed). The default pushes them one by one.
    fn push_many(
        &self,
        cx: CallContext,
        records: Vec<OutboundRecord>,
    ) -> BoxFuture<'static, Result<Vec<Result<Pushed, ConnectorError>>, ConnectorError>> {
        let pushes: Vec<_> = records
            .into_iter()
            .map(|record| self.push(cx.clone(), record))
            .collect();
        Box::pin(async move {
            let mut results = Vec::with_capacity(pushes.len());
            for push in pushes {
                results.push(push.await);
            }
            Ok(results)
        })
    }
}

/// An outbound record built from a catalog event's data.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundPlan {
    /// The provider's object type (`Invoice`).
    pub object_type: &'static str,
    /// The platform's id of the record (e.g. the event's `invoice_id`).
    pub internal_id: String,
    /// The provider's body.
    pub body: serde_json::Value,
}

/// A data type of a connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTypeSpec {
    /// Which way it moves.
    pub direction: Direction,
    /// The provider's object types it covers (`Payment`).
    pub object_types: Vec<&'static str>,
}

/// The connectors known to this process, by provider.
#[derive(Clone, Default)]
pub struct Connectors {
    by_provider: HashMap<Provider, Arc<dyn Connector>>,
}

impl Connectors {
    /// Every connector Hangar ships: QuickBooks Online, Stripe Connect, Salesforce, Avinode,
    /// ForeFlight Dispatch, Slack, Email, and the manifest connector of each system that
    /// publishes nothing.
    pub fn builtin() -> Self {
        let mut connectors = Connectors::default();
        for manifest in crate::connectors::manifest::templates::builtin() {
            connectors.register(manifest.clone());
        }
        connectors.register(crate::connectors::quickbooks::QuickBooks);
        connectors.register(crate::connectors::stripe::Stripe);
        connectors.register(crate::connectors::salesforce::Salesforce::default());
        connectors.register(crate::connectors::avinode::Avinode);
        connectors.register(crate::connectors::foreflight::ForeFlight);
        connectors.register(crate::connectors::slack::Slack);
        connectors.register(crate::connectors::email::Email::default());
        connectors
    }

    /// Adds or replaces the connector of its provider.
    pub fn register(&mut self, connector: impl Connector) {
        self.by_provider
            .insert(connector.provider(), Arc::new(connector));
    }

    /// The connector of `provider`.
    pub fn get(&self, provider: Provider) -> Option<Arc<dyn Connector>> {
        self.by_provider.get(&provider).cloned()
    }

    /// The data types of `provider`'s connector with their directions, in the connector's
    /// order; `None` without a connector.
    pub fn data_types(&self, provider: Provider) -> Option<Vec<(&'static str, Direction)>> {
        let connector = self.by_provider.get(&provider)?;
        Some(
            connector
                .data_types()
                .iter()
                .filter_map(|d| Some((*d, connector.data_type(d)?.direction)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outbound data type of a built-in connector names the events it takes, so an
    /// enabled integration subscribes to them (`subscriptions.rs`) and events reach it; a
    /// connector that builds records from events nobody subscribes it to pushes nothing.
    #[test]
    fn every_outbound_data_type_subscribes_to_the_events_it_takes() {
        let connectors = Connectors::builtin();
        let mut candidates = vec![
            "invoices",
            "payments",
            "payment_intents",
            "trips",
            "customers",
            "flight_times",
            "messages",
            "safety_reports",
            "rfqs",
            "schedules",
            "flights",
        ];
        for data_type in crate::connectors::notifications::DATA_TYPES {
            if !candidates.contains(&data_type) {
                candidates.push(data_type);
            }
        }
        let mut outbound = 0;
        for provider in Provider::ALL {
            let Some(connector) = connectors.get(provider) else {
                continue;
            };
            for &data_type in &candidates {
                let Some(spec) = connector.data_type(data_type) else {
                    continue;
                };
                if spec.direction != Direction::Out {
                    continue;
                }
                outbound += 1;
                let types = connector.event_types(data_type);
                assert!(
                    !types.is_empty(),
                    "{provider} {data_type}: outbound, but subscribes to no event type"
                );
                for event_type in types {
                    assert!(
                        connector
                            .outbound_for_event(data_type, event_type, &serde_json::json!({}))
                            .is_some(),
                        "{provider} {data_type}: subscribes to {event_type} but does not take it"
                    );
                }
            }
        }
        assert_eq!(
            outbound,
            15 + 2 * crate::connectors::notifications::DATA_TYPES.len(),
            "QuickBooks invoices, Stripe payment_intents, Salesforce trips, Avinode schedules, \
             ForeFlight trips, one outbound stream of each of the ten manifest templates, and \
             every notification data type of Slack and Email"
        );
    }
}
