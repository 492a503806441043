use chrono::{DateTime, Duration, Utc};

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

#[test]
fn keywords_and_cron_parse() {
    assert!(matches!(
        Spec::parse("hourly"),
        Ok(Spec::Every(Frequency::Hourly))
    ));
    assert!(matches!(
        Spec::parse("every_6_hours"),
        Ok(Spec::Every(Frequency::Every6Hours))
    ));
    assert!(matches!(
        Spec::parse("daily"),
        Ok(Spec::Every(Frequency::Daily))
    ));
    assert!(matches!(Spec::parse("realtime"), Ok(Spec::Realtime)));
    assert!(matches!(Spec::parse("manual"), Ok(Spec::Manual)));
    let cron = Spec::parse("  */2   * * * * * ").expect("cron");
    assert_eq!(cron.as_str(), "*/2 * * * * *", "whitespace is normalised");
    assert!(cron.is_planned());
    assert!(!Spec::Manual.is_planned() && !Spec::Realtime.is_planned());
}

#[test]
fn cron_needs_exactly_six_fields() {
    assert_eq!(
        Spec::parse("0 3 * * *").unwrap_err(),
        SpecError::FieldCount("0 3 * * *".into(), 5)
    );
    assert!(matches!(
        Spec::parse("0 0 3 * * * 2030"),
        Err(SpecError::FieldCount(_, 7))
    ));
    assert!(matches!(
        Spec::parse("@daily"),
        Err(SpecError::FieldCount(_, 1))
    ));
    assert!(matches!(
        Spec::parse("0 0 25 * * *"),
        Err(SpecError::Cron { .. })
    ));
    assert!(matches!(
        Spec::parse("weekly"),
        Err(SpecError::FieldCount(_, 1))
    ));
}

#[test]
fn cron_latest_slot_is_at_or_before_now_and_next_is_strictly_after() {
    let spec = Spec::parse("*/2 * * * * *").unwrap();
    let now = t("2026-11-22T10:00:03.700Z");
    let latest = spec.latest_due(0, now).unwrap();
    assert_eq!(latest.slot, t("2026-11-22T10:00:02Z"));
    assert_eq!(latest.due, latest.slot, "cron fires at its exact time");
    assert_eq!(spec.next_due_after(0, now), Some(t("2026-11-22T10:00:04Z")));

    // Exactly on a slot: that slot is the latest, the next one is strictly later.
    let on = t("2026-11-22T10:00:04Z");
    assert_eq!(spec.latest_due(0, on).unwrap().slot, on);
    assert_eq!(spec.next_due_after(0, on), Some(t("2026-11-22T10:00:06Z")));
}

#[test]
fn cron_daily_at_three() {
    let spec = Spec::parse("0 0 3 * * *").unwrap();
    let now = t("2026-11-22T02:59:59.999Z");
    assert_eq!(
        spec.latest_due(0, now).unwrap().slot,
        t("2026-11-21T03:00:00Z")
    );
    assert_eq!(spec.next_due_after(0, now), Some(t("2026-11-22T03:00:00Z")));
}

#[test]
fn frequency_slots_are_period_multiples_and_due_adds_the_offset() {
    let spec = Spec::Every(Frequency::Hourly);
    let offset = 25 * 60_000; // :25
    let before = t("2026-11-22T10:24:59Z");
    let latest = spec.latest_due(offset, before).unwrap();
    assert_eq!(latest.slot, t("2026-11-22T09:00:00Z"));
    assert_eq!(latest.due, t("2026-11-22T09:25:00Z"));
    assert_eq!(
        spec.next_due_after(offset, before),
        Some(t("2026-11-22T10:25:00Z"))
    );
    let at = t("2026-11-22T10:25:00Z");
    assert_eq!(
        spec.latest_due(offset, at).unwrap().slot,
        t("2026-11-22T10:00:00Z")
    );
    assert_eq!(
        spec.next_due_after(offset, at),
        Some(t("2026-11-22T11:25:00Z"))
    );

    let six = Spec::Every(Frequency::Every6Hours);
    let slot = six.latest_due(0, t("2026-11-22T17:59:00Z")).unwrap();
    assert_eq!(slot.slot, t("2026-11-22T12:00:00Z"));
    let daily = Spec::Every(Frequency::Daily);
    let slot = daily
        .latest_due(3_600_000, t("2026-11-22T00:30:00Z"))
        .unwrap();
    assert_eq!(
        slot.slot,
        t("2026-11-21T00:00:00Z"),
        "due at 01:00, not yet today"
    );
}

#[test]
fn offsets_are_stable_distinct_and_within_the_period() {
    // FNV-1a test vectors: the algorithm is fixed, so offsets survive releases.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);

    let spec = Spec::Every(Frequency::Hourly);
    let offsets: Vec<i64> = (0..200)
        .map(|i| spec.offset_ms(&format!("ws_{i}:quickbooks:payments")))
        .collect();
    assert!(offsets.iter().all(|o| (0..3_600_000).contains(o)));
    let mut distinct = offsets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), offsets.len(), "offsets collide");
    // Spread: the offsets cover the hour rather than bunching up.
    let quarters = [0, 1, 2, 3].map(|q| offsets.iter().filter(|o| **o / 900_000 == q).count());
    assert!(quarters.iter().all(|n| *n >= 30), "{quarters:?}");
    assert_eq!(spec.offset_ms("same"), spec.offset_ms("same"));
    assert_eq!(Spec::parse("0 * * * * *").unwrap().offset_ms("x"), 0);
}

#[test]
fn downtime_gives_one_catch_up_run_of_the_latest_slot() {
    let spec = Spec::parse("*/2 * * * * *").unwrap();
    let now = t("2026-11-22T10:00:03Z");
    // The planner was down for an hour: one run, of the latest slot.
    let decision = decide(&spec, 0, now, Some(t("2026-11-22T09:00:00Z")), false);
    assert_eq!(
        decision.action,
        Action::Enqueue(Slot {
            slot: t("2026-11-22T10:00:02Z"),
            due: t("2026-11-22T10:00:02Z")
        })
    );
    assert_eq!(decision.next_run_at, Some(t("2026-11-22T10:00:04Z")));
}

#[test]
fn a_slot_already_enqueued_is_not_enqueued_again() {
    let spec = Spec::parse("*/2 * * * * *").unwrap();
    let now = t("2026-11-22T10:00:03Z");
    let decision = decide(&spec, 0, now, Some(t("2026-11-22T10:00:02Z")), false);
    assert_eq!(decision.action, Action::Nothing);
    assert!(decision.next_run_at.unwrap() > now);
}

#[test]
fn an_active_previous_run_skips_the_slot() {
    let spec = Spec::Every(Frequency::Daily);
    let now = t("2026-11-22T10:00:00Z");
    let decision = decide(&spec, 0, now, Some(t("2026-11-21T00:00:00Z")), true);
    assert_eq!(
        decision.action,
        Action::Skip(Slot {
            slot: t("2026-11-22T00:00:00Z"),
            due: t("2026-11-22T00:00:00Z")
        })
    );
    assert_eq!(decision.next_run_at, Some(t("2026-11-23T00:00:00Z")));
}

#[test]
fn unplanned_specs_do_nothing_and_have_no_next_run() {
    for spec in [Spec::Manual, Spec::Realtime] {
        let decision = decide(&spec, 0, Utc::now(), None, false);
        assert_eq!(decision.action, Action::Nothing);
        assert_eq!(decision.next_run_at, None);
    }
}

#[test]
fn the_idempotency_key_names_the_slot_in_rfc3339_utc() {
    let slot = t("2026-11-22T03:00:00+00:00");
    assert_eq!(
        idempotency_key("nightly-reconcile", slot),
        "schedule:nightly-reconcile:2026-11-22T03:00:00Z"
    );
    // Sub-second parts never reach the key (slots are whole seconds anyway).
    let with_ms = slot + Duration::milliseconds(250);
    assert_eq!(
        idempotency_key("x", with_ms),
        "schedule:x:2026-11-22T03:00:00Z"
    );
}
