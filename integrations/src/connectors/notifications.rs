//! What the notification connectors (Slack, Email) send: the integration document routes
//! "notifications and messages out" to its communications systems, and the webhook document's
//! catalog says which events there are. A notification data type is one group of that
//! catalog, so an admin picks which groups reach a channel (minimum data transfer):
//!
//! | data type | events |
//! |---|---|
//! | `trips` | `trip.*` (created, updated, confirmed, cancelled, completed, crew and passengers) |
//! | `trip_requests` | `trip_request.*` (portal requests, quotes) |
//! | `crew` | `crew.*` (currency expiring/expired, duty limit, training due) |
//! | `aircraft` | `aircraft.*` (status, inspection due, discrepancy, MEL deferral expiring) |
//! | `invoices` | `invoice.*` (created, sent, paid, overdue) |
//! | `members` | `member.*` (invited, joined, role changed, removed) |
//! | `portal` | `portal.*` (client invited, joined, suspended, message sent) |
//!
//! Safety events (`safety_report.*`, `investigation.*`, `cpa.*`, `hazard.*`) are not among
//! them: the document sends safety events out through the safety integrations (ASAP Gateway,
//! webhooks), which need the Safety Manager role, while messaging is an ops integration an
//! admin configures.
//!
//! Each event makes one message of its own ([`plan`]): a title and the trigger sentence of
//! the catalog, then the event's data field by field. The data carries internal ids only (the
//! ingress refuses personal data), so a message does too.

use serde_json::{Map, Value, json};

use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;

use crate::sync::connector::{ConnectorError, OutboundPlan};

/// The notification data types, one per group of the catalog.
pub const DATA_TYPES: [&str; 7] = [
    "trips",
    "trip_requests",
    "crew",
    "aircraft",
    "invoices",
    "members",
    "portal",
];

/// Fields of the event's data shown at most.
pub const MAX_FIELDS: usize = 25;

/// Characters of one field's value shown at most.
pub const MAX_VALUE_CHARS: usize = 200;

/// Each catalog event a notification data type takes: (event type, title, the catalog's
/// trigger).
const CATALOG: [(&str, &str, &str, &str); 36] = [
    (
        "trips",
        "trip.created",
        "Trip created",
        "A new trip is created (manually or from a portal request).",
    ),
    (
        "trips",
        "trip.updated",
        "Trip updated",
        "Trip details are modified (route, dates, crew, etc.).",
    ),
    (
        "trips",
        "trip.confirmed",
        "Trip confirmed",
        "Trip status changes to Confirmed.",
    ),
    (
        "trips",
        "trip.cancelled",
        "Trip cancelled",
        "Trip is cancelled.",
    ),
    (
        "trips",
        "trip.completed",
        "Trip completed",
        "Trip status changes to Completed.",
    ),
    (
        "trips",
        "trip.crew_assigned",
        "Crew assigned",
        "A crew member is assigned to the trip.",
    ),
    (
        "trips",
        "trip.crew_removed",
        "Crew removed",
        "A crew member is removed from the trip.",
    ),
    (
        "trips",
        "trip.passenger_added",
        "Passenger added",
        "A passenger is added to the trip manifest.",
    ),
    (
        "trips",
        "trip.passenger_removed",
        "Passenger removed",
        "A passenger is removed from the trip manifest.",
    ),
    (
        "trip_requests",
        "trip_request.created",
        "Trip request received",
        "A client submits a trip request through the portal.",
    ),
    (
        "trip_requests",
        "trip_request.accepted",
        "Trip request accepted",
        "Operations team accepts the request.",
    ),
    (
        "trip_requests",
        "trip_request.declined",
        "Trip request declined",
        "Operations team declines the request.",
    ),
    (
        "trip_requests",
        "trip_request.quoted",
        "Quote sent",
        "A quote is sent to the client.",
    ),
    (
        "trip_requests",
        "trip_request.quote_accepted",
        "Quote accepted",
        "Client accepts the quote.",
    ),
    (
        "trip_requests",
        "trip_request.quote_declined",
        "Quote declined",
        "Client declines the quote.",
    ),
    (
        "trip_requests",
        "trip_request.cancelled",
        "Trip request cancelled",
        "Client cancels the request.",
    ),
    (
        "crew",
        "crew.currency_expiring",
        "Crew currency expiring",
        "A crew member's currency will expire within 30 days.",
    ),
    (
        "crew",
        "crew.currency_expired",
        "Crew currency expired",
        "A crew member's currency has expired.",
    ),
    (
        "crew",
        "crew.duty_limit_warning",
        "Duty limit warning",
        "A crew member is approaching duty time limits.",
    ),
    (
        "crew",
        "crew.training_due",
        "Training due",
        "A crew member has training coming due.",
    ),
    (
        "aircraft",
        "aircraft.status_changed",
        "Aircraft status changed",
        "Aircraft status changes (available, maintenance, etc.).",
    ),
    (
        "aircraft",
        "aircraft.inspection_due",
        "Inspection due",
        "An inspection is coming due within the configured threshold.",
    ),
    (
        "aircraft",
        "aircraft.discrepancy_reported",
        "Discrepancy reported",
        "A new discrepancy is reported.",
    ),
    (
        "aircraft",
        "aircraft.mel_deferral_expiring",
        "MEL deferral expiring",
        "An MEL deferral is approaching its expiration.",
    ),
    (
        "invoices",
        "invoice.created",
        "Invoice created",
        "A new invoice is created.",
    ),
    (
        "invoices",
        "invoice.sent",
        "Invoice sent",
        "An invoice is sent to the client.",
    ),
    (
        "invoices",
        "invoice.paid",
        "Invoice paid",
        "Payment is recorded for an invoice.",
    ),
    (
        "invoices",
        "invoice.overdue",
        "Invoice overdue",
        "An invoice has passed its due date without payment.",
    ),
    (
        "members",
        "member.invited",
        "Member invited",
        "A new member invitation is sent.",
    ),
    (
        "members",
        "member.joined",
        "Member joined",
        "A member accepts their invitation and joins.",
    ),
    (
        "members",
        "member.role_changed",
        "Member role changed",
        "A member's role is changed.",
    ),
    (
        "members",
        "member.removed",
        "Member removed",
        "A member is removed from the workspace.",
    ),
    (
        "portal",
        "portal.client_invited",
        "Portal client invited",
        "A portal invitation is sent to a client.",
    ),
    (
        "portal",
        "portal.client_joined",
        "Portal client joined",
        "A client accepts their portal invitation.",
    ),
    (
        "portal",
        "portal.client_suspended",
        "Portal client suspended",
        "A client's portal access is suspended.",
    ),
    (
        "portal",
        "portal.message_sent",
        "Portal message",
        "A client sends a message through the portal.",
    ),
];

/// The event types of each data type, in the catalog's order (static, as the connector
/// trait hands them out).
const EVENT_TYPES: [(&str, &[&str]); 7] = [
    (
        "trips",
        &[
            "trip.created",
            "trip.updated",
            "trip.confirmed",
            "trip.cancelled",
            "trip.completed",
            "trip.crew_assigned",
            "trip.crew_removed",
            "trip.passenger_added",
            "trip.passenger_removed",
        ],
    ),
    (
        "trip_requests",
        &[
            "trip_request.created",
            "trip_request.accepted",
            "trip_request.declined",
            "trip_request.quoted",
            "trip_request.quote_accepted",
            "trip_request.quote_declined",
            "trip_request.cancelled",
        ],
    ),
    (
        "crew",
        &[
            "crew.currency_expiring",
            "crew.currency_expired",
            "crew.duty_limit_warning",
            "crew.training_due",
        ],
    ),
    (
        "aircraft",
        &[
            "aircraft.status_changed",
            "aircraft.inspection_due",
            "aircraft.discrepancy_reported",
            "aircraft.mel_deferral_expiring",
        ],
    ),
    (
        "invoices",
        &[
            "invoice.created",
            "invoice.sent",
            "invoice.paid",
            "invoice.overdue",
        ],
    ),
    (
        "members",
        &[
            "member.invited",
            "member.joined",
            "member.role_changed",
            "member.removed",
        ],
    ),
    (
        "portal",
        &[
            "portal.client_invited",
            "portal.client_joined",
            "portal.client_suspended",
            "portal.message_sent",
        ],
    ),
];

/// What a notification connector (`provider`: its name) answers to a read: it has nothing
/// to read.
pub(crate) fn outbound_only(provider: &str) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Client,
        format!("{provider} is outbound only: nothing to read"),
    ))
}

/// The catalog event types notification data type `data_type` takes (none for another).
pub fn event_types(data_type: &str) -> &'static [&'static str] {
    EVENT_TYPES
        .iter()
        .find(|(d, _)| *d == data_type)
        .map_or(&[], |(_, types)| types)
}

/// The direction spec of a notification data type: out, one object type.
pub fn is_data_type(data_type: &str) -> bool {
    DATA_TYPES.contains(&data_type)
}

/// The message for an event of `event_type` with `data`, when `data_type` takes it.
pub fn for_event(
    object_type: &'static str,
    data_type: &str,
    event_type: &str,
    data: &Value,
) -> Option<Result<OutboundPlan, String>> {
    event_types(data_type)
        .contains(&event_type)
        .then(|| plan(object_type, event_type, data))
}

/// The message of one event: `{"event_type", "title", "summary", "fields": [[name, value],
/// …]}` (fields sorted by name, at most [`MAX_FIELDS`], values cut at [`MAX_VALUE_CHARS`]).
/// The internal id is the subject's (`trip_id`, …) when the data names one; the sync engine
/// keys the record by the event's id anyway.
pub fn plan(
    object_type: &'static str,
    event_type: &str,
    data: &Value,
) -> Result<OutboundPlan, String> {
    let (_, _, title, summary) = CATALOG
        .iter()
        .find(|(_, t, _, _)| *t == event_type)
        .ok_or_else(|| format!("{event_type} is not a notification event"))?;
    let empty = Map::new();
    let map = match data {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => return Err("data must be a JSON object".to_owned()),
    };
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut fields: Vec<Value> = names
        .iter()
        .take(MAX_FIELDS)
        .map(|name| json!([name, shown(&map[name.as_str()])]))
        .collect();
    if map.len() > MAX_FIELDS {
        fields.push(json!([
            "…",
            format!("{} more fields", map.len() - MAX_FIELDS)
        ]));
    }
    let subject = event_type.split('.').next().unwrap_or("");
    let internal_id = map
        .get(&format!("{subject}_id"))
        .and_then(Value::as_str)
        .unwrap_or(event_type)
        .to_owned();
    Ok(OutboundPlan {
        object_type,
        internal_id,
        body: json!({
            "event_type": event_type,
            "title": title,
            "summary": summary,
            "fields": fields,
        }),
    })
}

/// A value as shown: text as it is, anything else as compact JSON, cut at
/// [`MAX_VALUE_CHARS`].
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A stored message's parts: title, summary and fields.
pub struct Message<'a> {
    /// `Trip confirmed`.
    pub title: &'a str,
    /// The catalog's trigger sentence.
    pub summary: &'a str,
    /// The event type (`trip.confirmed`).
    pub event_type: &'a str,
    /// (name, value) of the data.
    pub fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Message<'a> {
    /// Reads a body [`plan`] made; `None` when it is not one.
    pub fn of(body: &'a Value) -> Option<Message<'a>> {
        let fields = body
            .get("fields")?
            .as_array()?
            .iter()
            .filter_map(|pair| Some((pair.get(0)?.as_str()?, pair.get(1)?.as_str()?)))
            .collect();
        Some(Message {
            title: body.get("title")?.as_str()?,
            summary: body.get("summary")?.as_str()?,
            event_type: body.get("event_type")?.as_str()?,
            fields,
        })
    }

    /// Plain text: the title and summary, then one `name: value` line per field.
    pub fn plain_text(&self) -> String {
        let mut lines = vec![
            format!("{} ({})", self.title, self.event_type),
            self.summary.to_owned(),
            String::new(),
        ];
        lines.extend(self.fields.iter().map(|(k, v)| format!("{k}: {v}")));
        lines.push(String::new());
        lines.push("Sent by Hangar for PlaneConnection.".to_owned());
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_of_the_catalog_but_safety_is_a_data_type_with_its_events() {
        let mut n = 0;
        for data_type in DATA_TYPES {
            let types = event_types(data_type);
            assert!(!types.is_empty(), "{data_type}");
            for t in types {
                let (d, _, _, _) = CATALOG.iter().find(|(_, e, _, _)| e == t).expect(t);
                assert_eq!(*d, data_type, "{t}");
                n += 1;
            }
        }
        assert_eq!(n, CATALOG.len());
        assert!(event_types("safety").is_empty());
        assert!(
            !CATALOG
                .iter()
                .any(|(_, t, _, _)| t.starts_with("safety_report") || t.starts_with("hazard"))
        );
    }

    #[test]
    fn a_message_shows_the_title_and_the_data_field_by_field() {
        let plan = plan(
            "Message",
            "trip.confirmed",
            &json!({"trip_id": "trp_1", "legs": 2, "route": ["KTEB", "KPBI"], "note": "x".repeat(300)}),
        )
        .unwrap();
        assert_eq!(plan.internal_id, "trp_1");
        let message = Message::of(&plan.body).unwrap();
        assert_eq!(message.title, "Trip confirmed");
        let text = message.plain_text();
        assert!(text.contains("trip_id: trp_1"), "{text}");
        assert!(
            text.contains("legs: 2") && text.contains(r#"route: ["KTEB","KPBI"]"#),
            "{text}"
        );
        let note = message.fields.iter().find(|(k, _)| *k == "note").unwrap().1;
        assert_eq!(note.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(plan_error("trip.confirmed", json!(3)).contains("object"));
        assert!(plan_error("safety_report.submitted", json!({})).contains("not a notification"));
    }

    fn plan_error(event_type: &str, data: Value) -> String {
        plan("Message", event_type, &data).unwrap_err()
    }
}
