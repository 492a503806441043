//! One stream entry read: accepted (an event or a job to write) or refused (a dead letter
//! with the reason), before anything touches the database.

use hangar_workers::job::NewJob;
use hangar_workers::wire::{self, EventEnvelope, IngressMessage};
use redis::streams::StreamId;

use super::{Consumer, refusal};

/// Where an accepted entry goes.
pub(super) enum Item {
    Event(EventEnvelope),
    Job(NewJob),
}

/// An accepted entry: its id, its original `msg` (for a dead letter, should the database
/// refuse it) and what it becomes.
pub(super) struct Accepted {
    pub(super) id: String,
    pub(super) msg: String,
    pub(super) item: Item,
}

/// A refused entry on its way to the dead-letter stream.
pub(super) struct Dead {
    pub(super) source_id: String,
    pub(super) msg: String,
    pub(super) error: String,
    /// For an entry without `msg`: all its fields as a JSON object, so nothing is dropped.
    pub(super) fields: Option<String>,
}

impl Consumer {
    /// An entry's item, `None` for an entry without fields (deleted while pending), or the
    /// dead letter that says why it was refused.
    pub(super) fn accept(&self, entry: &StreamId) -> Result<Option<Accepted>, Dead> {
        if entry.map.is_empty() {
            return Ok(None);
        }
        let refuse = |msg: String, error: String| Dead {
            source_id: entry.id.clone(),
            msg,
            error,
            fields: None,
        };
        let msg = match entry.map.get("msg") {
            Some(redis::Value::BulkString(bytes)) => match String::from_utf8(bytes.clone()) {
                Ok(text) => text,
                Err(e) => {
                    let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    return Err(refuse(lossy, "msg is not valid UTF-8".to_owned()));
                }
            },
            Some(redis::Value::SimpleString(text)) => text.clone(),
            Some(_) => return Err(refuse(String::new(), "msg is not a string".to_owned())),
            None => {
                let mut names: Vec<&str> = entry.map.keys().map(String::as_str).collect();
                names.sort_unstable();
                let fields: serde_json::Map<String, serde_json::Value> = entry
                    .map
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v).unwrap_or_default().into()))
                    .collect();
                let mut dead = refuse(
                    String::new(),
                    format!(
                        "entry has no field msg (fields: {}); each entry carries one field, msg",
                        names.join(", ")
                    ),
                );
                dead.fields = Some(serde_json::Value::Object(fields).to_string());
                return Err(dead);
            }
        };
        let item = match wire::parse(&msg) {
            Ok(IngressMessage::Event(event)) => Item::Event(event),
            Ok(IngressMessage::Job(request)) => match self.client.resolve(request) {
                Ok(job) => Item::Job(job),
                Err(rejection) => return Err(refuse(msg, rejection.to_string())),
            },
            Err(rejection) => {
                return Err(refuse(
                    refusal::dead_msg(msg, &rejection),
                    rejection.to_string(),
                ));
            }
        };
        Ok(Some(Accepted {
            id: entry.id.clone(),
            msg,
            item,
        }))
    }
}

/// A Redis value as text, when it is one.
pub(super) fn value_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// A Redis value as a number (an integer, or text that parses as one).
pub(super) fn value_int(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        other => value_text(other).and_then(|t| t.parse().ok()),
    }
}
