//! Property tests of cron specs and schedule files (`schedules/src/spec.rs`, `file.rs`): any
//! spec text and any file text parse without a panic; a refusal names the file (and, for a
//! field, the schedule and the field); an accepted cron spec plans forward in time only (the
//! next due time is after now, the latest due slot is at or before now); frequency offsets
//! stay inside their period. Cases: `PROPTEST_CASES` (default 256; `scripts/proptest` runs
//! 10⁶).

use chrono::{DateTime, Utc};
use hangar_schedules::file::{self, ScheduleFileProblem};
use hangar_schedules::spec::{Frequency, Spec, SpecError};
use proptest::prelude::*;

/// One cron field: the forms the parser knows (numbers, ranges, steps, lists, names, `?`),
/// out-of-range values, and junk.
fn cron_field() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_owned()),
        Just("?".to_owned()),
        (0u32..100).prop_map(|n| n.to_string()),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..70).prop_map(|n| format!("*/{n}")),
        (0u32..70, 0u32..70).prop_map(|(a, n)| format!("{a}/{n}")),
        "(MON|TUE|WED|THU|FRI|SAT|SUN|JAN|FEB|DEC|L|W|#)",
        "(MON|JAN)-(FRI|DEC)",
        "[0-9*/,?LW#-]{1,6}",
        "\\PC{1,3}",
    ];
    prop::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join(","))
}

/// A cron expression of 4 to 8 fields, with assorted whitespace between them.
fn cron_text() -> impl Strategy<Value = String> {
    prop::collection::vec((cron_field(), "[ \t]{1,2}"), 4..9).prop_map(|fields| {
        fields
            .into_iter()
            .map(|(field, space)| format!("{field}{space}"))
            .collect()
    })
}

fn now() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800_000).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
}

fn assert_spec_error_is_clear(error: &SpecError) {
    let text = error.to_string();
    match error {
        SpecError::FieldCount(spec, n) => {
            assert!(text.contains(&format!("{n} field")), "{text}");
            assert!(text.contains(spec.as_str()), "{text}");
        }
        SpecError::Cron { text: spec, reason } => {
            assert!(!reason.trim().is_empty(), "no reason for {spec:?}");
            assert!(!reason.contains('\n'), "reason spans lines: {reason:?}");
        }
    }
}

/// A spec that parsed plans forward: next due after now, latest due at or before now.
fn assert_plans_forward(spec: &Spec, name: &str, now: DateTime<Utc>) {
    let offset = spec.offset_ms(name);
    if let Spec::Every(frequency) = spec {
        assert!(
            (0..frequency.period_ms()).contains(&offset),
            "offset {offset}"
        );
    }
    if let Some(next) = spec.next_due_after(offset, now) {
        assert!(
            next > now,
            "{}: next due {next} not after {now}",
            spec.as_str()
        );
    }
    if let Some(slot) = spec.latest_due(offset, now) {
        assert!(
            slot.due <= now,
            "{}: latest due {} after {now}",
            spec.as_str(),
            slot.due
        );
    }
}

/// One value of a schedule file field: right for it, or of another type, or junk.
fn toml_value(good: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => good,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => "\\PC{0,8}".prop_map(|s| format!("{s:?}")),
        1 => "[\\[\\]{}=\"'a-z0-9 .,-]{0,12}",
    ]
}

fn quoted(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    strategy.prop_map(|s| format!("{s:?}"))
}

/// A `[[schedule]]` table with some of its fields, maybe an unknown one.
fn schedule_table() -> impl Strategy<Value = String> {
    let frequency = prop_oneof![
        Just("hourly".to_owned()),
        Just("daily".to_owned()),
        Just("every_6_hours".to_owned()),
        Just("weekly".to_owned()),
        Just("realtime".to_owned())
    ];
    let fields = (
        toml_value(quoted("[a-z0-9:/._-]{0,12}|\\PC{1,5}")),
        toml_value(quoted(cron_text())),
        toml_value(quoted(frequency)),
        toml_value(quoted("noop|http|[a-z]{0,6}")),
        toml_value(Just("{ note = \"x\", n = 1 }".to_owned())),
        toml_value(quoted("default|alerts|[a-z]{0,70}")),
        toml_value((-40_000i64..40_000).prop_map(|n| n.to_string())),
        toml_value(any::<bool>().prop_map(|b| b.to_string())),
    );
    let names = [
        "name",
        "cron",
        "frequency",
        "kind",
        "args",
        "queue",
        "priority",
        "enabled",
    ];
    (
        fields,
        prop::collection::vec(prop::bool::weighted(0.8), 8),
        prop::option::weighted(0.05, "[a-z]{1,6} = 1"),
    )
        .prop_map(move |((a, b, c, d, e, f, g, h), keep, extra)| {
            let values = [a, b, c, d, e, f, g, h];
            let mut table = String::from("[[schedule]]\n");
            for ((name, value), keep) in names.iter().zip(values).zip(keep) {
                if keep {
                    table.push_str(&format!("{name} = {value}\n"));
                }
            }
            if let Some(extra) = extra {
                table.push_str(&extra);
                table.push('\n');
            }
            table
        })
}

fn assert_file_error_is_clear(error: &file::ScheduleFileError, file_name: &str) {
    let text = error.to_string();
    assert!(text.starts_with(&format!("{file_name}: ")), "{text}");
    assert!(text.len() > file_name.len() + 2, "{text}");
    if let ScheduleFileProblem::Field { schedule, .. } = &error.problem {
        assert!(text.contains(&format!("schedule '{schedule}'")), "{text}");
    }
}

proptest! {
    #[test]
    fn prop_cron_any_text_parses_or_says_why(text in prop_oneof!["\\PC*", cron_text()], now in now()) {
        match Spec::parse(&text) {
            Ok(spec) => assert_plans_forward(&spec, "prop", now),
            Err(error) => assert_spec_error_is_clear(&error),
        }
    }

    #[test]
    fn prop_cron_six_field_specs_plan_forward(
        fields in prop::collection::vec(cron_field(), 6),
        name in "[a-z0-9:/._-]{1,30}",
        now in now(),
    ) {
        match Spec::parse(&fields.join(" ")) {
            Ok(spec) => assert_plans_forward(&spec, &name, now),
            Err(error) => assert_spec_error_is_clear(&error),
        }
    }

    #[test]
    fn prop_cron_frequencies_spread_within_their_period(
        frequency in prop::sample::select(Frequency::ALL.to_vec()),
        name in "\\PC{0,40}",
        now in now(),
    ) {
        let spec = Spec::parse(frequency.as_str()).unwrap();
        assert_plans_forward(&spec, &name, now);
        let next = spec.next_due_after(spec.offset_ms(&name), now).unwrap();
        prop_assert!(next - now <= chrono::Duration::milliseconds(frequency.period_ms()));
    }

    #[test]
    fn prop_schedule_files_parse_or_name_the_problem(
        tables in prop::collection::vec(schedule_table(), 0..4),
        header in prop::option::weighted(0.05, "[a-z]{1,5} = [0-9]"),
    ) {
        let text = format!("{}\n{}", header.unwrap_or_default(), tables.join("\n"));
        match file::parse("prop.toml", &text) {
            Ok(schedules) => {
                prop_assert_eq!(schedules.len(), tables.len());
                let mut names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
                prop_assert!(names.iter().all(|n| file::valid_name(n)));
                names.sort_unstable();
                names.dedup();
                prop_assert_eq!(names.len(), schedules.len(), "names unique");
            }
            Err(error) => assert_file_error_is_clear(&error, "prop.toml"),
        }
    }

    #[test]
    fn prop_schedule_files_any_text_names_the_file(text in prop_oneof!["\\PC*", "[\\[\\]\n=\"a-z ]{0,60}"]) {
        if let Err(error) = file::parse("any.toml", &text) {
            assert_file_error_is_clear(&error, "any.toml");
        }
    }
}
