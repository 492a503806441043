//! A workspace's integrations: `PUT …/integrations/{provider}` (create or replace the
//! settings and, write-only, the credential), `GET` one and the list, and
//! `POST …/{provider}/sync` (a manual sync). Roles by the provider's category, server-side
//! (MISSION.md §9): ops integrations need `admin`, the safety one (`asap`) `safety_manager`,
//! billing (`stripe`) `owner` or `admin`; every role reads. The document names `admin` for
//! the writing routes (an unknown provider is checked against it too); `asap` asks for
//! `safety_manager` instead. No answer and no log line ever holds a credential: the
//! integration JSON shows only its kind, version and the access token's expiry, and a
//! malformed `credentials` field is refused without echoing it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use hangar_integrations::IntegrationContext;
use hangar_integrations::credentials::Credential;
use hangar_integrations::integration::{Integration, IntegrationRequest, InvalidField};
use hangar_integrations::provider::{Category, Provider};
use hangar_workers::job::JobId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::{ApiError, ApiPath, ApiState};

/// The role that may change an integration of `provider`.
pub fn role_for(provider: Provider) -> Role {
    match provider.category() {
        Category::Ops | Category::Billing => Role::Admin,
        Category::Safety => Role::SafetyManager,
    }
}

fn context(state: &ApiState) -> Result<&IntegrationContext, ApiError> {
    state.integrations.as_ref().ok_or(ApiError::NoIntegrations)
}

/// The caller may change `provider`'s integration in `ws`; the provider parsed.
fn may_change(caller: &Caller, ws: &str, provider: &str) -> Result<Provider, ApiError> {
    let parsed = provider.parse::<Provider>();
    caller.require(parsed.as_ref().map_or(Role::Admin, |p| role_for(*p)))?;
    caller.require_workspace(ws)?;
    Ok(parsed?)
}

/// The workspace's integrations.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/integrations", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, description = "the integrations, without credentials", body = [Integration]),
        (status = 401, description = "no valid token"), (status = 403, description = "workspace not allowed"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["viewer"])))]
pub async fn list_integrations(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Vec<Integration>>, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    Ok(Json(context(&state)?.list(Some(&ws)).await?))
}

/// One integration.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/integrations/{provider}", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"),
        ("provider" = String, Path, description = "provider id, e.g. quickbooks")),
    responses((status = 200, description = "the integration, without credentials", body = Integration),
        (status = 401, description = "no valid token"), (status = 403, description = "workspace not allowed"),
        (status = 404, description = "unknown provider, or none configured in this workspace"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["viewer"])))]
pub async fn get_integration(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, provider)): ApiPath<(String, String)>,
) -> Result<Json<Integration>, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_workspace(&ws)?;
    let provider: Provider = provider.parse()?;
    Ok(Json(context(&state)?.find(&ws, provider).await?))
}

/// Creates or replaces an integration. Body: `{"enabled", "data_types": [...], "frequency":
/// "realtime|hourly|every_6_hours|daily|manual|<6-field cron>", "settings": {…},
/// "credentials": {"api_key": "…"} | {"oauth": {"access_token", "refresh_token",
/// "expires_at", "token_url", "client_id", "client_secret", "scopes"}}}`. Credentials are
/// write-only; without them the stored ones stay. `asap` needs `safety_manager`, `stripe`
/// `owner` or `admin`, the others `admin`.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/integrations/{provider}", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"),
        ("provider" = String, Path, description = "provider id, e.g. quickbooks")),
    request_body(content = IntegrationRequest, description = "the settings", content_type = "application/json"),
    responses((status = 200, description = "the integration, without credentials", body = Integration),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role (by the provider's category) or workspace not allowed"),
        (status = 404, description = "unknown provider"),
        (status = 422, description = "invalid settings (the message names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin"])))]
pub async fn put_integration(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, provider)): ApiPath<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Integration>, ApiError> {
    let provider = may_change(&caller, &ws, &provider)?;
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let request = parse_request(&raw)?;
    Ok(Json(context(&state)?.put(&ws, provider, request).await?))
}

fn invalid(field: &str, problem: impl Into<String>) -> ApiError {
    ApiError::Integration(
        InvalidField {
            field: field.to_owned(),
            problem: problem.into(),
        }
        .into(),
    )
}

/// The body, with the credential decoded on its own so that a malformed one is refused
/// without its value in the message (the decoder quotes what it could not take).
fn parse_request(raw: &[u8]) -> Result<IntegrationRequest, ApiError> {
    let mut body: Value =
        serde_json::from_slice(raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| invalid("body", "must be a JSON object"))?;
    let credentials = match object.remove("credentials") {
        None | Some(Value::Null) => None,
        Some(value) => Some(serde_json::from_value::<Credential>(value).map_err(|_| {
            invalid(
                "credentials",
                "expected {\"api_key\": \"…\"} or {\"oauth\": {\"access_token\", \"refresh_token\", \
                 \"expires_at\" (RFC 3339), \"token_url\", \"client_id\", \"client_secret\", \
                 \"scopes\": [...]}} with string values",
            )
        })?),
    };
    let mut request: IntegrationRequest =
        serde_json::from_value(body).map_err(|e| invalid("body", e.to_string()))?;
    request.credentials = credentials;
    Ok(request)
}

/// The body of a manual sync (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Only this data type (default: every enabled one).
    pub data_type: Option<String>,
}

/// The answer to a manual sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    /// The first job's id (one `sync` job per data type).
    pub id: JobId,
    /// Every job's id, in the order of the integration's data types.
    pub ids: Vec<JobId>,
}

/// Starts a manual sync: one `sync` job per enabled data type (or the one asked for), with
/// `{"integration_id", "data_type", "trigger": "manual"}`. 202 with the first job's id in
/// `id` and all of them in `ids`.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/integrations/{provider}/sync", tag = "integrations",
    params(("ws" = String, Path, description = "workspace id"),
        ("provider" = String, Path, description = "provider id, e.g. quickbooks")),
    request_body(content = SyncRequest, description = "optional (an empty body syncs every enabled data type): one data type", content_type = "application/json"),
    responses((status = 202, description = "the sync jobs were enqueued", body = SyncStarted),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role (by the provider's category) or workspace not allowed"),
        (status = 404, description = "unknown provider, or none configured in this workspace"),
        (status = 409, description = "disabled, needs re-authorisation, or the data type is not enabled"),
        (status = 422, description = "invalid body"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin"])))]
pub async fn sync_integration(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, provider)): ApiPath<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let provider = may_change(&caller, &ws, &provider)?;
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    let request = if raw.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        let value: Value =
            serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| invalid("body", e.to_string()))?
    };
    let ids = context(&state)?
        .sync_now(&ws, provider, request.data_type.as_deref())
        .await?;
    let first = *ids
        .first()
        .ok_or_else(|| invalid("data_types", "the integration has no data type to sync"))?;
    Ok((StatusCode::ACCEPTED, Json(SyncStarted { id: first, ids })))
}
