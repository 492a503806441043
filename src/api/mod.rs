//! The JSON API under `/api/v1` (CONTRACT.md, "HTTP API"). Every route is declared with
//! `#[utoipa::path]` beside its handler, with the role it needs as the operation's bearer
//! scope, and registered through `utoipa_axum::routes!`, so `GET /api/v1/openapi.json` is
//! generated from the handlers and cannot drift; the integration tests walk that document and
//! check every route against every role. Every error is `{"error": {"code", "message"}}`
//! ([`bodies::ErrorBody`], which the document gives every error response, including the 405
//! of a known path with another method, which names the allowed ones in `Allow`); no SQL or
//! internals leak.

mod alert_channels;
mod alerts;
mod auth;
mod bodies;
mod conflicts;
mod dead_letters;
mod error;
pub mod events;
mod inbound;
mod inbound_secrets;
mod integrations;
mod jobs;
mod jobs_bulk;
mod publish;
mod queues;
mod schedules;
pub(crate) mod sync_runs;
pub(crate) mod webhook_bodies;
mod webhook_deliveries;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hangar_integrations::IntegrationContext;
use hangar_workers::alerts::AlertContext;
use hangar_workers::client::Client;
use hangar_workers::inbound::InboundContext;
use hangar_workers::store::Store;
use hangar_workers::webhooks::WebhookContext;
use hangar_workers::wire::MAX_MESSAGE_BYTES;
use utoipa::openapi::info::{ContactBuilder, LicenseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::RedisConfig;

pub use auth::{
    Caller, RATE_PER_SEC, Role, TokenError, authenticate, create_token, hash as token_hash,
    list_tokens, revoke_token,
};
pub use error::ApiError;
pub use inbound_secrets::manager as inbound_hook_manager;

/// The longest a request may take before it is answered 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API handlers need: shared, so that the clone axum makes for every request and
/// every `State` extractor is one reference count, not a copy of the contexts' maps,
/// strings and handles (they were a measurable part of a request's CPU under load).
#[derive(Clone)]
pub struct ApiState(Arc<ApiShared>);

/// The contents of [`ApiState`], read through it.
#[derive(Clone)]
pub struct ApiShared {
    /// The job store.
    pub store: Store,
    /// Turns job requests into jobs (kinds, pools).
    pub client: Arc<Client>,
    /// Per-token request rate.
    pub limiter: Arc<auth::RateLimiter>,
    /// Keyring and HTTP client of the alert channels (present with the master key).
    pub alerts: Option<AlertContext>,
    /// Keyring, target policy and job route of the webhook endpoints (with the master key).
    pub webhooks: Option<WebhookContext>,
    /// The integrations (present with the master key).
    pub integrations: Option<IntegrationContext>,
    /// Keyring and job route of inbound provider webhooks (with the master key).
    pub inbound: Option<InboundContext>,
    /// The Redis ingress, when configured (its dead letters).
    pub redis: Option<RedisConfig>,
}

impl std::ops::Deref for ApiState {
    type Target = ApiShared;

    fn deref(&self) -> &ApiShared {
        &self.0
    }
}

impl ApiState {
    /// The state over `store` and `client`.
    pub fn new(store: Store, client: Arc<Client>) -> ApiState {
        ApiState(Arc::new(ApiShared {
            store,
            client,
            limiter: Arc::default(),
            alerts: None,
            webhooks: None,
            integrations: None,
            inbound: None,
            redis: None,
        }))
    }

    fn shared(&mut self) -> &mut ApiShared {
        Arc::make_mut(&mut self.0)
    }

    /// The same, able to read and act on the Redis ingress's dead letters.
    pub fn with_redis(mut self, redis: Option<RedisConfig>) -> ApiState {
        self.shared().redis = redis;
        self
    }

    /// The same, able to take inbound provider webhooks and manage their material.
    pub fn with_inbound(mut self, inbound: Option<InboundContext>) -> ApiState {
        self.shared().inbound = inbound;
        self
    }

    /// The same, able to manage webhook endpoints.
    pub fn with_webhooks(mut self, webhooks: Option<WebhookContext>) -> ApiState {
        self.shared().webhooks = webhooks;
        self
    }

    /// The same, able to manage integrations.
    pub fn with_integrations(mut self, integrations: Option<IntegrationContext>) -> ApiState {
        self.shared().integrations = integrations;
        self
    }

    /// The same, able to manage alert channels.
    pub fn with_alerts(mut self, alerts: Option<AlertContext>) -> ApiState {
        self.shared().alerts = alerts;
        self
    }
}

/// Every route with its OpenAPI description.
fn documented() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(publish::post_event))
        .routes(routes!(publish::post_job, jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::run_again_job))
        .routes(routes!(jobs_bulk::bulk_retry))
        .routes(routes!(jobs_bulk::bulk_cancel))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::ack_alert))
        .routes(routes!(
            alert_channels::list_channels,
            alert_channels::add_channel
        ))
        .routes(routes!(alert_channels::remove_channel))
        .routes(routes!(alert_channels::test_channel))
        .routes(routes!(alert_channels::enable_channel))
        .routes(routes!(sync_runs::list_runs))
        .routes(routes!(sync_runs::run_series))
        .routes(routes!(sync_runs::get_run))
        .routes(routes!(sync_runs::list_changes))
        .routes(routes!(conflicts::list_conflicts))
        .routes(routes!(conflicts::resolve_conflict))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(
            webhooks::get_endpoint,
            webhooks::patch_endpoint,
            webhooks::delete_endpoint
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::pause_endpoint))
        .routes(routes!(webhooks::resume_endpoint))
        .routes(routes!(webhook_deliveries::list_deliveries))
        .routes(routes!(webhook_deliveries::delivery_series))
        .routes(routes!(webhook_deliveries::replay))
        .routes(routes!(webhook_deliveries::list_replays))
        .routes(routes!(webhook_deliveries::resend))
        .routes(routes!(webhook_deliveries::expunge))
        .routes(routes!(integrations::list_integrations))
        .routes(routes!(
            integrations::get_integration,
            integrations::put_integration
        ))
        .routes(routes!(integrations::sync_integration))
        .routes(routes!(inbound_secrets::list_hooks))
        .routes(routes!(
            inbound_secrets::get_hook,
            inbound_secrets::put_hook,
            inbound_secrets::delete_hook
        ))
        .routes(routes!(inbound_secrets::list_events))
        .routes(routes!(queues::list_queues))
        .routes(routes!(queues::queue_series))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(queues::list_workers))
        .routes(routes!(events::list_published_events))
        .routes(routes!(events::get_published_event))
        .routes(routes!(
            dead_letters::list_dead_letters,
            dead_letters::delete_dead_letters
        ))
        .routes(routes!(dead_letters::replay_dead_letters))
        .routes(routes!(dead_letters::trim_dead_letters))
        .routes(routes!(schedules::list_schedules))
        .routes(routes!(schedules::get_schedule))
        .routes(routes!(schedules::enable_schedule))
        .routes(routes!(schedules::disable_schedule))
        .routes(routes!(schedules::run_schedule))
        // The providers' pushes: outside /api/v1, authenticated by their signatures.
        .routes(routes!(inbound::receive_hook))
}

/// The OpenAPI document of the API.
pub fn openapi() -> OpenApi {
    let (_, mut doc) = documented().split_for_parts();
    doc.info.title = "Hangar API".to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "Bearer tokens from `hangar tokens create`. Each operation's `bearer` scopes are the \
         roles it takes (any one of them): viewer < operator < admin | safety_manager < owner. \
         `POST /hooks/{provider}/{ws}` takes no token (`security: [{}]`): the provider's \
         signature authenticates it."
            .to_owned(),
    );
    // The defaults name the OpenAPI crate's author and licence, not this project's.
    doc.info.contact = Some(ContactBuilder::new().name(Some("Hangar")).build());
    doc.info.license = Some(
        LicenseBuilder::new()
            .name(env!("CARGO_PKG_LICENSE"))
            .identifier(Some(env!("CARGO_PKG_LICENSE")))
            .build(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.schemas.insert(
        bodies::ErrorBody::name().into_owned(),
        bodies::ErrorBody::schema(),
    );
    give_errors_their_body(&mut doc);
    doc
}

/// Every 4xx and 5xx response of every operation is the error body: said once here rather
/// than in each handler's annotation, so a new route cannot forget it.
fn give_errors_their_body(doc: &mut OpenApi) {
    let error_body = Ref::from_schema_name(bodies::ErrorBody::name());
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let is_error = status.starts_with('4') || status.starts_with('5');
                if let (true, RefOr::T(response)) = (is_error, response)
                    && response.content.is_empty()
                {
                    response.content.insert(
                        "application/json".to_owned(),
                        RefOr::T(Content::new(Some(error_body.clone()))),
                    );
                }
            }
        }
    }
}

/// The `/api/v1` routes.
pub fn routes(state: ApiState) -> Router {
    let (router, _) = documented().split_for_parts();
    let doc = Arc::new(openapi());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .layer(middleware::from_fn(timeout))
        .with_state(state)
}

/// The answer to a path under `/api/` that no route serves (the server's fallback sends
/// other unknown paths to the dashboard's HTML 404 page).
pub fn not_found() -> ApiError {
    ApiError::NoRoute
}

/// A known path asked with a method it does not have; the router adds `Allow`.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        path: uri.path().to_owned(),
        method: method.to_string(),
    }
}

async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(REQUEST_TIMEOUT.as_secs()).into_response(),
    }
}

/// `Path`, with a malformed segment answered by the API's error body (400).
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `Query`, with a malformed query answered by the API's error body (400).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}
