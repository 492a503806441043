//! A Salesforce record of a trip built from the data of a catalog event (`trip.created`,
//! `trip.updated`, `trip.confirmed`, `trip.cancelled`, `trip.completed`), upserted by
//! external id. The event's data (ids, airports, times; never personal data):
//!
//! ```json
//! {"trip_id": "trp_123", "status": "confirmed", "origin": "KTEB", "destination": "KPBI",
//!  "departure_time": "2026-12-01T14:00:00Z", "arrival_time": "2026-12-01T16:40:00Z",
//!  "aircraft": "N123AB", "customer_ref": "001Dn00000AbCdE"}
//! ```
//!
//! The fields of the custom object (`settings.trip_object`, default `Hangar_Trip__c`):
//! `Status__c`, `Origin__c`, `Destination__c`, `Departure__c`, `Arrival__c`, `Aircraft__c`,
//! `Account__c` (a lookup to the Account `customer_ref` names). A missing `status` is the
//! event's (`trip.cancelled` → `cancelled`).

use serde_json::{Map, Value, json};

use crate::sync::connector::OutboundPlan;

/// The event types the `trips` data type takes.
pub const EVENT_TYPES: [&str; 5] = [
    "trip.created",
    "trip.updated",
    "trip.confirmed",
    "trip.cancelled",
    "trip.completed",
];

/// The record for `data` of `event_type`; an error names the field.
pub fn plan(event_type: &str, data: &Value) -> Result<OutboundPlan, String> {
    let text = |field: &str| -> Result<Option<String>, String> {
        match data.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
            Some(_) => Err(format!(
                "data.{field} must be a non-empty string of at most 255 bytes"
            )),
        }
    };
    let trip_id = text("trip_id")?.ok_or("data.trip_id is required")?;
    if !trip_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("data.trip_id must be letters, digits, `_` or `-`".into());
    }
    let mut body = Map::new();
    let status = text("status")?.or_else(|| match event_type {
        "trip.created" => Some("created".into()),
        "trip.confirmed" => Some("confirmed".into()),
        "trip.cancelled" => Some("cancelled".into()),
        "trip.completed" => Some("completed".into()),
        _ => None,
    });
    if let Some(status) = status {
        body.insert("Status__c".into(), json!(status));
    }
    for (field, target) in [
        ("origin", "Origin__c"),
        ("destination", "Destination__c"),
        ("aircraft", "Aircraft__c"),
        ("customer_ref", "Account__c"),
    ] {
        if let Some(value) = text(field)? {
            body.insert(target.into(), json!(value));
        }
    }
    for (field, target) in [
        ("departure_time", "Departure__c"),
        ("arrival_time", "Arrival__c"),
    ] {
        if let Some(value) = text(field)? {
            let at = chrono::DateTime::parse_from_rfc3339(&value)
                .map_err(|_| format!("data.{field} must be an RFC 3339 date-time"))?;
            body.insert(
                target.into(),
                json!(
                    at.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
        }
    }
    Ok(OutboundPlan {
        object_type: "Trip",
        internal_id: trip_id,
        body: Value::Object(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_event_becomes_a_record_and_bad_data_names_the_field() {
        let p = plan(
            "trip.cancelled",
            &json!({"trip_id": "trp_1", "origin": "KTEB", "departure_time": "2026-12-01T09:00:00-05:00"}),
        )
        .unwrap();
        assert_eq!(p.internal_id, "trp_1");
        assert_eq!(p.body["Status__c"], "cancelled");
        assert_eq!(p.body["Origin__c"], "KTEB");
        assert_eq!(p.body["Departure__c"], "2026-12-01T14:00:00Z");
        for (data, field) in [
            (json!({"origin": "KTEB"}), "data.trip_id"),
            (json!({"trip_id": "a/b"}), "data.trip_id"),
            (json!({"trip_id": "t", "origin": 5}), "data.origin"),
            (
                json!({"trip_id": "t", "arrival_time": "tomorrow"}),
                "data.arrival_time",
            ),
        ] {
            let error = plan("trip.updated", &data).unwrap_err();
            assert!(error.contains(field), "{error} names {field}");
        }
    }
}
