//! A workspace's alert channels (Slack, e-mail, signed webhook): list, add, remove, send a
//! test notice. Workspace settings, so `admin` (or `owner`). The configuration is write-only:
//! listings show the kind and host, never a URL with its token, a password or a secret; a
//! webhook secret Hangar generates is shown once, in the answer to the add.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use hangar_workers::alerts::deliver::send_test;
use hangar_workers::alerts::{
    AlertContext, AlertError, Channel, ChannelConfig, NewChannel, Severity, channels,
};
use hangar_workers::signing::WebhookSecret;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{Caller, Role};
use super::bodies::{ChannelCreated, Delivered};
use super::{ApiError, ApiPath, ApiState};

/// The alert context (keyring, HTTP client), present when the master key is configured.
fn context(state: &ApiState) -> Result<&AlertContext, ApiError> {
    state.alerts.as_ref().ok_or(ApiError::NoMasterKey)
}

/// The workspace's channel `id`, or 404.
async fn channel_in(state: &ApiState, workspace: &str, id: &str) -> Result<Channel, ApiError> {
    let channel = channels::get(&state.store, id).await?;
    if channel.workspace_id.as_deref() == Some(workspace) {
        Ok(channel)
    } else {
        Err(AlertError::ChannelNotFound(id.to_owned()).into())
    }
}

/// The workspace's alert channels (workspace-wide ones only; global channels are the
/// operator's, managed with `hangar alerts channels`).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/alert-channels", tag = "alerts",
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, description = "the channels, without secrets", body = [Channel]),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn list_channels(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Vec<Channel>>, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_workspace(&ws)?;
    let all = channels::list(&state.store).await?;
    Ok(Json(
        all.into_iter()
            .filter(|c| c.workspace_id.as_deref() == Some(ws.as_str()))
            .collect(),
    ))
}

/// A new channel: the configuration (tagged by `kind`) and the notice settings.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChannelBody {
    #[serde(flatten)]
    config: ChannelConfig,
    /// `warning` (the default) or `critical`: the least severity notified.
    #[serde(default = "default_severity")]
    min_severity: String,
    /// Remind every this many milliseconds while an alert stays open and unacknowledged.
    reminder_every_ms: Option<i64>,
}

fn default_severity() -> String {
    Severity::Warning.as_str().to_owned()
}

/// Adds a channel. Body: `{"kind": "slack", "webhook_url"}`, `{"kind": "email", "host",
/// "port", "username"?, "password"?, "from", "to": [...], "tls": "starttls|implicit|none"}` or
/// `{"kind": "webhook", "url", "secret"?}` (a `whsec_…` secret is generated when absent), with
/// `min_severity` (`warning` or `critical`) and `reminder_every_ms`.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/alert-channels", tag = "alerts",
    params(("ws" = String, Path, description = "workspace id")),
    request_body(content = ChannelBody, description = "the channel", content_type = "application/json"),
    responses((status = 201, description = "the channel (with `secret` when Hangar generated it)", body = ChannelCreated),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role or workspace not allowed"),
        (status = 422, description = "invalid channel (the message names the field)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin"])))]
pub async fn add_channel(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(ws): ApiPath<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ChannelCreated>), ApiError> {
    caller.require(Role::Admin)?;
    caller.require_workspace(&ws)?;
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    if raw.windows(6).any(|w| w == b"\\u0000") {
        return Err(
            AlertError::Invalid("the channel holds a NUL character (\\u0000)".to_owned()).into(),
        );
    }
    let mut body: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let mut generated = None;
    if let Some(object) = body.as_object_mut()
        && object.get("kind").and_then(Value::as_str) == Some("webhook")
        && !object.contains_key("secret")
    {
        let secret = WebhookSecret::generate().expose();
        object.insert("secret".to_owned(), secret.clone().into());
        generated = Some(secret);
    }
    let body: ChannelBody =
        serde_json::from_value(body).map_err(|e| AlertError::Invalid(e.to_string()))?;
    let new = NewChannel {
        workspace_id: Some(ws),
        config: body.config,
        min_severity: body.min_severity,
        reminder_every_ms: body.reminder_every_ms,
    };
    new.config.validate()?;
    let context = context(&state)?;
    let channel = channels::add(&state.store, &context.keyring, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelCreated {
            channel,
            secret: generated,
        }),
    ))
}

/// Removes a channel.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/alert-channels/{id}", tag = "alerts",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "channel id")),
    responses((status = 204, description = "removed"),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such channel in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn remove_channel(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_workspace(&ws)?;
    channel_in(&state, &ws, &id).await?;
    channels::remove(&state.store, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test notice through a channel now.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/alert-channels/{id}/test", tag = "alerts",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "channel id")),
    responses((status = 200, description = "delivered", body = Delivered),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such channel in this workspace"),
        (status = 422, description = "the channel refused or could not be reached (the message says how)"),
        (status = 429, description = "rate limited"), (status = 503, description = "no master key in this process")),
    security(("bearer" = ["admin"])))]
pub async fn test_channel(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Delivered>, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_workspace(&ws)?;
    channel_in(&state, &ws, &id).await?;
    send_test(context(&state)?, &id)
        .await
        .map_err(|failure| ApiError::DeliveryFailed {
            message: failure.message,
            class: failure.class.as_str(),
        })?;
    Ok(Json(Delivered { delivered: true }))
}

/// Enables a channel again (a 410 from Slack or a webhook disables it) and resolves its
/// `channel_disabled` alert.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/alert-channels/{id}/enable", tag = "alerts",
    params(("ws" = String, Path, description = "workspace id"), ("id" = String, Path, description = "channel id")),
    responses((status = 200, description = "the channel, enabled", body = Channel),
        (status = 401, description = "no valid token"), (status = 403, description = "role or workspace not allowed"),
        (status = 404, description = "no such channel in this workspace"), (status = 429, description = "rate limited")),
    security(("bearer" = ["admin"])))]
pub async fn enable_channel(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Channel>, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_workspace(&ws)?;
    channel_in(&state, &ws, &id).await?;
    channels::enable(&state.store, &id).await?;
    Ok(Json(channels::get(&state.store, &id).await?))
}
