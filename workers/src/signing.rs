//! Signing of outbound webhook requests (CONTRACT.md, "Outbound webhook deliveries"): the five
//! `X-PlaneConnection-*` headers and the Standard Webhooks headers, HMAC-SHA256 with the
//! base64-decoded part of a `whsec_…` secret. Several secrets sign at once during a rotation.
//! Used by the generic alert webhook and meant for the event webhook deliveries too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An endpoint secret, `whsec_<base64 of 24–64 bytes>`.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A string that is not a `whsec_…` secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a webhook secret: expected whsec_ followed by base64 of 24 to 64 bytes")]
pub struct BadSecret;

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, BadSecret> {
        let encoded = text.strip_prefix("whsec_").ok_or(BadSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(BadSecret);
        }
        Ok(WebhookSecret { key })
    }

    /// A new random secret of 32 bytes.
    pub fn generate() -> WebhookSecret {
        use chacha20poly1305::aead::rand_core::RngCore;
        let mut key = vec![0u8; 32];
        chacha20poly1305::aead::OsRng.fill_bytes(&mut key);
        WebhookSecret { key }
    }

    /// The `whsec_…` text form.
    pub fn expose(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
}

/// What identifies one signed request.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    /// The event type (`X-PlaneConnection-Event`).
    pub event_type: &'a str,
    /// The message id (`webhook-id`): the event id.
    pub message_id: &'a str,
    /// The delivery id (`X-PlaneConnection-Delivery-ID`): the same on every retry.
    pub delivery_id: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// The time of this attempt.
    pub at: DateTime<Utc>,
}

/// The headers of one attempt, signed with every secret of `secrets` (first = current).
pub fn signature_headers(
    secrets: &[WebhookSecret],
    request: &SignedRequest<'_>,
) -> Vec<(&'static str, String)> {
    let timestamp = request.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let unix = request.at.timestamp().to_string();
    let plane: Vec<String> = secrets
        .iter()
        .map(|s| {
            let mac = s.mac(&[timestamp.as_bytes(), b".", request.body]);
            format!("v1={}", hex(&mac))
        })
        .collect();
    let standard: Vec<String> = secrets
        .iter()
        .map(|s| {
            let mac = s.mac(&[
                request.message_id.as_bytes(),
                b".",
                unix.as_bytes(),
                b".",
                request.body,
            ]);
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect();
    vec![
        ("content-type", "application/json".to_owned()),
        ("x-planeconnection-event", request.event_type.to_owned()),
        (
            "x-planeconnection-delivery-id",
            request.delivery_id.to_owned(),
        ),
        ("x-planeconnection-timestamp", timestamp),
        ("x-planeconnection-signature", plane.join(",")),
        ("webhook-id", request.message_id.to_owned()),
        ("webhook-timestamp", unix),
        ("webhook-signature", standard.join(" ")),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_both_schemes_with_every_secret() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::parse(&WebhookSecret::generate().expose()).unwrap();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let request = SignedRequest {
            event_type: "alert.opened",
            message_id: "msg_1",
            delivery_id: "dlv_1",
            body: b"{}",
            at,
        };
        let headers = signature_headers(&[a.clone(), b], &request);
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(get("x-planeconnection-timestamp"), "2023-11-14T22:13:20Z");
        assert_eq!(get("webhook-timestamp"), "1700000000");
        let expected = hex(&a.mac(&[b"2023-11-14T22:13:20Z", b".", b"{}"]));
        assert!(get("x-planeconnection-signature").starts_with(&format!("v1={expected},v1=")));
        assert_eq!(get("webhook-signature").split(' ').count(), 2);
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{a:?}").contains(&a.expose()));
    }
}
