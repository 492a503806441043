//! The ingress wire format (CONTRACT.md, "Redis ingress"): the JSON value of an entry's `msg`
//! field, or the body of `POST /api/v1/events` / `POST /api/v1/jobs`. [`parse`] turns it into
//! an [`IngressMessage`] or a [`Rejection`] whose text is what goes into the dead-letter
//! stream's `error` field, so it says what is wrong and where. Nothing here does I/O; whether a
//! job kind exists (and whether callers may enqueue it) is for the caller, who knows the
//! registry.
//!
//! The format is closed: a field this module does not know is refused, not dropped, and every
//! identifier is at most [`MAX_IDENTIFIER_BYTES`] long (an oversized one would otherwise fail
//! the database's unique index, and with it the whole batch it arrived in).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::events;

/// The largest `msg` accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest identifier accepted (`workspace_id`, `idempotency_key`, event `id`, job
/// `kind`, `queue`), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// Idempotency-key prefixes the engine uses for its own jobs (the planner's
/// `schedule:<name>:<slot>`, the alert dispatcher's `alert:…`, and `hangar:` for what comes
/// later). Callers may not use them: a caller who took one could stand in for the engine's
/// job.
pub const RESERVED_KEY_PREFIXES: &[&str] = &["schedule:", "alert:", "hangar:"];

/// The fields of each object of the format; anything else is refused.
const MESSAGE_FIELDS: &[&str] = &["kind", "event", "job"];
const EVENT_FIELDS: &[&str] = &["id", "type", "workspace_id", "timestamp", "data"];
const JOB_FIELDS: &[&str] = &[
    "kind",
    "workspace_id",
    "args",
    "idempotency_key",
    "run_at",
    "queue",
    "priority",
];

/// An event of the platform: the envelope of the webhook document.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct EventEnvelope {
    /// The event's id, unique per workspace (`evt_…`); deduplication key with the workspace.
    pub id: String,
    /// A type of [`events::EVENT_TYPES`].
    #[schema(rename = "type")]
    pub event_type: String,
    /// The workspace it happened in.
    pub workspace_id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The event's data: internal ids only, never personal data.
    pub data: Map<String, Value>,
}

/// A job handed over by the main application.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct JobRequest {
    /// The job kind.
    pub kind: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// The handler's arguments.
    pub args: Map<String, Value>,
    /// Makes the request idempotent (unique per workspace and kind).
    pub idempotency_key: String,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// The queue, when not the kind's default.
    pub queue: Option<String>,
    /// Smaller numbers run first (default 0).
    pub priority: Option<i16>,
}

/// One ingress message.
#[derive(Debug, Clone, PartialEq)]
pub enum IngressMessage {
    /// `{"kind":"event","event":{…}}`.
    Event(EventEnvelope),
    /// `{"kind":"job","job":{…}}`.
    Job(JobRequest),
}

/// Why a message was refused (the dead-letter `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message is {bytes} bytes, over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Not parseable JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// A required field is absent (or null).
    #[error("missing field {0}")]
    MissingField(String),
    /// A field has the wrong JSON type or an empty value.
    #[error("field {field}: expected {expected}")]
    WrongType {
        /// Its path, e.g. `event.data`.
        field: String,
        /// What it should be.
        expected: &'static str,
    },
    /// `kind` is neither `event` nor `job`.
    #[error("unknown kind '{0}' (expected \"event\" or \"job\")")]
    UnknownKind(String),
    /// The event type is not in the catalog.
    #[error("unknown event type '{0}'")]
    UnknownEventType(String),
    /// A time that is not RFC 3339.
    #[error("field {field}: '{value}' is not an RFC 3339 time")]
    BadTime {
        /// Its path.
        field: String,
        /// What was given.
        value: String,
    },
    /// An identifier over [`MAX_IDENTIFIER_BYTES`].
    #[error("field {field}: {bytes} bytes, over the limit of {MAX_IDENTIFIER_BYTES}")]
    TooLong {
        /// Its path, e.g. `job.idempotency_key`.
        field: String,
        /// Its length.
        bytes: usize,
    },
    /// Fields the format does not have (they would otherwise be dropped silently).
    #[error("{}", unknown_fields(.at, .names))]
    UnknownFields {
        /// The object, e.g. `job`.
        at: String,
        /// The unknown field names, in the order given.
        names: Vec<String>,
    },
    /// An idempotency key with a prefix of [`RESERVED_KEY_PREFIXES`].
    #[error(
        "field job.idempotency_key: keys starting with '{0}' are reserved for Hangar's own jobs"
    )]
    ReservedKey(&'static str),
    /// A kind only the engine enqueues (alert deliveries, and later webhook deliveries and
    /// token refreshes).
    #[error("field job.kind: job kind '{0}' is internal: only Hangar itself enqueues it")]
    InternalKind(String),
    /// A string holds a NUL character, which the databases cannot store in JSON text.
    #[error("field {0}: contains a NUL character (\\u0000), which cannot be stored")]
    NulCharacter(String),
    /// The job kind has no handler in this binary.
    #[error("field job.kind: unknown job kind '{kind}' (known: {known})")]
    UnknownJobKind {
        /// What was asked for.
        kind: String,
        /// The kinds this binary runs, comma-separated.
        known: String,
    },
    /// No configured pool runs the kind.
    #[error("field job.kind: no pool runs job kind '{0}'")]
    NoPool(String),
    /// The queue is not one of the configured pools' queues.
    #[error("field job.queue: unknown queue '{queue}' (known: {known})")]
    UnknownQueue {
        /// What was asked for.
        queue: String,
        /// The configured queues, comma-separated.
        known: String,
    },
    /// The job kind's handler refused the arguments.
    #[error("field job.args: {0}")]
    InvalidArgs(crate::kinds::ArgsError),
    /// The event data holds what looks like personal data.
    #[error("personal data is not allowed in event payloads (internal ids only): {path} {why}")]
    PersonalData {
        /// Where, e.g. `event.data.passenger.email`.
        path: String,
        /// What it looked like.
        why: &'static str,
    },
}

fn unknown_fields(at: &str, names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("unknown field{plural} {} in {at}", quoted.join(", "))
}

/// Refuses the fields of `map` that are not in `known`.
fn only_known(map: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), Rejection> {
    let names: Vec<String> = map
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    if names.is_empty() {
        Ok(())
    } else {
        Err(Rejection::UnknownFields {
            at: at.to_owned(),
            names,
        })
    }
}

/// Refuses an identifier over [`MAX_IDENTIFIER_BYTES`]; `field` names it in the message.
pub fn check_identifier(field: &str, value: &str) -> Result<(), Rejection> {
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(Rejection::TooLong {
            field: field.to_owned(),
            bytes: value.len(),
        });
    }
    Ok(())
}

/// Refuses an idempotency key that starts with one of [`RESERVED_KEY_PREFIXES`].
pub fn check_key_prefix(key: &str) -> Result<(), Rejection> {
    match RESERVED_KEY_PREFIXES.iter().find(|p| key.starts_with(*p)) {
        Some(prefix) => Err(Rejection::ReservedKey(prefix)),
        None => Ok(()),
    }
}

/// Parses and validates one message.
pub fn parse(msg: &str) -> Result<IngressMessage, Rejection> {
    let value = json(msg.as_bytes())?;
    let root = object(&value, "message")?;
    only_known(root, "message", MESSAGE_FIELDS)?;
    match text(root, "", "kind")?.as_str() {
        "event" => {
            parse_event(object(field(root, "", "event")?, "event")?).map(IngressMessage::Event)
        }
        "job" => parse_job(object(field(root, "", "job")?, "job")?).map(IngressMessage::Job),
        other => Err(Rejection::UnknownKind(other.to_owned())),
    }
}

/// Parses the body of `POST /api/v1/events`: the event envelope alone.
pub fn parse_event_body(body: &[u8]) -> Result<EventEnvelope, Rejection> {
    parse_event(object(&json(body)?, "event")?)
}

/// Parses the body of `POST /api/v1/jobs`: the `job` object alone.
pub fn parse_job_body(body: &[u8]) -> Result<JobRequest, Rejection> {
    parse_job(object(&json(body)?, "job")?)
}

/// The size limit, JSON syntax and the NUL rule, shared by every entry point.
fn json(bytes: &[u8]) -> Result<Value, Rejection> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Rejection::TooLarge { bytes: bytes.len() });
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| Rejection::NotJson(e.to_string()))?;
    check_nul(&value, "")?;
    Ok(value)
}

/// PostgreSQL's jsonb refuses `\u0000`; refusing it here keeps one entry from failing the
/// batch it arrives in, and gives the same answer on both backends.
fn check_nul(value: &Value, at: &str) -> Result<(), Rejection> {
    match value {
        Value::String(s) if s.contains('\0') => Err(Rejection::NulCharacter(if at.is_empty() {
            "message".to_owned()
        } else {
            at.to_owned()
        })),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_nul(item, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            if key.contains('\0') {
                Err(Rejection::NulCharacter(format!(
                    "{} (a key)",
                    path(at, "…")
                )))
            } else {
                check_nul(item, &path(at, key))
            }
        }),
        _ => Ok(()),
    }
}

/// Validates an event envelope (also the body of `POST /api/v1/events`).
pub fn parse_event(event: &Map<String, Value>) -> Result<EventEnvelope, Rejection> {
    let at = "event";
    only_known(event, at, EVENT_FIELDS)?;
    let event_type = text(event, at, "type")?;
    if !events::is_known(&event_type) {
        return Err(Rejection::UnknownEventType(event_type));
    }
    let data = object(field(event, at, "data")?, "event.data")?.clone();
    check_personal_data(&data, "event.data")?;
    Ok(EventEnvelope {
        id: identifier(event, at, "id")?,
        event_type,
        workspace_id: identifier(event, at, "workspace_id")?,
        timestamp: time(event, at, "timestamp")?.ok_or_else(|| missing(at, "timestamp"))?,
        data,
    })
}

/// Validates a job request (also the body of `POST /api/v1/jobs`).
pub fn parse_job(job: &Map<String, Value>) -> Result<JobRequest, Rejection> {
    let at = "job";
    only_known(job, at, JOB_FIELDS)?;
    let request = JobRequest {
        kind: identifier(job, at, "kind")?,
        workspace_id: identifier(job, at, "workspace_id")?,
        args: object(field(job, at, "args")?, "job.args")?.clone(),
        idempotency_key: identifier(job, at, "idempotency_key")?,
        run_at: time(job, at, "run_at")?,
        queue: match job.get("queue") {
            None | Some(Value::Null) => None,
            Some(_) => Some(identifier(job, at, "queue")?),
        },
        priority: match job.get("priority") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_i64()
                    .and_then(|n| i16::try_from(n).ok())
                    .ok_or_else(|| Rejection::WrongType {
                        field: path(at, "priority"),
                        expected: "an integer from -32768 to 32767 (smaller runs first)",
                    })?,
            ),
        },
    };
    check_key_prefix(&request.idempotency_key)?;
    Ok(request)
}

fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn missing(at: &str, name: &str) -> Rejection {
    Rejection::MissingField(path(at, name))
}

fn field<'a>(map: &'a Map<String, Value>, at: &str, name: &str) -> Result<&'a Value, Rejection> {
    match map.get(name) {
        None | Some(Value::Null) => Err(missing(at, name)),
        Some(value) => Ok(value),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Rejection> {
    value.as_object().ok_or_else(|| Rejection::WrongType {
        field: at.to_owned(),
        expected: "a JSON object",
    })
}

fn text(map: &Map<String, Value>, at: &str, name: &str) -> Result<String, Rejection> {
    match field(map, at, name)?.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(Rejection::WrongType {
            field: path(at, name),
            expected: "a non-empty string",
        }),
    }
}

/// A non-empty string of at most [`MAX_IDENTIFIER_BYTES`].
fn identifier(map: &Map<String, Value>, at: &str, name: &str) -> Result<String, Rejection> {
    let value = text(map, at, name)?;
    check_identifier(&path(at, name), &value)?;
    Ok(value)
}

fn time(
    map: &Map<String, Value>,
    at: &str,
    name: &str,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => {
            let value = text(map, at, name)?;
            DateTime::parse_from_rfc3339(&value)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| Rejection::BadTime {
                    field: path(at, name),
                    value,
                })
        }
    }
}

/// Field names that hold personal data; the payloads carry internal ids instead.
const PERSONAL_KEYS: &[&str] = &[
    "email",
    "email_address",
    "phone",
    "phone_number",
    "mobile",
    "telephone",
    "name",
    "first_name",
    "last_name",
    "full_name",
    "given_name",
    "family_name",
    "surname",
    "date_of_birth",
    "passport_number",
];

/// Refuses personal-looking keys (see [`PERSONAL_KEYS`], and any `*_email`, `*_phone`) and
/// string values that are e-mail addresses or international phone numbers, anywhere inside.
pub fn check_personal_data(data: &Map<String, Value>, at: &str) -> Result<(), Rejection> {
    for (key, value) in data {
        let here = format!("{at}.{key}");
        if is_personal_key(key) {
            return Err(Rejection::PersonalData {
                path: here,
                why: "is a personal-data field",
            });
        }
        check_value(value, &here)?;
    }
    Ok(())
}

fn check_value(value: &Value, at: &str) -> Result<(), Rejection> {
    match value {
        Value::Object(map) => check_personal_data(map, at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(item, &format!("{at}[{i}]"))),
        Value::String(s) if looks_like_email(s) => Err(Rejection::PersonalData {
            path: at.to_owned(),
            why: "looks like an e-mail address",
        }),
        Value::String(s) if looks_like_phone(s) => Err(Rejection::PersonalData {
            path: at.to_owned(),
            why: "looks like a phone number",
        }),
        _ => Ok(()),
    }
}

fn is_personal_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    PERSONAL_KEYS.contains(&lower.as_str())
        || lower.ends_with("_email")
        || lower.ends_with("_phone")
}

/// What stands in for a personal value in a kept copy of a refused message.
pub const REDACTED: &str = "<redacted>";

/// `msg` (a message refused for [`Rejection::PersonalData`]) with every value that the check
/// would flag in `event.data` replaced by [`REDACTED`], so that the dead-letter stream does
/// not keep the personal data it was refused for. `None` when `msg` is not a message with
/// event data.
pub fn redact_personal_data(msg: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(msg).ok()?;
    let data = value.get_mut("event")?.get_mut("data")?.as_object_mut()?;
    redact_map(data);
    Some(value.to_string())
}

fn redact_map(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        if is_personal_key(key) {
            *value = Value::String(REDACTED.to_owned());
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => redact_map(map),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) if looks_like_email(s) || looks_like_phone(s) => {
            *s = REDACTED.to_owned();
        }
        _ => {}
    }
}

/// `local@domain.tld`, no spaces.
fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.trim().split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !s.trim().contains(char::is_whitespace)
        && !domain.contains('@')
        && domain
            .split_once('.')
            .is_some_and(|(host, tld)| !host.is_empty() && tld.len() >= 2)
}

/// `+` then 7 to 15 digits, with spaces, dots, dashes or parentheses between them (E.164 as
/// people write it). Bare digit strings are not flagged: internal ids can look like that.
fn looks_like_phone(s: &str) -> bool {
    let Some(rest) = s.trim().strip_prefix('+') else {
        return false;
    };
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    rest.chars()
        .all(|c| c.is_ascii_digit() || " .-()".contains(c))
        && (7..=15).contains(&digits)
}

#[cfg(test)]
mod tests;
