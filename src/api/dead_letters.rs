//! The Redis ingress's dead letters (`/api/v1/ingress/dead-letters`): list them (`viewer`),
//! replay, delete and trim them (`operator`). They are refused entries of any workspace, so
//! only tokens valid for every workspace use these routes (403 otherwise); without Redis in
//! this process there are none (404).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::{ApiError, ApiQuery, ApiState};
use crate::config::RedisConfig;
use crate::redis_ingress::dead_letter_actions::{
    self, DeadLetterError, ReplayReport, Selection, Trim,
};
use crate::redis_ingress::{DeadLetter, read_dead_letters};

/// The most dead letters one list returns.
const MAX_LIMIT: usize = 1_000;

/// 403 for a workspace token, then the role check, then the Redis settings (404 without).
fn admit(state: &ApiState, caller: &Caller, need: Role) -> Result<RedisConfig, ApiError> {
    caller.require(need)?;
    if caller.workspace.is_some() {
        return Err(ApiError::WorkspaceToken);
    }
    state
        .redis
        .clone()
        .ok_or(ApiError::DeadLetters(DeadLetterError::NotConfigured))
}

/// The body, parsed, or a 400 naming what was wrong.
fn body<T: serde::de::DeserializeOwned>(raw: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let raw = raw.map_err(|e| ApiError::BadBody(e.body_text()))?;
    serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// `limit` of `GET /api/v1/ingress/dead-letters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

/// A page of dead letters and how many the stream holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    /// Entries in the dead-letter stream.
    pub total: u64,
    /// The newest ones, newest first.
    pub entries: Vec<DeadLetter>,
}

/// Which dead letters to replay: `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Dead letter ids (`1733050000000-0`), at most 1000.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every dead letter there is when the replay starts.
    #[serde(default)]
    pub all: bool,
}

/// Which dead letters to delete.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Dead letter ids, at most 1000.
    pub ids: Vec<String>,
}

/// How to trim: `{"older_than": "7d"}` or `{"keep": N}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrimBody {
    /// Remove the entries dead-lettered longer ago than this (`90s`, `30m`, `12h`, `7d`).
    pub older_than: Option<String>,
    /// Keep only the newest this many.
    pub keep: Option<u64>,
}

/// How many entries an action removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Removed {
    /// Entries removed from the dead-letter stream.
    pub removed: u64,
}

/// Lists the dead-letter stream, newest first.
#[utoipa::path(get, path = "/api/v1/ingress/dead-letters", tag = "ingress", params(DeadLettersQuery),
    responses((status = 200, description = "the newest dead letters and the stream's length", body = DeadLetters),
        (status = 400, description = "bad limit"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no Redis ingress in this process"),
        (status = 429, description = "rate limited"), (status = 503, description = "Redis unreachable")),
    security(("bearer" = ["viewer"])))]
pub async fn list_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<DeadLettersQuery>,
) -> Result<Json<DeadLetters>, ApiError> {
    let redis = admit(&state, &caller, Role::Viewer)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is out of range (1 to {MAX_LIMIT})"
        )));
    }
    let (entries, total) = read_dead_letters(&redis, limit).await?;
    Ok(Json(DeadLetters { total, entries }))
}

/// Replays dead letters into the ingress stream they came from (after the producer or the
/// pools were fixed): each entry's original `msg` is re-added, and the dead entry removed
/// only once that succeeded. A replayed entry that is still bad comes back as a new dead
/// letter with its reason. Entries without `msg`, or redacted for personal data, stay.
#[utoipa::path(post, path = "/api/v1/ingress/dead-letters/replay", tag = "ingress",
    request_body(content = ReplayBody, description = "`ids` or `all`", content_type = "application/json"),
    responses((status = 200, description = "what happened to each entry", body = ReplayReport),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no Redis ingress in this process"),
        (status = 422, description = "no ids, or a malformed id (the message names it)"),
        (status = 429, description = "rate limited"), (status = 503, description = "Redis unreachable")),
    security(("bearer" = ["operator"])))]
pub async fn replay_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<ReplayReport>, ApiError> {
    let redis = admit(&state, &caller, Role::Operator)?;
    let ask: ReplayBody = body(raw)?;
    let selection = match (ask.all, ask.ids.is_empty()) {
        (true, true) => Selection::All,
        (true, false) => {
            return Err(
                DeadLetterError::Invalid("ids: give ids or all, not both".to_owned()).into(),
            );
        }
        (false, _) => {
            dead_letter_actions::check_ids(&ask.ids)?;
            Selection::Ids(ask.ids)
        }
    };
    Ok(Json(dead_letter_actions::replay(&redis, &selection).await?))
}

/// Deletes dead letters.
#[utoipa::path(delete, path = "/api/v1/ingress/dead-letters", tag = "ingress",
    request_body(content = DeleteBody, description = "the ids", content_type = "application/json"),
    responses((status = 200, description = "how many were removed", body = Removed),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no Redis ingress in this process"),
        (status = 422, description = "no ids, or a malformed id"),
        (status = 429, description = "rate limited"), (status = 503, description = "Redis unreachable")),
    security(("bearer" = ["operator"])))]
pub async fn delete_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Removed>, ApiError> {
    let redis = admit(&state, &caller, Role::Operator)?;
    let ask: DeleteBody = body(raw)?;
    let removed = dead_letter_actions::delete(&redis, &ask.ids).await?;
    Ok(Json(Removed { removed }))
}

/// Trims the dead-letter stream: the entries older than `older_than`, or all but the newest
/// `keep`.
#[utoipa::path(post, path = "/api/v1/ingress/dead-letters/trim", tag = "ingress",
    request_body(content = TrimBody, description = "`older_than` or `keep`", content_type = "application/json"),
    responses((status = 200, description = "how many were removed", body = Removed),
        (status = 400, description = "not JSON"), (status = 401, description = "no valid token"),
        (status = 403, description = "role not allowed, or a workspace token"),
        (status = 404, description = "no Redis ingress in this process"),
        (status = 422, description = "neither or both of older_than and keep, or a bad age"),
        (status = 429, description = "rate limited"), (status = 503, description = "Redis unreachable")),
    security(("bearer" = ["operator"])))]
pub async fn trim_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Removed>, ApiError> {
    let redis = admit(&state, &caller, Role::Operator)?;
    let ask: TrimBody = body(raw)?;
    let how = match (ask.older_than, ask.keep) {
        (Some(age), None) => Trim::OlderThan(dead_letter_actions::parse_age(&age)?),
        (None, Some(keep)) => Trim::KeepNewest(keep),
        _ => {
            return Err(DeadLetterError::Invalid(
                "give one of older_than (e.g. \"7d\") and keep (a number)".to_owned(),
            )
            .into());
        }
    };
    let removed = dead_letter_actions::trim(&redis, how).await?;
    Ok(Json(Removed { removed }))
}
