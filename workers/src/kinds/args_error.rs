//! Why a kind's handler refused a job's arguments ([`super::Handler::validate`]): refused at
//! enqueue (API 422, Redis dead letter, CLI exit 2) and, should a stored job still hold such
//! arguments, a `client` failure of its attempt. Every message names the kind and the field.

/// Arguments a kind's handler refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// The arguments do not have the kind's shape (a missing, unknown or mistyped field); the
    /// message is the JSON decoder's, which names the field.
    #[error("{kind} args: {message}")]
    Shape {
        /// The job kind.
        kind: String,
        /// What the decoder said.
        message: String,
    },
    /// The `http` kind's own checks.
    #[error("http args: {0}")]
    Http(#[from] HttpArgsError),
}

impl ArgsError {
    /// The decoder's refusal of `kind`'s arguments.
    pub fn shape(kind: &str, error: &serde_json::Error) -> ArgsError {
        ArgsError::Shape {
            kind: kind.to_owned(),
            message: error.to_string(),
        }
    }
}

/// What the `http` kind checks beyond the shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpArgsError {
    /// `url` is not a URL.
    #[error("url '{url}': {reason}")]
    Url {
        /// As given.
        url: String,
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// `url` is not http(s).
    #[error("url '{0}': scheme must be http or https")]
    Scheme(String),
    /// `method` is not an HTTP method.
    #[error("method '{0}' is not an HTTP method")]
    Method(String),
    /// A header name is not a valid one.
    #[error("headers: '{0}' is not a header name")]
    HeaderName(String),
    /// A header value is not a valid one (named by its header, never shown).
    #[error("headers: value of '{0}' is not valid")]
    HeaderValue(String),
    /// `timeout_ms` out of range.
    #[error("timeout_ms must be between 1 and 3600000")]
    Timeout,
    /// Header values are sealed with the master key, which this process lacks.
    #[error(
        "headers: their values are stored sealed with the master key, and this process has none"
    )]
    NoMasterKey,
}
