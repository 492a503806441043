//! A webhook endpoint: its JSON, its health, the checks of a new or changed endpoint and the
//! operations the API and the CLI call (create with a fresh secret, change, rotate the secret,
//! pause, resume, enable, delete).
//!
//! **The safety rule.** Safety event types (`events::is_safety`) need `safety_manager` or
//! `owner`; every other type `admin` or `owner` (the roles are the binary's: it tells the
//! engine whether the caller may subscribe to safety events). An endpoint whose filter is
//! "all" (absent or empty) receives safety events only if its creator could subscribe to them
//! (`safety_allowed`, fixed at creation and whenever the filter is changed); an admin's "all"
//! endpoint gets every non-safety type.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{WebhookContext, WebhookError, secret_aad};
use crate::events;
use crate::signing::WebhookSecret;
use crate::store::NewEndpointRow;
use crate::targets::{TargetPolicy, check_literal};

/// Consecutive failed attempts after which an endpoint is `degraded` (and its workspace
/// alerted).
pub const DEGRADED_AFTER: i32 = 3;
/// Consecutive failed attempts after which the endpoint's circuit opens: its deliveries wait
/// (no attempt used) for [`crate::store::CIRCUIT_COOLDOWN`], then one probe goes; a success
/// closes it, a failure opens it again.
pub const CIRCUIT_AFTER: i32 = 5;
/// Default concurrency of an endpoint: deliveries in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: i32 = 10;
/// Highest concurrency an endpoint may ask for.
pub const MAX_IN_FLIGHT: i32 = 100;
/// Highest rate limit, requests per second.
pub const MAX_RATE_PER_S: i32 = 1000;
/// Default grace of a rotated-out secret: 24 hours.
pub const DEFAULT_GRACE_SECONDS: i64 = 86_400;
/// Longest grace of a rotated-out secret: 7 days.
pub const MAX_GRACE_SECONDS: i64 = 604_800;
/// Longest URL.
const MAX_URL_BYTES: usize = 2048;
/// Longest description.
const MAX_DESCRIPTION_BYTES: usize = 1024;

/// How an endpoint is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Deliveries succeed (or failed fewer than [`DEGRADED_AFTER`] times in a row).
    Healthy,
    /// The last [`DEGRADED_AFTER`] or more attempts failed.
    Degraded,
    /// Paused by an operator: new deliveries are held.
    Paused,
    /// Disabled (410, 5 days failing, or an operator): new deliveries are held.
    Disabled,
}

impl Health {
    /// Every health, best first.
    pub const ALL: [Health; 4] = [
        Health::Healthy,
        Health::Degraded,
        Health::Paused,
        Health::Disabled,
    ];

    /// The health of an endpoint in these states.
    pub fn of(enabled: bool, paused: bool, failure_streak: i32) -> Health {
        if !enabled {
            Health::Disabled
        } else if paused {
            Health::Paused
        } else if failure_streak >= DEGRADED_AFTER {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Paused => "paused",
            Health::Disabled => "disabled",
        }
    }
}

/// The state of an endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Deliveries go.
    Closed,
    /// Deliveries wait until `circuit_open_until`.
    Open,
    /// One probe is allowed through.
    HalfOpen,
}

impl Circuit {
    /// The state stored as `name` (unknown names read as closed).
    pub fn of(name: &str) -> Circuit {
        match name {
            "open" => Circuit::Open,
            "half_open" => Circuit::HalfOpen,
            _ => Circuit::Closed,
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// An endpoint as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// `ep_…`.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives; empty = all (safety ones only if `safety_allowed`).
    pub event_types: Vec<String>,
    /// Free text.
    pub description: String,
    /// False once disabled (410, 5 days failing, `PATCH enabled=false`).
    pub enabled: bool,
    /// `healthy`, `degraded`, `paused` or `disabled`.
    pub health: Health,
    /// Whether its creator could subscribe to safety events (see the module doc).
    pub safety_allowed: bool,
    /// When an operator paused it.
    pub paused_at: Option<DateTime<Utc>>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The last successful attempt.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The first failure since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts in a row.
    pub failure_streak: i32,
    /// Deliveries in flight at once at most (default 10).
    pub max_in_flight: i32,
    /// Requests per second at most (a burst of one second's worth); null = unlimited.
    pub rate_limit_per_s: Option<i32>,
    /// A JSON pointer into the event's data (e.g. `/trip_id`): deliveries with the same value
    /// there go one at a time, in event order; null = unordered.
    pub ordering_key: Option<String>,
    /// `closed` (deliveries go), `open` (after 5 failures in a row: deliveries wait, no
    /// attempt used, until `circuit_open_until`) or `half_open` (one probe in flight; a
    /// success closes it, a failure opens it again).
    pub circuit: Circuit,
    /// Until when an open circuit holds deliveries back.
    pub circuit_open_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint as asked for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// The workspace.
    pub workspace_id: String,
    /// The URL.
    pub url: String,
    /// The filter (empty = all).
    pub event_types: Vec<String>,
    /// Free text.
    pub description: String,
    /// Whether the caller may subscribe to safety events.
    pub safety_allowed: bool,
    /// Whether the caller may subscribe to the other events.
    pub others_allowed: bool,
    /// Concurrency, rate limit and ordering key (absent: the defaults).
    pub limits: super::limits::Limits,
}

/// A change to an endpoint (`PATCH`): absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// A new URL.
    pub url: Option<String>,
    /// A new filter.
    pub event_types: Option<Vec<String>>,
    /// A new description.
    pub description: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New limits (absent fields stay).
    pub limits: super::limits::Limits,
}

/// A secret rotation: how long the old secret keeps signing.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Seconds the old secrets keep signing (default 86 400, at most 604 800).
    pub grace_seconds: i64,
    /// End the old secrets now.
    pub revoke_now: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            grace_seconds: DEFAULT_GRACE_SECONDS,
            revoke_now: false,
        }
    }
}

/// Checks an endpoint URL: `https` (or `http` when private targets are allowed at all), at
/// most 2 KiB, no credentials, and a literal address the policy allows.
pub fn check_url(policy: &TargetPolicy, url: &str) -> Result<(), WebhookError> {
    let invalid = |why: &str| WebhookError::Invalid(format!("url: {why}"));
    if url.len() > MAX_URL_BYTES {
        return Err(invalid("longer than 2048 bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    let private_allowed = policy.allows_private();
    match parsed.scheme() {
        "https" => {}
        "http" if private_allowed => {}
        "http" => {
            return Err(invalid(
                "must be https (http only when HANGAR_ALLOW_PRIVATE_TARGETS allows private targets)",
            ));
        }
        other => return Err(invalid(&format!("scheme '{other}' is not https"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not hold credentials"));
    }
    check_literal(policy, &parsed).map_err(|refused| invalid(&format!("refused: {refused}")))
}

/// Checks a filter: known types, no repeats, and the caller's right to each.
pub fn check_event_types(
    types: &[String],
    safety_allowed: bool,
    others_allowed: bool,
) -> Result<Vec<String>, WebhookError> {
    let mut checked: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        if !events::is_known(t) {
            return Err(WebhookError::Invalid(format!(
                "event_types: unknown event type '{t}'"
            )));
        }
        if events::is_safety(t) && !safety_allowed {
            return Err(WebhookError::Forbidden(format!(
                "event type '{t}' is a safety event: it needs the role safety_manager (or owner)"
            )));
        }
        if !events::is_safety(t) && !others_allowed {
            return Err(WebhookError::Forbidden(format!(
                "event type '{t}' needs the role admin (or owner)"
            )));
        }
        if !checked.contains(t) {
            checked.push(t.clone());
        }
    }
    if checked.is_empty() && !others_allowed {
        return Err(WebhookError::Forbidden(
            "an endpoint for every event type needs the role admin (or owner); name the safety \
             event types instead"
                .to_owned(),
        ));
    }
    Ok(checked)
}

fn check_description(description: &str) -> Result<(), WebhookError> {
    if description.len() > MAX_DESCRIPTION_BYTES || description.contains('\0') {
        return Err(WebhookError::Invalid(
            "description: at most 1024 bytes, no NUL character".to_owned(),
        ));
    }
    Ok(())
}

/// A new endpoint id, `ep_` and 24 hex digits.
fn new_id() -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; 12];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ep_{hex}")
}

/// Creates an endpoint with a fresh secret; returns it and the secret (shown this once).
pub async fn create(
    context: &WebhookContext,
    new: &NewEndpoint,
) -> Result<(Endpoint, String), WebhookError> {
    check_url(&context.targets, &new.url)?;
    let event_types = check_event_types(&new.event_types, new.safety_allowed, new.others_allowed)?;
    check_description(&new.description)?;
    new.limits.check()?;
    let id = new_id();
    let secret = WebhookSecret::generate().expose();
    let sealed = context.keyring.seal(secret.as_bytes(), &secret_aad(&id));
    context
        .store
        .insert_webhook_endpoint(&NewEndpointRow {
            id: &id,
            workspace_id: &new.workspace_id,
            url: &new.url,
            event_types: &event_types,
            description: &new.description,
            safety_allowed: new.safety_allowed,
            sealed: &sealed,
            key_id: context.keyring.current().id(),
        })
        .await?;
    if !new.limits.is_empty() {
        context
            .store
            .set_webhook_endpoint_limits(&id, &new.limits)
            .await?;
    }
    let endpoint = get(context, &new.workspace_id, &id).await?;
    Ok((endpoint, secret))
}

/// The workspace's endpoint `id`, or not found.
pub async fn get(
    context: &WebhookContext,
    workspace: &str,
    id: &str,
) -> Result<Endpoint, WebhookError> {
    match context.store.webhook_endpoint(id).await? {
        Some(endpoint) if endpoint.workspace_id == workspace => Ok(endpoint),
        _ => Err(WebhookError::EndpointNotFound(id.to_owned())),
    }
}

/// Applies a change; returns the endpoint and how many held deliveries an enabling released.
pub async fn change(
    context: &WebhookContext,
    workspace: &str,
    id: &str,
    change: &EndpointChange,
    safety_allowed: bool,
    others_allowed: bool,
) -> Result<(Endpoint, u64), WebhookError> {
    let current = get(context, workspace, id).await?;
    if let Some(url) = &change.url {
        check_url(&context.targets, url)?;
    }
    // Changing an endpoint needs the rights to what it receives now and to what it will.
    let types = change.event_types.as_ref().unwrap_or(&current.event_types);
    let event_types = check_event_types(types, safety_allowed, others_allowed)?;
    if current.event_types.iter().any(|t| events::is_safety(t)) && !safety_allowed {
        return Err(WebhookError::Forbidden(
            "this endpoint receives safety events: changing it needs the role safety_manager \
             (or owner)"
                .to_owned(),
        ));
    }
    if let Some(description) = &change.description {
        check_description(description)?;
    }
    change.limits.check()?;
    if !change.limits.is_empty() {
        context
            .store
            .set_webhook_endpoint_limits(id, &change.limits)
            .await?;
    }
    context
        .store
        .update_webhook_endpoint(
            id,
            change.url.as_deref(),
            change.event_types.as_ref().map(|_| event_types.as_slice()),
            change.description.as_deref(),
            change.event_types.as_ref().map(|_| safety_allowed),
        )
        .await?;
    context.forget(id);
    let mut released = 0;
    match change.enabled {
        Some(true) if !current.enabled => {
            released = super::health::enable(context, &current).await?;
        }
        Some(false) if current.enabled => {
            super::health::disable(context, &current, "disabled by an operator").await?;
        }
        _ => {}
    }
    Ok((get(context, workspace, id).await?, released))
}

/// Rotates the secret: a new one signs from now on, the old ones beside it until the grace
/// ends (or not at all with `revoke_now`). Returns the new secret (shown this once).
pub async fn rotate(
    context: &WebhookContext,
    workspace: &str,
    id: &str,
    rotation: Rotation,
) -> Result<(Endpoint, String, Option<DateTime<Utc>>), WebhookError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&rotation.grace_seconds) {
        return Err(WebhookError::Invalid(format!(
            "grace_seconds: {} is out of range (0 to {MAX_GRACE_SECONDS})",
            rotation.grace_seconds
        )));
    }
    get(context, workspace, id).await?;
    let secret = WebhookSecret::generate().expose();
    let sealed = context.keyring.seal(secret.as_bytes(), &secret_aad(id));
    let old_until = if rotation.revoke_now || rotation.grace_seconds == 0 {
        None
    } else {
        Some(Utc::now() + Duration::seconds(rotation.grace_seconds))
    };
    context
        .store
        .rotate_webhook_secret(id, &sealed, context.keyring.current().id(), old_until)
        .await?;
    context.forget(id);
    Ok((get(context, workspace, id).await?, secret, old_until))
}

/// The secrets that sign a delivery now: the current one first, then those still in their
/// grace.
pub async fn signing_secrets(
    context: &WebhookContext,
    id: &str,
) -> Result<Vec<WebhookSecret>, WebhookError> {
    let sealed = context.store.webhook_secrets(id).await?;
    let mut secrets = Vec::with_capacity(sealed.len());
    for value in sealed {
        let plain = context
            .keyring
            .open(&value, &secret_aad(id), "webhook endpoint secret")?;
        let text = String::from_utf8(plain).map_err(|_| {
            WebhookError::Invalid(format!("the secret of endpoint {id} is not text"))
        })?;
        secrets.push(
            WebhookSecret::parse(&text)
                .map_err(|e| WebhookError::Invalid(format!("endpoint {id}: {e}")))?,
        );
    }
    Ok(secrets)
}

/// Re-seals every endpoint secret under `new` in one transaction (`hangar keys rotate`);
/// `keyring` must open every current value. Returns how many were re-sealed.
pub async fn reseal_all(
    store: &crate::store::Store,
    keyring: &crate::secrets::Keyring,
    new: &crate::secrets::MasterKey,
) -> Result<u64, WebhookError> {
    let target = crate::secrets::Keyring::new(new.clone());
    store
        .reseal_webhook_secrets(|id, sealed| -> Result<(String, String), WebhookError> {
            let plain = keyring.open(sealed, &secret_aad(id), "webhook endpoint secret")?;
            Ok((target.seal(&plain, &secret_aad(id)), new.id().to_owned()))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_and_public_unless_private_targets_are_allowed() {
        let public = TargetPolicy::default();
        assert!(check_url(&public, "https://example.com/hook").is_ok());
        for (url, says) in [
            ("http://example.com/hook", "must be https"),
            ("https://127.0.0.1/hook", "refused"),
            ("https://10.0.0.1/hook", "refused"),
            ("https://169.254.169.254/latest", "refused"),
            ("https://[::ffff:127.0.0.1]/hook", "refused"),
            ("https://[::1]/hook", "refused"),
            ("ftp://example.com", "scheme 'ftp'"),
            ("https://user:pw@example.com/", "credentials"),
            ("nope", "not a URL"),
        ] {
            let error = check_url(&public, url).expect_err(url).to_string();
            assert!(
                error.starts_with("url: ") && error.contains(says),
                "{url}: {error}"
            );
        }
        let open = TargetPolicy::allow_all();
        assert!(check_url(&open, "http://127.0.0.1:9/hook").is_ok());
    }

    #[test]
    fn event_types_are_known_and_need_the_right_role() {
        let types = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let unknown = check_event_types(&types(&["trip.created", "trip.nope"]), true, true)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("'trip.nope'"), "{unknown}");
        assert!(matches!(
            check_event_types(&types(&["hazard.identified"]), false, true),
            Err(WebhookError::Forbidden(_))
        ));
        assert!(matches!(
            check_event_types(&types(&["trip.created"]), true, false),
            Err(WebhookError::Forbidden(_))
        ));
        assert!(matches!(
            check_event_types(&[], true, false),
            Err(WebhookError::Forbidden(_))
        ));
        assert_eq!(
            check_event_types(&types(&["cpa.created", "cpa.created"]), true, false).unwrap(),
            types(&["cpa.created"])
        );
        assert!(check_event_types(&[], false, true).unwrap().is_empty());
    }

    #[test]
    fn health_steps_down_from_healthy_to_disabled() {
        assert_eq!(Health::of(true, false, 0), Health::Healthy);
        assert_eq!(Health::of(true, false, DEGRADED_AFTER - 1), Health::Healthy);
        assert_eq!(Health::of(true, false, DEGRADED_AFTER), Health::Degraded);
        assert_eq!(Health::of(true, true, 9), Health::Paused);
        assert_eq!(Health::of(false, true, 0), Health::Disabled);
    }
}
