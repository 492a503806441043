//! What a verified push is, and what it becomes. Two pure steps:
//!
//! - [`identify`] (when the push arrives, after verification): its provider event id (the
//!   deduplication key), its type, and whether it is a safety event (append-only);
//! - [`actions`] (in the `inbound_event` job): the mapping table, from a provider's event to a
//!   Hangar event of the catalog (published through the store, so it fans out to the
//!   workspace's webhook endpoints) or a job of the provider's integration.
//!
//! | provider | push | becomes |
//! |---|---|---|
//! | `quickbooks` | `eventNotifications[].dataChangeEvent.entities[]` naming `Payment` or `Invoice` | a `sync` job for `payments` (trigger `webhook`) |
//! | `stripe` | `invoice.paid` | `invoice.paid` |
//! | `stripe` | `invoice.overdue` | `invoice.overdue` |
//! | `avinode` | `TripRequest` (a new, updated or cancelled RFQ: `{"id","href","type","tripId"}`) | a `sync` job for `rfqs` (the connector reads the RFQ the push names) |
//! | generic (every other provider) | the envelope `{"id","type","timestamp","data"}`, a catalog type | that event, as sent |
//!
//! Anything else is recorded (raw body and headers kept) and ignored. Mapped events carry
//! the provider's ids only (`data.source`), never personal data: the generic envelope's `data`
//! passes the same personal-data rule as every entrance ([`crate::wire::check_personal_data`]).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::events;
use crate::wire;

/// The longest provider event id kept as is (longer ones are refused).
pub const MAX_EVENT_ID: usize = 200;

/// What a push is, read from its verified body.
#[derive(Debug, Clone, PartialEq)]
pub struct Identified {
    /// The provider's id of this push (QuickBooks sends none: `sha256:<hex of the body>`).
    pub event_id: String,
    /// The provider's type of event, when it names one.
    pub event_type: Option<String>,
    /// A safety event: append-only, a second report under the same id is kept beside it.
    pub safety: bool,
    /// What makes a push a duplicate (see the migration): the id, and for safety events the
    /// body's SHA-256 too.
    pub dedup_key: String,
}

/// Why a verified body cannot be taken (a 422 naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// The id of a push that carries none: `sha256:<hex of the body>`.
pub fn identify_hash(body: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(body))
}

fn sha256_hex(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text_field(object: &Map<String, Value>, field: &str) -> Result<String, BodyError> {
    match object.get(field) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_EVENT_ID => Ok(s.clone()),
        Some(Value::String(s)) if !s.is_empty() => Err(BodyError(format!(
            "field {field}: longer than {MAX_EVENT_ID} bytes"
        ))),
        Some(_) => Err(BodyError(format!(
            "field {field}: expected a non-empty string"
        ))),
        None => Err(BodyError(format!("missing field {field}"))),
    }
}

/// A QuickBooks push that names several companies (realms) split into one push per realm,
/// each in the classic form `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities"}}]}`
/// with its entities in the order sent; `None` for a push of one realm in the classic form
/// (taken as it is). Two forms split: `eventNotifications` holding several realms, and the
/// array form (a JSON array of CloudEvents, each naming its realm in `intuitaccountid`, its
/// entity in `type` `qbo.<entity>.<operation>.v1` and `intuitentityid`).
pub fn quickbooks_parts(body: &[u8]) -> Result<Option<Vec<(String, String)>>, BodyError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError(format!("the body is not JSON: {e}")))?;
    let mut realms: Vec<(String, Vec<Value>)> = Vec::new();
    let mut add = |realm: String, entity: Value| match realms.iter_mut().find(|(r, _)| *r == realm)
    {
        Some((_, entities)) => entities.push(entity),
        None => realms.push((realm, vec![entity])),
    };
    match &value {
        Value::Array(events) => {
            for (i, e) in events.iter().enumerate() {
                let field = |name: &str| {
                    e.get(name)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            BodyError(format!("[{i}].{name}: expected a non-empty string"))
                        })
                };
                let realm = field("intuitaccountid")?;
                let kind = field("type")?;
                let mut parts = kind.split('.');
                let (Some("qbo"), Some(entity), Some(operation)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(BodyError(format!(
                        "[{i}].type: expected qbo.<entity>.<operation>.v1, got {kind}"
                    )));
                };
                let title = |w: &str| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                };
                add(
                    realm.to_owned(),
                    json!({"name": title(entity), "id": e.get("intuitentityid"),
                        "operation": title(operation), "lastUpdated": e.get("time")}),
                );
            }
        }
        Value::Object(object) => {
            let Some(notifications) = object.get("eventNotifications").and_then(Value::as_array)
            else {
                return Ok(None);
            };
            let distinct: std::collections::BTreeSet<&str> = notifications
                .iter()
                .filter_map(|n| n.get("realmId")?.as_str())
                .collect();
            if distinct.len() < 2 {
                return Ok(None);
            }
            for n in notifications {
                let Some(realm) = n.get("realmId").and_then(Value::as_str) else {
                    continue;
                };
                for entity in n
                    .pointer("/dataChangeEvent/entities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    add(realm.to_owned(), entity.clone());
                }
            }
        }
        _ => {
            return Err(BodyError(
                "the body: expected a JSON object or array".to_owned(),
            ));
        }
    }
    Ok(Some(
        realms
            .into_iter()
            .map(|(realm, entities)| {
                let part = json!({"eventNotifications": [
                    {"realmId": realm, "dataChangeEvent": {"entities": entities}}]});
                (realm, part.to_string())
            })
            .collect(),
    ))
}

/// Reads the id, type and safety of a verified push of `provider` (`generic` is true for
/// the providers on the `X-PlaneConnection` scheme) to workspace `ws`.
pub fn identify(
    provider: &str,
    generic: bool,
    ws: &str,
    body: &[u8],
) -> Result<Identified, BodyError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError(format!("the body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| BodyError("the body: expected a JSON object".to_owned()))?;
    let (event_id, event_type) = if generic {
        let envelope = generic_envelope(object, ws)?;
        (envelope.id, Some(envelope.event_type))
    } else {
        match provider {
            // QuickBooks' notifications carry no id (CloudEvents ones do): the body's hash.
            "quickbooks" => match object.get("id") {
                Some(_) => (text_field(object, "id")?, object_type(object)),
                None => (format!("sha256:{}", sha256_hex(body)), None),
            },
            _ => (text_field(object, "id")?, object_type(object)),
        }
    };
    let safety = generic && event_type.as_deref().is_some_and(events::is_safety);
    let dedup_key = if safety {
        format!("{event_id}#{}", sha256_hex(body))
    } else {
        event_id.clone()
    };
    Ok(Identified {
        event_id,
        event_type,
        safety,
        dedup_key,
    })
}

fn object_type(object: &Map<String, Value>) -> Option<String> {
    object
        .get("type")
        .and_then(Value::as_str)
        .map(|t| t.chars().take(100).collect())
}

/// The generic scheme's body: the event envelope without (or with the same) `workspace_id`,
/// checked by the ingress rules (catalog type, RFC 3339 time, no personal data).
pub fn generic_envelope(
    object: &Map<String, Value>,
    ws: &str,
) -> Result<wire::EventEnvelope, BodyError> {
    let mut object = object.clone();
    match object.get("workspace_id") {
        None => {
            object.insert("workspace_id".to_owned(), Value::String(ws.to_owned()));
        }
        Some(Value::String(given)) if given == ws => {}
        Some(_) => {
            return Err(BodyError(format!(
                "field workspace_id: must be absent or the workspace of the URL ({ws})"
            )));
        }
    }
    let envelope = wire::parse_event(&object).map_err(|e| BodyError(e.to_string()))?;
    if envelope.id.len() > MAX_EVENT_ID {
        return Err(BodyError(format!(
            "field id: longer than {MAX_EVENT_ID} bytes"
        )));
    }
    Ok(envelope)
}

/// What one push becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A catalog event, published in the push's workspace.
    Publish {
        /// A type of the catalog.
        event_type: String,
        /// When it happened (the provider's time, or when it was received).
        timestamp: DateTime<Utc>,
        /// Its data (ids only).
        data: Map<String, Value>,
    },
    /// A `sync` job of the provider's integration for `data_type`.
    Sync {
        /// The data type to sync.
        data_type: &'static str,
    },
    /// Recorded, nothing else (the reason is the row's outcome).
    Ignore {
        /// Why.
        reason: String,
    },
}

/// The mapping table (module doc): what the push `body` of `provider` becomes.
pub fn actions(
    provider: &str,
    generic: bool,
    ws: &str,
    body: &str,
    received_at: DateTime<Utc>,
) -> Action {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) else {
        return Action::Ignore {
            reason: "the body is not a JSON object".to_owned(),
        };
    };
    if generic {
        return match generic_envelope(&object, ws) {
            Ok(envelope) => Action::Publish {
                event_type: envelope.event_type,
                timestamp: envelope.timestamp,
                data: envelope.data,
            },
            Err(e) => Action::Ignore { reason: e.0 },
        };
    }
    let whole = Value::Object(object.clone());
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    let source = |extra: Value| -> Map<String, Value> {
        let mut source = json!({"provider": provider, "event_id": object.get("id")});
        if let (Some(s), Value::Object(e)) = (source.as_object_mut(), extra) {
            s.extend(e.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut data = Map::new();
        data.insert("source".to_owned(), source);
        data
    };
    match provider {
        "quickbooks" => {
            let entities = object
                .get("eventNotifications")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.pointer("/dataChangeEvent/entities")?.as_array())
                .flatten()
                .filter_map(|e| e.get("name")?.as_str());
            let mut names: Vec<&str> = entities.collect();
            names.sort_unstable();
            names.dedup();
            if names.iter().any(|n| matches!(*n, "Payment" | "Invoice")) {
                Action::Sync {
                    data_type: "payments",
                }
            } else {
                Action::Ignore {
                    reason: format!(
                        "QuickBooks entities [{}] are not synced from webhooks",
                        names.join(", ")
                    ),
                }
            }
        }
        "stripe" => {
            let object_id = whole.pointer("/data/object/id").cloned();
            let invoice_id = whole
                .pointer("/data/object/metadata/invoice_id")
                .filter(|v| v.is_string())
                .cloned();
            let timestamp = object
                .get("created")
                .and_then(Value::as_i64)
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .unwrap_or(received_at);
            let event_type = match kind {
                // Not `invoice.payment_succeeded` too: Stripe sends it beside `invoice.paid`
                // for the same payment, which would publish the payment twice.
                "invoice.paid" => "invoice.paid",
                "invoice.overdue" => "invoice.overdue",
                other => {
                    return Action::Ignore {
                        reason: format!("Stripe {other} is not mapped"),
                    };
                }
            };
            let mut data = source(json!({"object_id": object_id}));
            if let Some(id) = invoice_id {
                data.insert("invoice_id".to_owned(), id);
            }
            Action::Publish {
                event_type: event_type.to_owned(),
                timestamp,
                data,
            }
        }
        "avinode" => match kind {
            // Avinode sends one type for a new, an updated and a cancelled RFQ: which it is
            // shows only in the RFQ, which the `rfqs` sync reads.
            "TripRequest" => Action::Sync { data_type: "rfqs" },
            other => Action::Ignore {
                reason: format!("Avinode {other} is not mapped"),
            },
        },
        other => Action::Ignore {
            reason: format!("{other} pushes are not mapped"),
        },
    }
}

/// The id of the Hangar event a push becomes: `<provider>:<event id>`, and for a safety
/// event the body's hash too, so a second report under the same id is a second event.
pub fn hangar_event_id(provider: &str, event_id: &str, safety: bool, body: &str) -> String {
    if safety {
        let hash = sha256_hex(body.as_bytes());
        format!("{provider}:{event_id}:{}", &hash[..16])
    } else {
        format!("{provider}:{event_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "ws_1";

    #[test]
    fn quickbooks_payment_changes_sync_payments_and_are_identified_by_their_hash() {
        let body = r#"{"eventNotifications":[{"realmId":"123","dataChangeEvent":{"entities":[{"name":"Payment","id":"9","operation":"Create","lastUpdated":"2026-11-22T10:00:00Z"}]}}]}"#;
        let id = identify("quickbooks", false, WS, body.as_bytes()).unwrap();
        assert!(id.event_id.starts_with("sha256:") && id.event_id.len() == 71);
        assert!(!id.safety);
        let now = Utc::now();
        assert_eq!(
            actions("quickbooks", false, WS, body, now),
            Action::Sync {
                data_type: "payments"
            }
        );
        let customer = body.replace("Payment", "Customer");
        assert!(matches!(
            actions("quickbooks", false, WS, &customer, now),
            Action::Ignore { .. }
        ));
    }

    #[test]
    fn stripe_invoice_paid_becomes_the_catalog_event_with_ids_only() {
        let body = r#"{"id":"evt_1","type":"invoice.paid","created":1795000000,"data":{"object":{"id":"in_1","customer_email":"a@b.example","metadata":{"invoice_id":"inv_7"}}}}"#;
        let id = identify("stripe", false, WS, body.as_bytes()).unwrap();
        assert_eq!(id.event_id, "evt_1");
        assert_eq!(id.dedup_key, "evt_1");
        let Action::Publish {
            event_type, data, ..
        } = actions("stripe", false, WS, body, Utc::now())
        else {
            panic!("published")
        };
        assert_eq!(event_type, "invoice.paid");
        assert_eq!(data["invoice_id"], "inv_7");
        assert_eq!(data["source"]["object_id"], "in_1");
        crate::wire::check_personal_data(&data, "data").expect("no personal data");
        let twin = body.replace("invoice.paid", "invoice.payment_succeeded");
        assert!(
            matches!(
                actions("stripe", false, WS, &twin, Utc::now()),
                Action::Ignore { .. }
            ),
            "the same payment is published once"
        );
        let other = body.replace("invoice.paid", "customer.created");
        assert!(matches!(
            actions("stripe", false, WS, &other, Utc::now()),
            Action::Ignore { .. }
        ));
    }

    #[test]
    fn an_avinode_trip_request_syncs_rfqs_and_other_types_are_recorded_only() {
        let body = r#"{"id":"arfq-1","href":"https://sandbox.avinode.com/api/rfqs/arfq-1","type":"TripRequest","tripId":"atrip-1"}"#;
        let id = identify("avinode", false, WS, body.as_bytes()).unwrap();
        assert_eq!((id.event_id.as_str(), id.safety), ("arfq-1", false));
        assert_eq!(
            actions("avinode", false, WS, body, Utc::now()),
            Action::Sync { data_type: "rfqs" }
        );
        let chat = body.replace("TripRequest", "TripChatSeller");
        assert!(matches!(
            actions("avinode", false, WS, &chat, Utc::now()),
            Action::Ignore { reason } if reason.contains("TripChatSeller")
        ));
    }

    #[test]
    fn the_generic_envelope_is_checked_like_every_entrance() {
        let body = r#"{"id":"r1","type":"safety_report.submitted","timestamp":"2026-11-22T10:00:00Z","data":{"safety_report_id":"sr_1"}}"#;
        let id = identify("asap", true, WS, body.as_bytes()).unwrap();
        assert!(id.safety);
        assert!(id.dedup_key.starts_with("r1#"));
        assert!(matches!(
            actions("asap", true, WS, body, Utc::now()),
            Action::Publish { ref event_type, .. } if event_type == "safety_report.submitted"
        ));
        let pii = body.replace("safety_report_id", "reporter_email");
        let e = identify("asap", true, WS, pii.as_bytes()).unwrap_err();
        assert!(e.0.contains("reporter_email"), "{e}");
        let unknown = body.replace("safety_report.submitted", "report.filed");
        assert!(identify("asap", true, WS, unknown.as_bytes()).is_err());
        let other_ws = body.replace("\"id\":", "\"workspace_id\":\"ws_2\",\"id\":");
        let e = identify("asap", true, WS, other_ws.as_bytes()).unwrap_err();
        assert!(e.0.contains("workspace_id"), "{e}");
        let trip = body.replace("safety_report.submitted", "trip.updated");
        let id = identify("foreflight", true, WS, trip.as_bytes()).unwrap();
        assert!(!id.safety && id.dedup_key == "r1");
    }

    #[test]
    fn safety_events_of_different_content_get_different_ids() {
        let a = hangar_event_id("asap", "r1", true, "{\"a\":1}");
        let b = hangar_event_id("asap", "r1", true, "{\"a\":2}");
        assert_ne!(a, b);
        assert_eq!(
            hangar_event_id("stripe", "evt_1", false, "x"),
            "stripe:evt_1"
        );
    }

    #[test]
    fn a_quickbooks_push_of_several_realms_is_split_per_realm() {
        let classic = br#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"name":"Payment","id":"9"}]}}]}"#;
        assert_eq!(
            quickbooks_parts(classic).unwrap(),
            None,
            "one realm: as it is"
        );
        let two = br#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"name":"Payment","id":"9"}]}},{"realmId":"2","dataChangeEvent":{"entities":[{"name":"Invoice","id":"4"}]}}]}"#;
        let parts = quickbooks_parts(two).unwrap().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "1");
        assert!(parts[1].1.contains(r#""realmId":"2""#) && parts[1].1.contains("Invoice"));
        let cloud = br#"[{"specversion":"1.0","id":"a","type":"qbo.payment.created.v1","intuitaccountid":"7","intuitentityid":"31","time":"2026-11-22T10:00:00Z"},{"specversion":"1.0","id":"b","type":"qbo.invoice.updated.v1","intuitaccountid":"8","intuitentityid":"5"},{"specversion":"1.0","id":"c","type":"qbo.customer.created.v1","intuitaccountid":"7","intuitentityid":"6"}]"#;
        let parts = quickbooks_parts(cloud).unwrap().unwrap();
        assert_eq!(
            parts.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["7", "8"]
        );
        let first: Value = serde_json::from_str(&parts[0].1).unwrap();
        assert_eq!(
            first.pointer("/eventNotifications/0/dataChangeEvent/entities/0/name"),
            Some(&json!("Payment"))
        );
        assert_eq!(
            first.pointer("/eventNotifications/0/dataChangeEvent/entities/1/name"),
            Some(&json!("Customer"))
        );
        // Each part maps like a classic push: realm 7 names a Payment, so it syncs.
        let action = actions("quickbooks", false, "ws_1", &parts[0].1, Utc::now());
        assert_eq!(
            action,
            Action::Sync {
                data_type: "payments"
            }
        );
        assert!(quickbooks_parts(br#"[{"type":"qbo.payment.created.v1"}]"#).is_err());
    }
}
