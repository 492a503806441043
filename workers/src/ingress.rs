//! The ingress wire format (CONTRACT.md, "Redis ingress"): the JSON value of an entry's `msg`
//! field, or the body of `POST /api/v1/events` / `POST /api/v1/jobs`. [`parse`] turns it into
//! an [`IngressMessage`] or a [`Rejection`] whose text is what goes into the dead-letter
//! stream's `error` field, so it says what is wrong and where. Nothing here does I/O; whether a
//! job kind exists is for the caller, who knows the registry.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::events;

/// The largest `msg` accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

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
    /// Makes the request idempotent (unique per kind).
    pub idempotency_key: String,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// The queue, when not the kind's default.
    pub queue: Option<String>,
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
    InvalidArgs(String),
    /// The event data holds what looks like personal data.
    #[error("personal data is not allowed in event payloads (internal ids only): {path} {why}")]
    PersonalData {
        /// Where, e.g. `event.data.passenger.email`.
        path: String,
        /// What it looked like.
        why: &'static str,
    },
}

/// Parses and validates one message.
pub fn parse(msg: &str) -> Result<IngressMessage, Rejection> {
    let value = json(msg.as_bytes())?;
    let root = object(&value, "message")?;
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
    let event_type = text(event, at, "type")?;
    if !events::is_known(&event_type) {
        return Err(Rejection::UnknownEventType(event_type));
    }
    let data = object(field(event, at, "data")?, "event.data")?.clone();
    check_personal_data(&data, "event.data")?;
    Ok(EventEnvelope {
        id: text(event, at, "id")?,
        event_type,
        workspace_id: text(event, at, "workspace_id")?,
        timestamp: time(event, at, "timestamp")?.ok_or_else(|| missing(at, "timestamp"))?,
        data,
    })
}

/// Validates a job request (also the body of `POST /api/v1/jobs`).
pub fn parse_job(job: &Map<String, Value>) -> Result<JobRequest, Rejection> {
    let at = "job";
    Ok(JobRequest {
        kind: text(job, at, "kind")?,
        workspace_id: text(job, at, "workspace_id")?,
        args: object(field(job, at, "args")?, "job.args")?.clone(),
        idempotency_key: text(job, at, "idempotency_key")?,
        run_at: time(job, at, "run_at")?,
        queue: match job.get("queue") {
            None | Some(Value::Null) => None,
            Some(_) => Some(text(job, at, "queue")?),
        },
    })
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
        let lower = key.to_ascii_lowercase();
        if PERSONAL_KEYS.contains(&lower.as_str())
            || lower.ends_with("_email")
            || lower.ends_with("_phone")
        {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: Value) -> String {
        json!({"kind": "event", "event": {"id": "evt_1", "type": "trip.created",
            "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z", "data": data}})
        .to_string()
    }

    #[test]
    fn a_valid_event_and_job_parse() {
        match parse(&event(
            json!({"trip_id": "trp_9", "legs": [{"aircraft_id": "ac_1"}]}),
        ))
        .unwrap()
        {
            IngressMessage::Event(e) => {
                assert_eq!(
                    (
                        e.id.as_str(),
                        e.event_type.as_str(),
                        e.workspace_id.as_str()
                    ),
                    ("evt_1", "trip.created", "ws_1")
                );
                assert_eq!(e.timestamp.to_rfc3339(), "2026-11-22T10:00:00+00:00");
                assert_eq!(e.data["trip_id"], "trp_9");
            }
            other => panic!("{other:?}"),
        }
        let job = json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws_1",
            "args": {"provider": "quickbooks"}, "idempotency_key": "k1",
            "run_at": "2026-11-22T11:00:00+01:00", "queue": "syncs"}});
        match parse(&job.to_string()).unwrap() {
            IngressMessage::Job(j) => {
                assert_eq!(
                    (j.kind.as_str(), j.idempotency_key.as_str()),
                    ("sync", "k1")
                );
                assert_eq!(j.run_at.unwrap().to_rfc3339(), "2026-11-22T10:00:00+00:00");
                assert_eq!(j.queue.as_deref(), Some("syncs"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_malformed_shape_is_rejected_with_its_reason() {
        let cases: Vec<(String, &str)> = vec![
            ("{not json".into(), "not JSON"),
            ("[1,2]".into(), "field message: expected a JSON object"),
            (json!({"event": {}}).to_string(), "missing field kind"),
            (json!({"kind": "invoice"}).to_string(), "unknown kind 'invoice'"),
            (json!({"kind": "event"}).to_string(), "missing field event"),
            (json!({"kind": "event", "event": "x"}).to_string(), "field event: expected a JSON object"),
            (event(json!([])), "field event.data: expected a JSON object"),
            (event(json!({})).replace("trip.created", "trip.exploded"), "unknown event type 'trip.exploded'"),
            (event(json!({})).replace("\"id\":\"evt_1\",", ""), "missing field event.id"),
            (event(json!({})).replace("ws_1", ""), "field event.workspace_id: expected a non-empty string"),
            (event(json!({})).replace("2026-11-22T10:00:00Z", "yesterday"), "field event.timestamp: 'yesterday' is not an RFC 3339 time"),
            (json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws", "args": {}}}).to_string(), "missing field job.idempotency_key"),
            (json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws", "args": 3, "idempotency_key": "k"}}).to_string(), "field job.args: expected a JSON object"),
            (json!({"kind": "job", "job": {"kind": 7, "workspace_id": "ws", "args": {}, "idempotency_key": "k"}}).to_string(), "field job.kind: expected a non-empty string"),
        ];
        for (msg, reason) in cases {
            let error = parse(&msg).expect_err(&msg).to_string();
            assert!(
                error.contains(reason),
                "{msg}: got {error:?}, expected {reason:?}"
            );
        }
    }

    #[test]
    fn a_nul_character_anywhere_is_refused_with_its_path() {
        let msg = event(json!({"legs": [{"note_id": "a\u{0}b"}]}));
        assert_eq!(
            parse(&msg),
            Err(Rejection::NulCharacter(
                "event.data.legs[0].note_id".to_owned()
            ))
        );
        let body = json!({"kind": "sync", "workspace_id": "ws", "args": {"k": "\u{0}"},
            "idempotency_key": "k"});
        assert_eq!(
            parse_job_body(body.to_string().as_bytes()),
            Err(Rejection::NulCharacter("args.k".to_owned()))
        );
    }

    #[test]
    fn http_bodies_are_the_bare_envelope_and_job_object() {
        let event = json!({"id": "evt_1", "type": "trip.created", "workspace_id": "ws_1",
            "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "t_1"}});
        assert_eq!(
            parse_event_body(event.to_string().as_bytes()).map(|e| e.id),
            Ok("evt_1".to_owned())
        );
        assert_eq!(
            parse_job_body(b"[1]"),
            Err(Rejection::WrongType {
                field: "job".to_owned(),
                expected: "a JSON object"
            })
        );
        assert!(matches!(parse_event_body(b"{"), Err(Rejection::NotJson(_))));
    }

    #[test]
    fn the_size_limit_is_256_kib() {
        let filler = "x".repeat(MAX_MESSAGE_BYTES);
        let msg = event(json!({"note_id": filler}));
        assert_eq!(parse(&msg), Err(Rejection::TooLarge { bytes: msg.len() }));
        let fits = event(json!({"note_id": "x".repeat(MAX_MESSAGE_BYTES - 300)}));
        assert!(fits.len() <= MAX_MESSAGE_BYTES && parse(&fits).is_ok());
    }

    #[test]
    fn personal_data_is_refused_wherever_it_is() {
        let cases = [
            (
                json!({"email": "x"}),
                "event.data.email is a personal-data field",
            ),
            (
                json!({"crew": [{"id": "c1", "Last_Name": "Doe"}]}),
                "event.data.crew[0].Last_Name is a personal-data field",
            ),
            (
                json!({"contact_phone": "x"}),
                "event.data.contact_phone is a personal-data field",
            ),
            (
                json!({"note": "pilot.one@example.com"}),
                "event.data.note looks like an e-mail address",
            ),
            (
                json!({"legs": [{"x": ["+1 (415) 555-0100"]}]}),
                "event.data.legs[0].x[0] looks like a phone number",
            ),
        ];
        for (data, reason) in cases {
            let error = parse(&event(data.clone()))
                .expect_err(&data.to_string())
                .to_string();
            assert!(error.contains(reason), "{data}: {error}");
        }
    }

    #[test]
    fn internal_ids_and_ordinary_values_are_not_personal_data() {
        let data = json!({"trip_id": "trp_123", "tail_number": "N123AB", "count": 5,
            "departure": "2026-11-22T10:00:00Z", "legacy_id": "4155550100", "route": "KTEB-KPBI",
            "status": "confirmed", "handle": "@ops", "ratio": "+12", "aircraft": {"model_name_id": "m_1"}});
        assert!(parse(&event(data)).is_ok());
    }
}
