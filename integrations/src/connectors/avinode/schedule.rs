//! An aircraft's schedule activity built from a catalog trip event (`trip.created`,
//! `trip.updated`, `trip.confirmed`, `trip.cancelled`, `trip.completed`), uploaded with
//! `PUT /schedules` so the Avinode Marketplace knows when and where the aircraft is busy.
//! The event's data (ids, airports, times; never personal data):
//!
//! ```json
//! {"trip_id": "trp_123", "status": "confirmed", "origin": "KTEB", "destination": "KPBI",
//!  "departure_time": "2026-12-01T14:00:00Z", "arrival_time": "2026-12-01T16:40:00Z",
//!  "aircraft": "N123AB"}
//! ```
//!
//! The body, one aircraft and the trip's activity (identified by its external id, the trip
//! id, so the same trip uploaded again replaces its activity; a cancelled trip frees the
//! aircraft):
//!
//! ```json
//! {"aircraft": {"tailNumber": "N123AB"},
//!  "activities": [{"externalId": "trp_123", "type": "PassengerFlight", "status": "confirmed",
//!    "start": {"airport": "KTEB", "time": "2026-12-01T14:00:00Z"},
//!    "end": {"airport": "KPBI", "time": "2026-12-01T16:40:00Z"}}]}
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::sync::connector::OutboundPlan;

/// The event types the `schedules` data type takes.
pub const EVENT_TYPES: [&str; 5] = [
    "trip.created",
    "trip.updated",
    "trip.confirmed",
    "trip.cancelled",
    "trip.completed",
];

/// The object type of an uploaded activity.
pub const OBJECT_TYPE: &str = "ScheduleActivity";

/// The activity for `data` of `event_type`; an error names the field.
pub fn plan(event_type: &str, data: &Value) -> Result<OutboundPlan, String> {
    let text = |field: &str| -> Result<String, String> {
        match data.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => Ok(s.clone()),
            Some(Value::String(_)) | Some(_) => Err(format!(
                "data.{field} must be a non-empty string of at most 64 bytes"
            )),
            None => Err(format!("data.{field} is required for an Avinode schedule")),
        }
    };
    let time = |field: &str| -> Result<String, String> {
        let value = text(field)?;
        DateTime::parse_from_rfc3339(&value)
            .map(|t| {
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            })
            .map_err(|_| format!("data.{field} must be an RFC 3339 date-time"))
    };
    let trip_id = text("trip_id")?;
    if !trip_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("data.trip_id must be letters, digits, `_` or `-`".into());
    }
    let status = match data.get("status") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 32 => s.clone(),
        _ => match event_type {
            "trip.cancelled" => "cancelled",
            "trip.completed" => "completed",
            "trip.confirmed" => "confirmed",
            _ => "planned",
        }
        .to_owned(),
    };
    let body = json!({
        "aircraft": {"tailNumber": text("aircraft")?},
        "activities": [{
            "externalId": trip_id,
            "type": "PassengerFlight",
            "status": status,
            "start": {"airport": text("origin")?, "time": time("departure_time")?},
            "end": {"airport": text("destination")?, "time": time("arrival_time")?},
        }],
    });
    Ok(OutboundPlan {
        object_type: OBJECT_TYPE,
        internal_id: trip_id,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_event_becomes_an_activity_and_bad_data_names_the_field() {
        let data = json!({"trip_id": "trp_1", "origin": "KTEB", "destination": "KPBI",
            "departure_time": "2026-12-01T09:00:00-05:00", "arrival_time": "2026-12-01T16:40:00Z",
            "aircraft": "N123AB"});
        let p = plan("trip.cancelled", &data).unwrap();
        assert_eq!(p.internal_id, "trp_1");
        assert_eq!(p.body["aircraft"]["tailNumber"], "N123AB");
        let activity = &p.body["activities"][0];
        assert_eq!(activity["status"], "cancelled");
        assert_eq!(activity["start"]["time"], "2026-12-01T14:00:00Z");
        for (field, value) in [
            ("aircraft", Value::Null),
            ("trip_id", json!("a/b")),
            ("arrival_time", json!("tomorrow")),
            ("origin", json!(5)),
        ] {
            let mut bad = data.clone();
            if value.is_null() {
                bad.as_object_mut().unwrap().remove(field);
            } else {
                bad[field] = value;
            }
            let error = plan("trip.updated", &bad).unwrap_err();
            assert!(error.contains(&format!("data.{field}")), "{error}");
        }
    }
}
