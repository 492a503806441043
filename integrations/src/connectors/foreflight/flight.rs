//! A ForeFlight Dispatch flight built from a catalog trip event (`trip.created`,
//! `trip.updated`, `trip.confirmed`, `trip.cancelled`): the event's data (ids, airports,
//! times, the aircraft's registration; never personal data) as the flight's fields. The
//! field names are third-party knowledge (ForeFlight links its Dispatch API specification
//! from its release notes only to customers): `externalId`, `departure`, `destination`,
//! `scheduledTimeOfDeparture`, `scheduledTimeOfArrival`, `aircraftRegistration`, `status`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::sync::connector::OutboundPlan;

/// The event types the `trips` data type takes.
pub const EVENT_TYPES: [&str; 4] = [
    "trip.created",
    "trip.updated",
    "trip.confirmed",
    "trip.cancelled",
];

/// The object type of a flight.
pub const OBJECT_TYPE: &str = "Flight";

/// The flight for `data` of `event_type`; an error names the field.
pub fn plan(event_type: &str, data: &Value) -> Result<OutboundPlan, String> {
    let text = |field: &str| -> Result<Option<String>, String> {
        match data.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => Ok(Some(s.clone())),
            Some(_) => Err(format!(
                "data.{field} must be a non-empty string of at most 64 bytes"
            )),
        }
    };
    let required = |field: &str| -> Result<String, String> {
        text(field)?.ok_or_else(|| format!("data.{field} is required for a ForeFlight flight"))
    };
    let trip_id = required("trip_id")?;
    if !trip_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("data.trip_id must be letters, digits, `_` or `-`".into());
    }
    let mut body = Map::new();
    body.insert("externalId".into(), json!(trip_id));
    body.insert("departure".into(), json!(required("origin")?));
    body.insert("destination".into(), json!(required("destination")?));
    for (field, target, needed) in [
        ("departure_time", "scheduledTimeOfDeparture", true),
        ("arrival_time", "scheduledTimeOfArrival", false),
    ] {
        let value = match text(field)? {
            Some(v) => v,
            None if needed => {
                return Err(format!("data.{field} is required for a ForeFlight flight"));
            }
            None => continue,
        };
        let at = DateTime::parse_from_rfc3339(&value)
            .map_err(|_| format!("data.{field} must be an RFC 3339 date-time"))?;
        body.insert(
            target.into(),
            json!(
                at.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        );
    }
    if let Some(aircraft) = text("aircraft")? {
        body.insert("aircraftRegistration".into(), json!(aircraft));
    }
    let status = text("status")?
        .or_else(|| (event_type == "trip.cancelled").then(|| "cancelled".to_owned()));
    if let Some(status) = status {
        body.insert("status".into(), json!(status));
    }
    Ok(OutboundPlan {
        object_type: OBJECT_TYPE,
        internal_id: trip_id,
        body: Value::Object(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_event_becomes_a_flight_and_bad_data_names_the_field() {
        let data = json!({"trip_id": "trp_1", "origin": "KTEB", "destination": "KPBI",
            "departure_time": "2026-12-01T09:00:00-05:00", "aircraft": "N123AB"});
        let p = plan("trip.cancelled", &data).unwrap();
        assert_eq!(p.body["externalId"], "trp_1");
        assert_eq!(p.body["scheduledTimeOfDeparture"], "2026-12-01T14:00:00Z");
        assert_eq!(p.body["status"], "cancelled");
        assert!(p.body.get("scheduledTimeOfArrival").is_none());
        for (field, value) in [
            ("origin", Value::Null),
            ("departure_time", json!("soon")),
            ("trip_id", json!("a b")),
        ] {
            let mut bad = data.clone();
            bad[field] = value;
            let error = plan("trip.updated", &bad).unwrap_err();
            assert!(error.contains(&format!("data.{field}")), "{error}");
        }
    }
}
