//! The provider connectors, one module each, registered in
//! [`Connectors::builtin`](crate::sync::connector::Connectors::builtin).

pub mod avinode;
pub mod email;
pub mod foreflight;
pub mod manifest;
pub mod notifications;
pub mod quickbooks;
pub mod salesforce;
pub mod slack;
pub mod stripe;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Now, to the millisecond: the precision the stores keep a pushed record's time at, so a
/// record's time reads back equal to what was pushed.
pub(crate) fn now_millis() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

/// The first 8 bytes of the SHA-256 of `text` in hex: names a budget account after a secret
/// (a token, a webhook URL) or a server without writing it down.
pub(crate) fn short_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
