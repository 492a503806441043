//! Inbound provider webhooks (MISSION.md §7): a provider pushes to
//! `POST /hooks/{provider}/{workspace}`; the push is verified the provider's way against the
//! raw body before anything else ([`verify`], with the (workspace, provider) material of
//! [`material`], sealed at rest), then stored once with its raw body and headers and its
//! `inbound_event` job in one transaction ([`receive`]); the job maps it to a catalog event
//! or a job of the provider's integration ([`mapping`], [`process`]).
//!
//! The binary owns the HTTP side (`src/api/inbound.rs`: size limit, unknown provider, the
//! status codes) and checks the provider id against the contract's list; this module takes
//! the id as text and never reads the environment.

pub mod mapping;
pub mod material;
pub mod process;
pub mod verify;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::job::JobId;
use crate::kinds::{BoxFuture, Registry};
use crate::routes::{Route, Routes};
use crate::secrets::{Keyring, SecretError};
use crate::store::{NewInbound, Store, StoreError};

pub use material::{Material, Scheme};

/// The job kind that processes one stored push (internal: only the engine enqueues it).
pub const KIND: &str = "inbound_event";

/// The queue of the built-in `inbound` pool.
pub const QUEUE: &str = "inbound";

/// The job kind of an integration's sync (built by the integrations crate).
pub const SYNC_KIND: &str = "sync";

/// Header names never stored with a push (credentials and signatures).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    verify::INTUIT_SIGNATURE,
    verify::STRIPE_SIGNATURE,
    verify::PLANE_SIGNATURE,
];

/// What can go wrong receiving a push.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// No material for this (workspace, provider): nothing can be verified (401).
    #[error("no inbound hook is configured for {provider} in this workspace")]
    NotConfigured {
        /// The provider.
        provider: String,
    },
    /// The signature or credentials did not verify (401).
    #[error("{0}")]
    Refused(#[from] verify::Refusal),
    /// A verified body that cannot be taken (422, the message names the field).
    #[error("{0}")]
    Body(#[from] mapping::BodyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The material could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The seam to the integrations crate (which the engine cannot see): the id of the
/// workspace's integration of a provider, for the pushes that become a job of that
/// integration (QuickBooks → `sync` for `payments`). The binary wires the integration
/// store's implementation; until then [`NoIntegrations`] answers "none", and such pushes are
/// recorded as processed with the outcome saying so (the scheduled sync still runs).
pub trait IntegrationSeam: Send + Sync + 'static {
    /// The integration of `provider` in `workspace` that moves `data_type`, if there is an
    /// enabled one with that data type enabled (only enabled data types move).
    fn integration_for<'a>(
        &'a self,
        workspace: &'a str,
        provider: &'a str,
        data_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// The seam before the integration store is wired: no integration is ever found.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIntegrations;

impl IntegrationSeam for NoIntegrations {
    fn integration_for<'a>(
        &'a self,
        _workspace: &'a str,
        _provider: &'a str,
        _data_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// What receiving and processing share.
#[derive(Clone)]
pub struct InboundContext {
    /// The store.
    pub store: Store,
    /// Seals and opens the material.
    pub keyring: Arc<Keyring>,
    /// Where `inbound_event` jobs go.
    route: Route,
    /// Where `webhook_delivery` jobs of published events go.
    webhook_route: Route,
    /// Where `sync` jobs go.
    sync_route: Route,
    /// Finds a workspace's integration of a provider.
    integrations: Arc<dyn IntegrationSeam>,
}

impl InboundContext {
    /// A context over `store`, routing by `routes`, finding integrations through `seam`.
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        routes: &Routes,
        integrations: Arc<dyn IntegrationSeam>,
    ) -> InboundContext {
        InboundContext {
            store,
            keyring,
            route: routes
                .route(KIND, None)
                .unwrap_or_else(|_| routes.route_or_default(KIND, Some(QUEUE))),
            webhook_route: crate::webhooks::route(routes),
            sync_route: routes.route_or_default(SYNC_KIND, None),
            integrations,
        }
    }

    /// Where `inbound_event` jobs go.
    pub fn route(&self) -> &Route {
        &self.route
    }
}

/// Registers the `inbound_event` kind, internal: its arguments name a stored push.
pub fn register(registry: &mut Registry, context: &InboundContext) {
    registry.register_internal(KIND, process::InboundHandler::new(context.clone()));
}

/// Seals `material` for `(ws, provider)` and stores it; returns the listing row.
pub async fn configure(
    context: &InboundContext,
    ws: &str,
    provider: &str,
    material: &Material,
) -> Result<crate::store::InboundHookRow, InboundError> {
    let json = serde_json::to_vec(material).expect("material serializes");
    let sealed = context.keyring.seal(&json, &material::aad(ws, provider));
    let key_id = context.keyring.current().id().to_owned();
    Ok(context
        .store
        .put_inbound_hook(ws, provider, material.scheme().as_str(), &sealed, &key_id)
        .await?)
}

/// Re-seals every hook's material under `new` in one transaction (`hangar keys rotate`);
/// `keyring` must open every current value. Returns how many were re-sealed.
pub async fn reseal_all(
    store: &Store,
    keyring: &Keyring,
    new: &crate::secrets::MasterKey,
) -> Result<u64, InboundError> {
    let target = Keyring::new(new.clone());
    store
        .reseal_inbound_hooks(
            |ws, provider, sealed| -> Result<(String, String), InboundError> {
                let aad = material::aad(ws, provider);
                let plain = keyring.open(sealed, &aad, "inbound hook material")?;
                Ok((target.seal(&plain, &aad), new.id().to_owned()))
            },
        )
        .await
}

/// The stored material of `(ws, provider)`, opened.
async fn material_of(
    context: &InboundContext,
    ws: &str,
    provider: &str,
) -> Result<Option<Material>, InboundError> {
    let Some((_, sealed)) = context.store.inbound_hook_material(ws, provider).await? else {
        return Ok(None);
    };
    let what = format!("inbound hook {provider} of workspace {ws}");
    let json = context
        .keyring
        .open(&sealed, &material::aad(ws, provider), &what)?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| SecretError::Corrupt { what }.into())
}

/// What became of a verified push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored with its job.
    Stored {
        /// The row.
        id: i64,
        /// Its job.
        job: JobId,
    },
    /// The same push was stored before: nothing new.
    Duplicate,
}

/// Verifies a push of `provider` to `ws` (headers with lower-case names, the raw body) at
/// `now`, then stores it with its job. Nothing is stored unless it verifies.
pub async fn receive(
    context: &InboundContext,
    provider: &str,
    ws: &str,
    headers: &Vec<(String, String)>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Received, InboundError> {
    let material =
        material_of(context, ws, provider)
            .await?
            .ok_or_else(|| InboundError::NotConfigured {
                provider: provider.to_owned(),
            })?;
    verify::verify(&material, headers, body, now)?;
    let generic = material.scheme() == Scheme::PlaneConnection;
    if provider == "quickbooks"
        && !generic
        && let Some(parts) = mapping::quickbooks_parts(body)?
    {
        // One push per realm, each deduplicated by the whole push's hash and its realm.
        let whole = mapping::identify_hash(body);
        let mut first = None;
        for (realm, part) in parts {
            let event_id = format!("{whole}#{realm}");
            let received = store_push(
                context,
                provider,
                ws,
                headers,
                mapping::Identified {
                    dedup_key: event_id.clone(),
                    event_id,
                    event_type: None,
                    safety: false,
                },
                part,
            )
            .await?;
            if first.is_none() && matches!(received, Received::Stored { .. }) {
                first = Some(received);
            }
        }
        return Ok(first.unwrap_or(Received::Duplicate));
    }
    let identified = mapping::identify(provider, generic, ws, body)?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| mapping::BodyError("the body is not UTF-8".to_owned()))?;
    store_push(context, provider, ws, headers, identified, body).await
}

/// Stores one verified push (its headers minus the secret ones) with its job.
async fn store_push(
    context: &InboundContext,
    provider: &str,
    ws: &str,
    headers: &Vec<(String, String)>,
    identified: mapping::Identified,
    body: String,
) -> Result<Received, InboundError> {
    let mut kept = serde_json::Map::new();
    for (name, value) in headers {
        if SECRET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        match kept.get_mut(name) {
            Some(serde_json::Value::String(previous)) => {
                previous.push_str(", ");
                previous.push_str(value);
            }
            _ => {
                kept.insert(name.clone(), serde_json::Value::String(value.clone()));
            }
        }
    }
    let new = NewInbound {
        workspace_id: ws.to_owned(),
        provider: provider.to_owned(),
        event_id: identified.event_id,
        dedup_key: identified.dedup_key,
        event_type: identified.event_type,
        safety: identified.safety,
        body,
        headers: serde_json::Value::Object(kept),
    };
    Ok(
        match context
            .store
            .record_inbound(&new, KIND, &context.route)
            .await?
        {
            Some((id, job)) => Received::Stored { id, job },
            None => Received::Duplicate,
        },
    )
}

/// Enqueues the `sync` job of integration `integration_id` for `data_type`, started by the
/// push `inbound_id` (args `{"integration_id", "data_type", "trigger": "webhook",
/// "event_id": "<inbound_id>"}`: a connector whose records arrive by push reads the ones this
/// push names; one job per push and integration); returns its id.
pub async fn enqueue_sync(
    context: &InboundContext,
    workspace: &str,
    integration_id: &str,
    data_type: &str,
    inbound_id: i64,
) -> Result<JobId, StoreError> {
    let mut job = crate::job::NewJob::new(
        SYNC_KIND,
        serde_json::json!({
            "integration_id": integration_id,
            "data_type": data_type,
            "trigger": "webhook",
            "event_id": inbound_id.to_string(),
        }),
    );
    job.queue = context.sync_route.queue.clone();
    job.max_attempts = context.sync_route.max_attempts;
    job.workspace_id = Some(workspace.to_owned());
    job.idempotency_key = Some(format!("hangar:inbound:{inbound_id}:{integration_id}"));
    Ok(context.store.enqueue(&job).await?.id)
}
