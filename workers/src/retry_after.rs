//! Owns parsing of the HTTP `Retry-After` header (RFC 9110 §10.2.3) into a
//! wait relative to a caller-supplied "now".

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value into the wait from `now`; `None` if it is neither delay-seconds nor an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(saturating_seconds(value)));
    }
    // httpdate accepts exactly the three forms RFC 9110 allows (IMF-fixdate,
    // RFC 850, asctime) and rejects everything else, including "-5" and "1.5".
    let at = httpdate::parse_http_date(value).ok()?;
    // A date already passed means "retry now", not "header is invalid".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Decimal digits to seconds; a value too large for u64 saturates because the
/// caller caps the wait anyway and an absurd header must not panic.
fn saturating_seconds(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT.
    const EPOCH_1994: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn before_1994(secs: u64) -> SystemTime {
        at(EPOCH_1994 - secs)
    }

    #[test]
    fn delay_seconds() {
        let now = at(1_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("007", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn zero_seconds_means_now() {
        assert_eq!(parse_retry_after("0", at(5)), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("000", at(5)), Some(Duration::ZERO));
    }

    #[test]
    fn huge_numbers_saturate() {
        let now = at(0);
        for huge in [
            "18446744073709551616",
            "99999999999999999999999",
            "123456789012345678901234567890123456789012345678901234567890",
        ] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(Duration::from_secs(u64::MAX)),
                "{huge}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let now = at(0);
        assert_eq!(
            parse_retry_after("  30  ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("\t30\r\n", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("  Sun, 06 Nov 1994 08:49:37 GMT \t", before_1994(10)),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn imf_fixdate() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", before_1994(90)),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn rfc850_date() {
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", before_1994(45)),
            Some(Duration::from_secs(45))
        );
    }

    #[test]
    fn asctime_date() {
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", before_1994(3_600)),
            Some(Duration::from_secs(3_600))
        );
    }

    #[test]
    fn sub_second_now_is_respected() {
        let now = before_1994(2) + Duration::from_millis(250);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_millis(1_750))
        );
    }

    #[test]
    fn past_or_present_date_is_zero() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(date, at(EPOCH_1994)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(date, at(EPOCH_1994 + 1)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(date, at(EPOCH_1994 + 86_400 * 10_000)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", at(EPOCH_1994 + 5)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", at(EPOCH_1994 + 5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn far_future_date() {
        let now = at(0);
        let d = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).unwrap();
        assert_eq!(d, Duration::from_secs(253_402_300_799));
    }

    #[test]
    fn garbage_is_rejected() {
        let now = at(EPOCH_1994);
        for bad in [
            "",
            "   ",
            "-5",
            "+5",
            "1.5",
            "1,5",
            "1 5",
            "5s",
            "0x10",
            "soon",
            "never",
            "١٢", // non-ASCII digits
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "1994-11-06T08:49:37Z",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
