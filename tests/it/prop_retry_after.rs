//! Property tests of the `Retry-After` parser (`workers/src/retry_after.rs`, RFC 9110
//! §10.2.3): any header text is parsed without a panic; only delay-seconds and the three
//! HTTP-date forms are accepted; delay-seconds are exact (saturating, never wrapping); an
//! HTTP-date gives the exact wait from "now", and zero once it has passed. Cases:
//! `PROPTEST_CASES` (default 256; `scripts/proptest` runs 10⁶).

use std::time::{Duration, SystemTime};

use hangar_workers::retry_after::parse_retry_after;
use proptest::prelude::*;

/// Any time from 1970 to 9999 at millisecond precision.
fn now() -> impl Strategy<Value = SystemTime> {
    (0u64..253_402_300_799_000).prop_map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Text near the HTTP-date forms: right shapes with wrong parts, and the real forms.
fn date_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} [0-9]{2,5} [0-9]{1,2}:[0-9]{2}:[0-9]{2} [A-Z]{3}",
        "[A-Z][a-z]{5,8}, [0-9]{2}-[A-Z][a-z]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        "[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}",
        "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (0[1-9]|[12][0-9]|3[01]) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (19[7-9][0-9]|2[0-9]{3}) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] GMT",
    ]
}

proptest! {
    #[test]
    fn prop_retry_after_any_text_never_panics(value in prop_oneof!["\\PC*", ".*", "[ \t0-9+.,-]{0,24}"], now in now()) {
        if let Some(wait) = parse_retry_after(&value, now) {
            let trimmed = value.trim();
            let digits = trimmed.bytes().all(|b| b.is_ascii_digit());
            prop_assert!(
                digits || httpdate::parse_http_date(trimmed).is_ok(),
                "accepted {value:?} as {wait:?}: neither delay-seconds nor an HTTP-date"
            );
        }
    }

    #[test]
    fn prop_retry_after_date_like_text_never_panics(value in date_like(), now in now()) {
        let parsed = parse_retry_after(&value, now);
        let date = httpdate::parse_http_date(&value);
        prop_assert_eq!(parsed.is_some(), date.is_ok(), "{:?}", value);
        if let (Some(wait), Ok(at)) = (parsed, date) {
            prop_assert_eq!(wait, at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }

    #[test]
    fn prop_retry_after_delay_seconds_are_exact(
        seconds in any::<u64>(),
        zeros in 0usize..4,
        pad in "[ \t]{0,3}",
        now in now(),
    ) {
        let text = format!("{pad}{}{seconds}{pad}", "0".repeat(zeros));
        prop_assert_eq!(parse_retry_after(&text, now), Some(Duration::from_secs(seconds)));
    }

    #[test]
    fn prop_retry_after_huge_delays_saturate(digits in "[1-9][0-9]{20,80}", now in now()) {
        prop_assert_eq!(parse_retry_after(&digits, now), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn prop_retry_after_http_dates_round_trip(now in now(), ahead in -100_000_000i64..100_000_000) {
        // The wait to a whole-second date `ahead` seconds from now's second.
        let now_secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        let at_secs = (now_secs + ahead).clamp(0, 253_402_300_799);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(at_secs as u64);
        let header = httpdate::fmt_http_date(at);
        let wait = parse_retry_after(&header, now).expect("an IMF-fixdate is accepted");
        prop_assert_eq!(wait, at.duration_since(now).unwrap_or(Duration::ZERO), "{}", header);
    }
}
