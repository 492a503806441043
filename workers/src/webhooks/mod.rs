//! Outbound event webhooks (MISSION.md §6, CONTRACT.md "Outbound webhook deliveries"): a
//! workspace's endpoints, each event fanned out to the subscribed ones in the transaction that
//! stores it, and every delivery sent as a job of the internal kind `webhook_delivery`.
//!
//! - [`endpoint`]: the endpoint model (JSON, health), the checks of a new or changed endpoint
//!   (URL and target policy, event types, the safety rule), secrets and their rotation;
//! - [`deliver`]: the handler of one delivery attempt (signed request, attempt log,
//!   classification, 410);
//! - [`batch`]: the handler's database work gathered into one transaction per batch, and
//!   [`cache`]: the endpoints and their opened secrets kept for a second;
//! - [`health`]: the health rules (degraded, disabled after 5 days failing) and their alerts;
//! - [`replay`]: a time range sent again in the background, its progress visible;
//! - [`retention`]: attempt rows deleted after 30 days;
//! - [`limits`]: the per-endpoint settings (concurrency, rate, ordering key) and their
//!   checks; the gate that enforces them with the circuit breaker is `store/webhook_gate.rs`;
//! - the rows live in the engine's store (`store/webhook_*.rs`).

pub mod batch;
pub mod cache;
pub mod deliver;
pub mod endpoint;
pub mod health;
pub mod limits;
pub mod replay;
pub mod retention;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kinds::Registry;
use crate::routes::{Route, Routes};
use crate::secrets::{Keyring, SecretError};
use crate::store::{AttemptRow, DeliveryTarget, Gate, GateAsk, HealthMove, Store, StoreError};
use crate::targets::TargetPolicy;
use crate::wire::EventEnvelope;
use batch::Batcher;
use cache::EndpointCache;

pub use endpoint::{Circuit, Endpoint, EndpointChange, Health, NewEndpoint, Rotation};
pub use limits::Limits;

/// The job kind of one delivery (internal: only the engine enqueues it).
pub const KIND: &str = "webhook_delivery";

/// The queue of the built-in `webhooks` pool.
pub const QUEUE: &str = "webhooks";

/// What can go wrong with endpoints and deliveries.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// No endpoint with this id (in the caller's workspace).
    #[error("webhook endpoint {0} not found")]
    EndpointNotFound(String),
    /// No delivery with this id (in the caller's workspace).
    #[error("webhook delivery {0} not found")]
    DeliveryNotFound(String),
    /// Bad input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The caller's role may not subscribe to these event types.
    #[error("{0}")]
    Forbidden(String),
    /// The delivery's content was expunged: it cannot be sent again.
    #[error("webhook delivery {0} was expunged: its content is gone, it cannot be resent")]
    Expunged(String),
}

/// What the delivery handler and the API share.
#[derive(Clone)]
pub struct WebhookContext {
    /// The store.
    pub store: Store,
    /// Seals and opens the endpoints' secrets.
    pub keyring: Arc<Keyring>,
    /// The HTTP client of deliveries (redirects not followed, the target policy at connect).
    pub http: reqwest::Client,
    /// Which addresses endpoint URLs may reach.
    pub targets: TargetPolicy,
    /// Where `webhook_delivery` jobs go (queue, attempt budget).
    route: Route,
    /// The shares of the delivery slots (see [`Shares`]).
    pub shares: Shares,
    /// The endpoints and their opened secrets, for a second (see [`cache`]).
    pub cache: Arc<EndpointCache>,
    /// The delivery handler's reads and writes, batched (see [`batch`]).
    pub(crate) batches: Batches,
}

/// The batchers of the delivery handler.
#[derive(Clone)]
pub(crate) struct Batches {
    /// Reads deliveries with their events' bodies.
    pub(crate) targets: Batcher<String, Option<DeliveryTarget>>,
    /// Asks the gate.
    pub(crate) gates: Batcher<GateAsk, Gate>,
    /// Records attempts.
    pub(crate) records: Batcher<AttemptRow, HealthMove>,
}

impl Batches {
    fn new(store: &Store) -> Batches {
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        Batches {
            targets: Batcher::new(move |ids: Vec<String>| {
                let store = s1.clone();
                Box::pin(async move { store.webhook_delivery_targets(&ids).await })
            }),
            gates: Batcher::new(move |asks: Vec<GateAsk>| {
                let store = s2.clone();
                Box::pin(async move { store.webhook_gates(&asks).await })
            }),
            records: Batcher::new(move |rows: Vec<AttemptRow>| {
                let store = s3.clone();
                Box::pin(async move { store.record_webhook_attempts(&rows).await })
            }),
        }
    }
}

/// How the delivery slots are shared, over every worker process (counted in the database):
/// beside each endpoint's own concurrency, one workspace holds at most `workspace` slots at
/// once, so a workspace with a backlog leaves room to the others; retries hold at most
/// `retries`, so fresh deliveries always find slots (and they are claimed first: the retry
/// lane's jobs have a lower priority). Set per pool (`webhook_workspace_share`,
/// `webhook_retry_share` in the pool that runs `webhook_delivery`: [`crate::pool_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Slots one workspace may hold (default 25, half the built-in pool's 50).
    pub workspace: i64,
    /// Slots retries may hold (default 20).
    pub retries: i64,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            workspace: 25,
            retries: 20,
        }
    }
}

impl WebhookContext {
    /// A context with its own HTTP client, whose requests reach what `targets` allows.
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        targets: TargetPolicy,
        routes: &Routes,
    ) -> WebhookContext {
        let http = crate::targets::client_builder(&targets)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        WebhookContext {
            batches: Batches::new(&store),
            store,
            keyring,
            http,
            targets,
            route: route(routes),
            shares: Shares::default(),
            cache: Arc::default(),
        }
    }

    /// Forgets what this process cached of endpoint `id` (it was just changed).
    pub fn forget(&self, id: &str) {
        self.cache.forget(id);
    }

    /// Where `webhook_delivery` jobs go.
    pub fn route(&self) -> Route {
        self.route.clone()
    }
}

/// Where `webhook_delivery` jobs go: the queue and budget of the pool that runs the kind, or
/// (no pool runs it in this process's pool files) the `webhooks` queue with the default
/// budget, where they wait for a process that runs it.
pub fn route(routes: &Routes) -> Route {
    routes
        .route(KIND, None)
        .unwrap_or_else(|_| routes.route_or_default(KIND, Some(QUEUE)))
}

/// Registers the `webhook_delivery` kind, internal: its arguments name a delivery a caller
/// must not choose.
pub fn register(registry: &mut Registry, context: &WebhookContext) {
    registry.register_internal(KIND, deliver::DeliveryHandler::new(context.clone()));
    registry.register_internal(
        crate::store::REPLAY_KIND,
        replay::ReplayHandler::new(context.clone()),
    );
}

/// The arguments of a `webhook_delivery` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryArgs {
    /// The delivery (`dlv_…`).
    pub delivery_id: String,
}

/// The envelope as a delivery sends it, `{"id","type","workspace_id","timestamp","data"}` in
/// compact JSON: computed once when the event is stored and kept on the event row, so every
/// attempt of every delivery sends the same bytes.
pub fn envelope_body(event: &EventEnvelope) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        workspace_id: &'a str,
        timestamp: String,
        data: &'a serde_json::Map<String, serde_json::Value>,
    }
    serde_json::to_string(&Body {
        id: &event.id,
        event_type: &event.event_type,
        workspace_id: &event.workspace_id,
        timestamp: event
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        data: &event.data,
    })
    .expect("an envelope serializes")
}

/// The associated data that binds a sealed secret to its endpoint.
pub(crate) fn secret_aad(endpoint_id: &str) -> String {
    format!("webhook_endpoint:{endpoint_id}")
}

/// The resources whose events are safety events, as SQL text (`'safety_report', …`), for the
/// fan-out's "all" filter (kept equal to [`crate::events::is_safety`] by a test).
pub(crate) const SAFETY_RESOURCES_SQL: &str = "'safety_report', 'investigation', 'cpa', 'hazard'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_compact_envelope_in_contract_order() {
        let event = crate::wire::parse_event_body(
            br#"{"data":{"trip_id":"t_1"},"timestamp":"2026-11-22T10:00:00Z","type":"trip.created","workspace_id":"ws_1","id":"evt_1"}"#,
        )
        .unwrap();
        assert_eq!(
            envelope_body(&event),
            r#"{"id":"evt_1","type":"trip.created","workspace_id":"ws_1","timestamp":"2026-11-22T10:00:00Z","data":{"trip_id":"t_1"}}"#
        );
    }

    #[test]
    fn the_builtin_pool_retries_a_failing_receiver_for_more_than_three_days() {
        let pools = crate::pool_config::builtin();
        let pool = pools
            .iter()
            .find(|p| p.kinds.iter().any(|k| k == KIND))
            .expect("a built-in pool runs webhook_delivery");
        assert_eq!(pool.queue, QUEUE);
        let day = std::time::Duration::from_secs(86_400);
        for class in [&pool.retry.server, &pool.retry.timeout] {
            let total: std::time::Duration = (1..=class.max_retries)
                .map(|n| crate::retry_policy::backoff(class.base_delay, class.max_delay, n))
                .sum();
            // At the lowest jitter every wait is shorter by the jitter fraction.
            let shortest = total.mul_f64(1.0 - pool.retry.jitter);
            assert!(
                shortest > 3 * day,
                "{total:?} at most, {shortest:?} at least"
            );
            assert!(total < 5 * day, "the README says about 4.4 days: {total:?}");
            assert!(pool.max_attempts as u32 > class.max_retries);
        }
    }

    #[test]
    fn the_sql_list_of_safety_resources_matches_the_catalog() {
        for t in crate::events::EVENT_TYPES {
            let resource = t.split_once('.').unwrap().0;
            assert_eq!(
                SAFETY_RESOURCES_SQL.contains(&format!("'{resource}'")),
                crate::events::is_safety(t),
                "{t}"
            );
        }
    }
}
