//! Owns the classification of a failed attempt into an [`ErrorClass`], its
//! stable string form, and the default mapping from HTTP status codes.

use std::fmt;
use std::str::FromStr;

/// Why an attempt failed; decides which retry rule applies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A request or connect timeout, or a connection reset or refused.
    Timeout,
    /// HTTP 401: the credentials were rejected (a token refresh may fix it).
    Auth,
    /// HTTP 429, or a provider's own rate-limit signal.
    RateLimit,
    /// HTTP 5xx: the remote side failed.
    Server,
    /// Any other HTTP 4xx: a data problem that is never retried.
    Client,
    /// The job handler itself failed (bad args, panic, lost worker).
    Internal,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Timeout,
        ErrorClass::Auth,
        ErrorClass::RateLimit,
        ErrorClass::Server,
        ErrorClass::Client,
        ErrorClass::Internal,
    ];

    /// Stable snake_case name, identical to the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::Server => "server",
            ErrorClass::Client => "client",
            ErrorClass::Internal => "internal",
        }
    }

    /// Default class for an HTTP status; `None` means success (2xx).
    pub fn from_http_status(status: u16) -> Option<ErrorClass> {
        match status {
            200..=299 => None,
            401 => Some(ErrorClass::Auth),
            429 => Some(ErrorClass::RateLimit),
            500..=599 => Some(ErrorClass::Server),
            400..=499 => Some(ErrorClass::Client),
            // Redirects are never followed, so landing on one means the
            // request itself points at the wrong place: retrying cannot help.
            300..=399 => Some(ErrorClass::Client),
            // 1xx or a non-standard code is a protocol oddity on the remote
            // side; treat it like a server fault so it gets a bounded retry.
            _ => Some(ErrorClass::Server),
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string names no [`ErrorClass`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown error class {0:?}: expected one of timeout, auth, rate_limit, server, client, internal"
)]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorClass(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_display_and_from_str_round_trip() {
        for class in ErrorClass::ALL {
            assert_eq!(class.to_string(), class.as_str());
            assert_eq!(class.as_str().parse::<ErrorClass>(), Ok(class));
        }
    }

    #[test]
    fn all_names_are_distinct() {
        let mut names: Vec<_> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn expected_names() {
        assert_eq!(ErrorClass::Timeout.as_str(), "timeout");
        assert_eq!(ErrorClass::Auth.as_str(), "auth");
        assert_eq!(ErrorClass::RateLimit.as_str(), "rate_limit");
        assert_eq!(ErrorClass::Server.as_str(), "server");
        assert_eq!(ErrorClass::Client.as_str(), "client");
        assert_eq!(ErrorClass::Internal.as_str(), "internal");
    }

    #[test]
    fn unknown_name_is_rejected_with_valid_names_listed() {
        for bad in ["", "Timeout", "rate-limit", "RATE_LIMIT", " auth", "fatal"] {
            let err = bad.parse::<ErrorClass>().unwrap_err();
            assert_eq!(err, UnknownErrorClass(bad.to_owned()));
            let msg = err.to_string();
            for class in ErrorClass::ALL {
                assert!(msg.contains(class.as_str()), "{msg} lacks {class}");
            }
        }
    }

    #[test]
    fn serde_uses_snake_case_names() {
        use serde::Deserialize;
        use serde::de::value::{Error, StrDeserializer};

        // serde_json is not a dependency; serde's own str deserializer is
        // enough to prove the rename_all names.
        for class in ErrorClass::ALL {
            let de = StrDeserializer::<Error>::new(class.as_str());
            assert_eq!(ErrorClass::deserialize(de).unwrap(), class);
        }
        let de = StrDeserializer::<Error>::new("RateLimit");
        assert!(ErrorClass::deserialize(de).is_err());
    }

    #[test]
    fn http_status_mapping() {
        for s in [200, 201, 204, 226, 299] {
            assert_eq!(ErrorClass::from_http_status(s), None, "{s}");
        }
        assert_eq!(ErrorClass::from_http_status(401), Some(ErrorClass::Auth));
        assert_eq!(
            ErrorClass::from_http_status(429),
            Some(ErrorClass::RateLimit)
        );
        for s in [500, 502, 503, 504, 599] {
            assert_eq!(
                ErrorClass::from_http_status(s),
                Some(ErrorClass::Server),
                "{s}"
            );
        }
        for s in [400, 402, 403, 404, 409, 422, 428, 430, 499] {
            assert_eq!(
                ErrorClass::from_http_status(s),
                Some(ErrorClass::Client),
                "{s}"
            );
        }
        for s in [300, 301, 302, 304, 307, 308, 399] {
            assert_eq!(
                ErrorClass::from_http_status(s),
                Some(ErrorClass::Client),
                "{s}"
            );
        }
        for s in [0, 1, 99, 100, 101, 103, 199, 600, 999, u16::MAX] {
            assert_eq!(
                ErrorClass::from_http_status(s),
                Some(ErrorClass::Server),
                "{s}"
            );
        }
    }

    #[test]
    fn every_status_maps_without_panicking() {
        for s in 0..=u16::MAX {
            let _ = ErrorClass::from_http_status(s);
        }
    }
}
