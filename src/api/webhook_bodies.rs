//! The request and answer bodies of the webhook routes, and the rule of who may manage an
//! endpoint.

use chrono::{DateTime, Utc};
use hangar_workers::events;
use hangar_workers::webhooks::{Endpoint, WebhookError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::auth::{Caller, Role};

/// The body of a create: `{"url", "event_types"?, "description"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `https://…` (`http` only when private targets are allowed).
    pub url: String,
    /// Event types of the catalog; absent or empty = every type (see README for safety types).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Deliveries in flight at once at most, 1 to 100 (default 10).
    pub max_in_flight: Option<i32>,
    /// Requests per second at most, 1 to 1000 (default: unlimited).
    pub rate_limit_per_s: Option<i32>,
    /// A JSON pointer into the event's data (e.g. `/trip_id`): deliveries with the same value
    /// there go one at a time, in event order (default: unordered).
    pub ordering_key: Option<String>,
}

/// The body of a `PATCH`: any of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpoint {
    /// A new URL.
    pub url: Option<String>,
    /// A new filter (empty = every type).
    pub event_types: Option<Vec<String>>,
    /// A new description.
    pub description: Option<String>,
    /// Disable, or enable again (which releases the held deliveries).
    pub enabled: Option<bool>,
    /// Deliveries in flight at once at most, 1 to 100.
    pub max_in_flight: Option<i32>,
    /// Requests per second at most, 1 to 1000; null removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub rate_limit_per_s: Option<Option<i32>>,
    /// A JSON pointer into the event's data; null makes the endpoint unordered.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub ordering_key: Option<Option<String>>,
}

/// A field that is present (`Some`), with its value or null (`Some(None)`); absent is `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of a rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (default 86400, at most
    /// 604800).
    pub grace_seconds: Option<i64>,
    /// End the old secret now.
    #[serde(default)]
    pub revoke_now: bool,
}

/// The body of a replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The deliveries created from this time on.
    pub since: DateTime<Utc>,
    /// … and before this one (default: now).
    pub until: Option<DateTime<Utc>>,
    /// Only those that failed.
    #[serde(default)]
    pub failed_only: bool,
    /// Count them, send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// An endpoint with its secret (create and rotate answers: the only times it is shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_…`: keep it, it is not shown again.
    pub secret: String,
    /// Until when the previous secret still signs (rotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// An endpoint after a change, with the held deliveries an enabling released.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointChanged {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Held deliveries sent now.
    pub released: u64,
}

/// How many deliveries a replay or resend covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    /// Deliveries counted (dry run) or sent again.
    pub count: u64,
}

/// The answer of `…/replay`: the count, and the replay started (none for a dry run or when
/// nothing matched), whose progress `…/replays` shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayStarted {
    /// Deliveries counted (dry run) or being sent again.
    pub count: u64,
    /// The replay running in the background.
    pub replay: Option<hangar_workers::store::Replay>,
}

/// The query of `…/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

/// A JSON body: not JSON is 400, the wrong shape 422 naming the field.
pub fn parse<T: DeserializeOwned + Default>(raw: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) && empty_ok {
        return Ok(T::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| WebhookError::Invalid(e.to_string()).into())
}

/// The same, for bodies without a default.
pub fn parse_required<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| WebhookError::Invalid(e.to_string()).into())
}

/// Every webhook route needs `admin` or `safety_manager` (or `owner`).
pub fn require_webhooks(caller: &Caller) -> Result<(), ApiError> {
    if caller.role.allows(Role::Admin) || caller.role.allows(Role::SafetyManager) {
        Ok(())
    } else {
        caller.require(Role::Admin)
    }
}

/// Whether the caller may subscribe to safety events, and to the others.
pub fn rights(caller: &Caller) -> (bool, bool) {
    (
        caller.role.allows(Role::SafetyManager),
        caller.role.allows(Role::Admin),
    )
}

/// Changing, resending or replaying an endpoint needs the rights to everything it receives:
/// safety types the safety right, the others the admin right, an "all" filter the admin right
/// (and the safety right too when it receives safety events).
pub fn may_manage(caller: &Caller, endpoint: &Endpoint) -> Result<(), ApiError> {
    let (safety, others) = rights(caller);
    let needs_safety = endpoint.event_types.iter().any(|t| events::is_safety(t))
        || (endpoint.event_types.is_empty() && endpoint.safety_allowed);
    let needs_others = endpoint.event_types.is_empty()
        || endpoint.event_types.iter().any(|t| !events::is_safety(t));
    if needs_safety && !safety {
        return caller.require(Role::SafetyManager);
    }
    if needs_others && !others {
        return caller.require(Role::Admin);
    }
    Ok(())
}
