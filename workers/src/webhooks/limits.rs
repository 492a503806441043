//! An endpoint's limits as set on create and `PATCH`: its concurrency (deliveries in flight
//! at once, default 10), an optional rate limit (requests per second, a burst of one second's
//! worth) and an optional ordering key (a JSON pointer into the event's `data`, e.g.
//! `/trip_id`: deliveries whose events have the same value there go one at a time, in event
//! order; events without it are not ordered). The gate that enforces them, with the circuit
//! breaker and the shares of the slots, is `store/webhook_gate.rs`.

use super::WebhookError;
use super::endpoint::{MAX_IN_FLIGHT, MAX_RATE_PER_S};

/// Longest ordering key path.
const MAX_POINTER_BYTES: usize = 256;

/// Limits to set; absent fields stay (on create: the defaults). `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries in flight at once (1 to 100).
    pub max_in_flight: Option<i32>,
    /// Requests per second (1 to 1000), or unlimited.
    pub rate_limit_per_s: Option<Option<i32>>,
    /// A JSON pointer into the event's data, or unordered.
    pub ordering_key: Option<Option<String>>,
}

impl Limits {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Checks every value set; the error names the field.
    pub fn check(&self) -> Result<(), WebhookError> {
        if let Some(n) = self.max_in_flight
            && !(1..=MAX_IN_FLIGHT).contains(&n)
        {
            return Err(WebhookError::Invalid(format!(
                "max_in_flight: {n} is out of range (1 to {MAX_IN_FLIGHT})"
            )));
        }
        if let Some(Some(n)) = self.rate_limit_per_s
            && !(1..=MAX_RATE_PER_S).contains(&n)
        {
            return Err(WebhookError::Invalid(format!(
                "rate_limit_per_s: {n} is out of range (1 to {MAX_RATE_PER_S}; null for no limit)"
            )));
        }
        if let Some(Some(pointer)) = &self.ordering_key {
            check_pointer(pointer)?;
        }
        Ok(())
    }
}

/// A JSON pointer (RFC 6901) naming a member of the event's data: `/name` or deeper, `~0`
/// and `~1` the only escapes, at most 256 bytes.
pub fn check_pointer(pointer: &str) -> Result<(), WebhookError> {
    let invalid = |why: &str| {
        WebhookError::Invalid(format!(
            "ordering_key: {why} (a JSON pointer into the event's data, e.g. \"/trip_id\")"
        ))
    };
    if pointer.len() > MAX_POINTER_BYTES {
        return Err(invalid("longer than 256 bytes"));
    }
    if !pointer.starts_with('/') || pointer.len() < 2 {
        return Err(invalid("must start with '/' and name a member"));
    }
    if pointer.contains('\0') {
        return Err(invalid("must not contain NUL"));
    }
    for token in pointer.split('/').skip(1) {
        if token.is_empty() {
            return Err(invalid("has an empty segment"));
        }
        let mut chars = token.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(invalid("'~' must be followed by 0 or 1"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_the_error_names_the_field() {
        let err = |l: Limits| l.check().unwrap_err().to_string();
        assert!(
            err(Limits {
                max_in_flight: Some(0),
                ..Limits::default()
            })
            .starts_with("max_in_flight:")
        );
        assert!(
            err(Limits {
                rate_limit_per_s: Some(Some(0)),
                ..Limits::default()
            })
            .starts_with("rate_limit_per_s:")
        );
        for bad in [
            "trip_id",
            "/",
            "/a//b",
            "/a~2",
            &format!("/{}", "x".repeat(300)),
        ] {
            let e = err(Limits {
                ordering_key: Some(Some(bad.to_owned())),
                ..Limits::default()
            });
            assert!(e.starts_with("ordering_key:"), "{bad}: {e}");
        }
        let good = Limits {
            max_in_flight: Some(1),
            rate_limit_per_s: Some(None),
            ordering_key: Some(Some("/trip/id~1x".to_owned())),
        };
        assert!(good.check().is_ok());
    }

    #[test]
    fn a_pointer_becomes_a_path_in_either_dialect() {
        let (pg, sqlite) = crate::store::ordering_paths("/trip/a~1b");
        assert_eq!(pg, ["data", "trip", "a/b"]);
        assert_eq!(sqlite, r#"$.data."trip"."a/b""#);
    }
}
