//! A workspace's inbound hooks (README, "Inbound webhooks"): the verification material of
//! each provider that pushes to `POST /hooks/{provider}/{ws}`. `PUT` sets it (QuickBooks
//! `{"verifier_token"}`, Stripe `{"signing_secret": "whsec_…"}`; Avinode and every other
//! provider `{}`, and the answer holds the generated credentials or `whsec_` secret, shown
//! this once), `GET` says which providers are configured (never the material), `DELETE`
//! removes it; `…/inbound-events` lists the stored pushes. Roles by the provider's category:
//! safety (`asap`) `safety_manager`, billing (`stripe`) and the others `admin` (`owner`
//! always); every route first needs `admin` or `safety_manager`. The document names `admin` for
//! the routes of one provider's hook (the role of most providers), as for the integrations.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hangar_integrations::provider::{Category, Provider, UnknownProvider};
use hangar_workers::inbound::{self, InboundContext, Material, Scheme};
use hangar_workers::store::{InboundEvent, InboundHookRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::webhook_bodies::require_webhooks;
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// A provider's inbound hook in a workspace, without its material.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundHook {
    /// The provider id.
    pub provider: String,
    /// How its pushes are verified: `intuit`, `stripe`, `basic` or `planeconnection`.
    pub scheme: Scheme,
    /// Whether material is set (pushes are refused with 401 until it is).
    pub configured: bool,
    /// Where the provider pushes: `/hooks/{provider}/{ws}` on this server.
    pub path: String,
    /// The role that manages it (`owner` always may).
    pub role: String,
    /// When it was first set.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was last set.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The answer of a `PUT`: the hook, and what Hangar generated (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundHookSet {
    /// The hook.
    #[serde(flatten)]
    pub hook: InboundHook,
    /// Avinode `{"username", "password"}` to register as its webhook's Basic credentials;
    /// the generic scheme `{"secret": "whsec_…"}`; absent when the admin gave the material.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<serde_json::Value>,
}

/// The body of a `PUT` (which fields depends on the provider; see the route).
#[derive(Debug, Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "the document's schema of the body; Material::from_request reads it per provider"
)]
pub struct SetInboundHook {
    /// QuickBooks: the verifier token of the Intuit developer portal.
    pub verifier_token: Option<String>,
    /// Stripe: the endpoint's signing secret, `whsec_…`.
    pub signing_secret: Option<String>,
}

/// The query of `…/inbound-events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboundEventsQuery {
    /// Only this provider's pushes.
    pub provider: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

fn context(state: &ApiState) -> Result<&InboundContext, ApiError> {
    state.inbound.as_ref().ok_or(ApiError::NoMasterKey)
}

fn provider(id: &str) -> Result<Provider, ApiError> {
    id.parse()
        .map_err(|e: UnknownProvider| ApiError::UnknownProvider(e))
}

/// The role that manages a provider's inbound hook.
pub fn manager(provider: Provider) -> Role {
    match provider.category() {
        Category::Safety => Role::SafetyManager,
        Category::Billing | Category::Ops => Role::Admin,
    }
}

fn view(ws: &str, provider: Provider, row: Option<&InboundHookRow>) -> InboundHook {
    InboundHook {
        provider: provider.id().to_owned(),
        scheme: Scheme::for_provider(provider.id()),
        configured: row.is_some(),
        path: format!("/hooks/{}/{ws}", provider.id()),
        role: manager(provider).as_str().to_owned(),
        created_at: row.map(|r| r.created_at),
        updated_at: row.map(|r| r.updated_at),
    }
}

/// Checks the caller may manage `id`'s hook in `ws`; returns the provider.
fn may_manage(caller: &Caller, ws: &str, id: &str) -> Result<Provider, ApiError> {
    require_webhooks(caller)?;
    caller.require_workspace(ws)?;
    let provider = provider(id)?;
    caller.require(manager(provider))?;
    Ok(provider)
}

/// Every provider's inbound hook in the workspace: which are configured (never the material).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/inbound-hooks", tag = "inbound",
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, description = "every provider, configured or not", body = [InboundHook]),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn list_hooks(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Vec<InboundHook>>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let rows = state.store.inbound_hooks(&ws).await?;
    Ok(Json(
        Provider::ALL
            .into_iter()
            .map(|p| view(&ws, p, rows.iter().find(|r| r.provider == p.id())))
            .collect(),
    ))
}

/// One provider's inbound hook (configured or not; never the material).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/inbound-hooks/{provider}", tag = "inbound",
    params(("ws" = String, Path, description = "workspace id"), ("provider" = String, Path, description = "provider id")),
    responses((status = 200, description = "the hook", body = InboundHook),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed (asap needs safety_manager, the others admin)"),
        (status = 404, description = "unknown provider"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn get_hook(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<InboundHook>, ApiError> {
    let provider = may_manage(&caller, &ws, &id)?;
    let rows = state.store.inbound_hooks(&ws).await?;
    let row = rows.iter().find(|r| r.provider == provider.id());
    Ok(Json(view(&ws, provider, row)))
}

/// Sets a provider's material: QuickBooks `{"verifier_token"}`, Stripe `{"signing_secret":
/// "whsec_…"}`; Avinode and the others take `{}` (or no body) and the answer's `credentials`
/// hold what Hangar generated, shown this once. Setting it again replaces it.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/inbound-hooks/{provider}", tag = "inbound",
    params(("ws" = String, Path, description = "workspace id"), ("provider" = String, Path, description = "provider id")),
    request_body(content = SetInboundHook, description = "the provider's material (empty for generated ones)", content_type = "application/json"),
    responses((status = 200, description = "the hook, with generated credentials shown once", body = InboundHookSet),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed (asap needs safety_manager, the others admin)"),
        (status = 404, description = "unknown provider"),
        (status = 422, description = "missing or unknown field (the message names it)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin"])))]
pub async fn put_hook(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InboundHookSet>, ApiError> {
    let provider = may_manage(&caller, &ws, &id)?;
    hangar_workers::wire::check_identifier("workspace", &ws)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let raw = body.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let fields = if raw.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&raw) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::Unprocessable(
                    "the body: expected a JSON object".to_owned(),
                ));
            }
            Err(e) => return Err(ApiError::InvalidJson(e.to_string())),
        }
    };
    let material = Material::from_request(Scheme::for_provider(provider.id()), &fields)
        .map_err(|e| ApiError::Unprocessable(e.0))?;
    let row = inbound::configure(context(&state)?, &ws, provider.id(), &material).await?;
    Ok(Json(InboundHookSet {
        hook: view(&ws, provider, Some(&row)),
        credentials: material.shown_once(),
    }))
}

/// Removes a provider's material: its pushes are refused (401) from now on.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/inbound-hooks/{provider}", tag = "inbound",
    params(("ws" = String, Path, description = "workspace id"), ("provider" = String, Path, description = "provider id")),
    responses((status = 204, description = "removed"),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "unknown provider, or none configured"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn delete_hook(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let provider = may_manage(&caller, &ws, &id)?;
    if state.store.delete_inbound_hook(&ws, provider.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no inbound hook is configured for {} in workspace {ws}",
            provider.id()
        )))
    }
}

/// The workspace's stored pushes, newest first, of the providers the caller manages (raw
/// body and headers without credentials, processing state and outcome).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/inbound-events", tag = "inbound",
    params(("ws" = String, Path, description = "workspace id"), InboundEventsQuery),
    responses((status = 200, description = "the pushes", body = [InboundEvent]),
        (status = 400, description = "bad query"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "unknown provider"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin", "safety_manager"])))]
pub async fn list_events(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<InboundEventsQuery>,
) -> Result<Json<Vec<InboundEvent>>, ApiError> {
    require_webhooks(&caller)?;
    caller.require_workspace(&ws)?;
    let only = query.provider.as_deref().map(provider).transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let mut events = state
        .store
        .inbound_events(&ws, only.map(Provider::id), limit)
        .await?;
    events.retain(|e| {
        e.provider
            .parse::<Provider>()
            .is_ok_and(|p| caller.role.allows(manager(p)))
    });
    Ok(Json(events))
}
