//! The event catalog of the outbound-webhook document (`seeds/004_…`): every event type the
//! platform publishes, in `resource.action` form. Ingress refuses types that are not here;
//! webhook endpoints subscribe to them; safety types need the `safety_manager` role.

/// Every event type of the webhook document, grouped as the document groups them.
pub const EVENT_TYPES: &[&str] = &[
    // Trip
    "trip.created",
    "trip.updated",
    "trip.confirmed",
    "trip.cancelled",
    "trip.completed",
    "trip.crew_assigned",
    "trip.crew_removed",
    "trip.passenger_added",
    "trip.passenger_removed",
    // Trip request
    "trip_request.created",
    "trip_request.accepted",
    "trip_request.declined",
    "trip_request.quoted",
    "trip_request.quote_accepted",
    "trip_request.quote_declined",
    "trip_request.cancelled",
    // Safety
    "safety_report.submitted",
    "safety_report.updated",
    "safety_report.closed",
    "investigation.created",
    "investigation.completed",
    "cpa.created",
    "cpa.completed",
    "cpa.overdue",
    "hazard.identified",
    "hazard.mitigated",
    // Crew
    "crew.currency_expiring",
    "crew.currency_expired",
    "crew.duty_limit_warning",
    "crew.training_due",
    // Aircraft
    "aircraft.status_changed",
    "aircraft.inspection_due",
    "aircraft.discrepancy_reported",
    "aircraft.mel_deferral_expiring",
    // Invoice
    "invoice.created",
    "invoice.sent",
    "invoice.paid",
    "invoice.overdue",
    // Member
    "member.invited",
    "member.joined",
    "member.role_changed",
    "member.removed",
    // Portal
    "portal.client_invited",
    "portal.client_joined",
    "portal.client_suspended",
    "portal.message_sent",
];

/// The resources whose events are safety data (append-only; `safety_manager` or `owner`).
const SAFETY_RESOURCES: &[&str] = &["safety_report", "investigation", "cpa", "hazard"];

/// Whether `event_type` is in the catalog.
pub fn is_known(event_type: &str) -> bool {
    EVENT_TYPES.contains(&event_type)
}

/// Whether `event_type` is a safety event (`safety_report.*`, `investigation.*`, `cpa.*`,
/// `hazard.*`).
pub fn is_safety(event_type: &str) -> bool {
    event_type
        .split_once('.')
        .is_some_and(|(resource, _)| SAFETY_RESOURCES.contains(&resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_every_type_of_the_document_once() {
        assert_eq!(EVENT_TYPES.len(), 46);
        let mut sorted = EVENT_TYPES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), EVENT_TYPES.len(), "a type is listed twice");
        for t in EVENT_TYPES {
            let (resource, action) = t.split_once('.').expect("resource.action");
            assert!(
                !resource.is_empty() && !action.is_empty() && !action.contains('.'),
                "{t}"
            );
        }
    }

    #[test]
    fn safety_types_are_exactly_the_four_safety_resources() {
        let safety: Vec<&str> = EVENT_TYPES
            .iter()
            .copied()
            .filter(|t| is_safety(t))
            .collect();
        assert_eq!(safety.len(), 10);
        assert!(is_safety("hazard.identified") && is_safety("cpa.overdue"));
        assert!(!is_safety("trip.created") && !is_safety("invoice.paid") && !is_safety("hazard"));
    }

    #[test]
    fn unknown_types_are_not_known() {
        assert!(is_known("trip.created"));
        for t in [
            "trip.create",
            "Trip.created",
            "trip",
            "",
            "trip.created ",
            "flight.created",
        ] {
            assert!(!is_known(t), "{t:?}");
        }
    }
}
