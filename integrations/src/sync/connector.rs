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
    /// Every connector Hangar ships: QuickBooks Online, Stripe Connect, Salesforce.
    pub fn builtin() -> Self {
        let mut connectors = Connectors::default();
        connectors.register(crate::connectors::quickbooks::QuickBooks);
        connectors.register(crate::connectors::stripe::Stripe);
        connectors.register(crate::connectors::salesforce::Salesforce::default());
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
        let candidates = [
            "invoices",
            "payments",
            "payment_intents",
            "trips",
            "customers",
        ];
        let mut outbound = 0;
        for provider in Provider::ALL {
            let Some(connector) = connectors.get(provider) else {
                continue;
            };
            for data_type in candidates {
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
            outbound, 3,
            "QuickBooks invoices, Stripe payment_intents, Salesforce trips"
        );
    }
}
