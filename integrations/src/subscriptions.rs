//! Outbound syncs driven by events: an enabled integration subscribes, through the engine's
//! event subscriptions (`hangar_event_subscriptions`, written in the transaction that stores
//! an event, beside the webhook fan-out), to the catalog event types its outbound data types
//! take (QuickBooks `invoices`: `invoice.created`, `invoice.sent`). Whatever entrance an
//! event comes by (the API, the Redis ingress, the Rust client), each new one then makes a
//! `sync` job `{"integration_id", "data_type", "trigger": "event", "event_id"}` with the key
//! `hangar:sync:<integration>:<event id>`; when it runs, the sync handler reads the event,
//! hands it to [`crate::sync::outbound::accept_event`] (the outbox row, idempotent per
//! integration and event) and pushes. Kept in step on every save of the integration (and for
//! all of them when `serve` starts, for integrations saved before this existed); a
//! disabled one has none (events that arrive while it is disabled are not its business).

use hangar_workers::store::{EventSubscription, StoreError};

use crate::configure::ConfigureError;
use crate::context::{IntegrationContext, SYNC};
use crate::integration::Integration;
use crate::provider::Provider;
use crate::sync::connector::Connectors;

impl IntegrationContext {
    /// Makes `integration`'s event subscriptions match its settings; returns how many it has.
    pub async fn apply_event_subscriptions(
        &self,
        integration: &Integration,
    ) -> Result<usize, StoreError> {
        let rows = desired(&self.routes, integration);
        self.store
            .set_event_subscriptions(&integration.id, &integration.workspace_id, &rows)
            .await?;
        Ok(rows.len())
    }

    /// Makes every integration's event subscriptions match its settings (at `serve`'s start:
    /// integrations saved before the subscriptions existed get theirs); returns how many
    /// subscriptions there are.
    pub async fn apply_all_event_subscriptions(&self) -> Result<usize, ConfigureError> {
        let mut n = 0;
        for integration in self.list(None).await? {
            n += self.apply_event_subscriptions(&integration).await?;
        }
        Ok(n)
    }
}

/// The subscriptions `integration` should have: one per event type an enabled outbound data
/// type of its connector takes (the first data type naming it, if two did).
pub fn desired(
    routes: &hangar_workers::routes::Routes,
    integration: &Integration,
) -> Vec<EventSubscription> {
    let connector = integration
        .provider
        .parse::<Provider>()
        .ok()
        .and_then(|p| Connectors::builtin().get(p));
    let (Some(connector), true) = (connector, integration.enabled) else {
        return Vec::new();
    };
    let route = routes.route_or_default(SYNC, None);
    let mut rows: Vec<EventSubscription> = Vec::new();
    for data_type in &integration.data_types {
        for event_type in connector.event_types(data_type) {
            if rows.iter().any(|r| r.event_type == *event_type) {
                continue;
            }
            rows.push(EventSubscription {
                event_type: (*event_type).to_owned(),
                kind: SYNC.to_owned(),
                queue: route.queue.clone(),
                max_attempts: route.max_attempts,
                args: serde_json::json!({
                    "integration_id": integration.id,
                    "data_type": data_type,
                    "trigger": "event",
                }),
                key_prefix: format!("hangar:sync:{}:", integration.id),
            });
        }
    }
    rows
}
