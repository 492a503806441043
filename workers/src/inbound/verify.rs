//! The verification of one push, per scheme, against the raw body and before anything else
//! is read from it. Every comparison of a secret-derived value is constant-time
//! (`hmac::Mac::verify_slice`, `subtle`). Pure: the material, the headers, the body and "now"
//! come in, a yes or a reason comes out (the reason is logged, never returned to the caller,
//! who gets a bare 401).
//!
//! - QuickBooks Online: `intuit-signature` = base64 HMAC-SHA256(body) keyed with the verifier
//!   token. No timestamp: a replayed push is caught by deduplication.
//! - Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, HMAC-SHA256 of `"<t>.<body>"` keyed
//!   with the `whsec_…` signing secret as text; `t` within [`TOLERANCE`] of now.
//! - Avinode: `Authorization: Basic` with the credentials Hangar generated.
//! - Generic (`X-PlaneConnection-*`, CONTRACT.md): `X-PlaneConnection-Signature: v1=<hex>[,…]`
//!   = HMAC-SHA256 of `"<X-PlaneConnection-Timestamp>.<body>"` keyed with the base64-decoded
//!   part of the `whsec_` secret; the timestamp (RFC 3339) within [`TOLERANCE`] of now.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::material::Material;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now, either way (Stripe's default, and the
/// generic scheme's).
pub const TOLERANCE: chrono::Duration = chrono::Duration::seconds(300);

/// The headers a verifier reads (lower-case names).
pub const INTUIT_SIGNATURE: &str = "intuit-signature";
/// Stripe's signature header.
pub const STRIPE_SIGNATURE: &str = "stripe-signature";
/// The generic scheme's signature header.
pub const PLANE_SIGNATURE: &str = "x-planeconnection-signature";
/// The generic scheme's timestamp header.
pub const PLANE_TIMESTAMP: &str = "x-planeconnection-timestamp";

/// Why a push was refused (for the log and the metric; the caller sees 401 only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header the scheme needs is absent or not text.
    #[error("missing or unreadable header {0}")]
    MissingHeader(&'static str),
    /// The header is there but not in the scheme's form.
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The signed time is outside the tolerance.
    #[error("timestamp outside the tolerance of 300 s")]
    Stale,
    /// No signature matches, or the credentials are wrong.
    #[error("signature or credentials do not match")]
    Mismatch,
}

/// Looks a header up by its lower-case name.
pub trait Headers {
    /// The value of `name`, when present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Verifies `body` and `headers` with `material` at `now`.
pub fn verify(
    material: &Material,
    headers: &impl Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    match material {
        Material::Intuit { verifier_token } => intuit(verifier_token, headers, body),
        Material::Stripe { signing_secret } => stripe(signing_secret, headers, body, now),
        Material::Basic { username, password } => basic(username, password, headers),
        Material::PlaneConnection { secret } => plane(secret, headers, body, now),
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

fn header<'a>(headers: &'a impl Headers, name: &'static str) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::MissingHeader(name))
}

fn intuit(token: &str, headers: &impl Headers, body: &[u8]) -> Result<(), Refusal> {
    let signature = header(headers, INTUIT_SIGNATURE)?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| Refusal::Malformed(INTUIT_SIGNATURE))?;
    let mut mac = mac(token.as_bytes());
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| Refusal::Mismatch)
}

fn within_tolerance(signed: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Refusal> {
    if (now - signed).abs() > TOLERANCE {
        Err(Refusal::Stale)
    } else {
        Ok(())
    }
}

/// Whether one of `hex_values` is the MAC `mac` finalizes to (each checked in constant time).
fn any_hex_matches<'a>(mac: HmacSha256, hex_values: impl Iterator<Item = &'a str>) -> bool {
    let mut matched = false;
    for value in hex_values {
        if let Some(bytes) = decode_hex(value) {
            matched |= mac.clone().verify_slice(&bytes).is_ok();
        }
    }
    matched
}

fn stripe(
    secret: &str,
    headers: &impl Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let value = header(headers, STRIPE_SIGNATURE)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or(Refusal::Malformed(STRIPE_SIGNATURE))?;
    if signatures.is_empty() {
        return Err(Refusal::Malformed(STRIPE_SIGNATURE));
    }
    let signed = DateTime::from_timestamp(t, 0).ok_or(Refusal::Malformed(STRIPE_SIGNATURE))?;
    let mut mac = mac(secret.as_bytes());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // The signature first: a stale push with a wrong signature is a mismatch.
    if !any_hex_matches(mac, signatures.into_iter()) {
        return Err(Refusal::Mismatch);
    }
    within_tolerance(signed, now)
}

fn basic(username: &str, password: &str, headers: &impl Headers) -> Result<(), Refusal> {
    let value = header(headers, "authorization")?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or(Refusal::Malformed("authorization"))?;
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| Refusal::Malformed("authorization"))?;
    let expected = format!("{username}:{password}");
    // Equal lengths are compared in constant time; a length mismatch says only the length.
    if decoded.ct_eq(expected.as_bytes()).into() {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

fn plane(
    secret: &str,
    headers: &impl Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let timestamp = header(headers, PLANE_TIMESTAMP)?;
    let signature = header(headers, PLANE_SIGNATURE)?;
    let signed = DateTime::parse_from_rfc3339(timestamp)
        .map_err(|_| Refusal::Malformed(PLANE_TIMESTAMP))?
        .with_timezone(&Utc);
    let key = super::material::whsec_key(secret).ok_or(Refusal::Mismatch)?;
    let mut mac = mac(&key);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let values = signature
        .split(',')
        .filter_map(|v| v.trim().strip_prefix("v1="));
    if !any_hex_matches(mac, values) {
        return Err(Refusal::Mismatch);
    }
    within_tolerance(signed, now)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hmac_of(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = mac(key);
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn headers(pairs: &[(&str, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect()
    }

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    #[test]
    fn intuit_accepts_its_signature_and_refuses_another() {
        let material = Material::Intuit {
            verifier_token: "vt-123".to_owned(),
        };
        let good = STANDARD.encode(hmac_of(b"vt-123", &[BODY]));
        let now = Utc::now();
        assert_eq!(
            verify(
                &material,
                &headers(&[("intuit-signature", good)]),
                BODY,
                now
            ),
            Ok(())
        );
        let bad = STANDARD.encode(hmac_of(b"vt-124", &[BODY]));
        assert_eq!(
            verify(&material, &headers(&[("intuit-signature", bad)]), BODY, now),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(&material, &headers(&[]), BODY, now),
            Err(Refusal::MissingHeader(INTUIT_SIGNATURE))
        );
    }

    #[test]
    fn stripe_takes_any_v1_within_the_tolerance() {
        let secret = "whsec_test_secret";
        let material = Material::Stripe {
            signing_secret: secret.to_owned(),
        };
        let now = Utc::now();
        let sign = |t: i64| {
            hex(&hmac_of(
                secret.as_bytes(),
                &[t.to_string().as_bytes(), b".", BODY],
            ))
        };
        let t = now.timestamp() - 10;
        let value = format!("t={t},v1={},v1={},v0=abc", "00".repeat(32), sign(t));
        assert_eq!(
            verify(
                &material,
                &headers(&[("Stripe-Signature", value)]),
                BODY,
                now
            ),
            Ok(())
        );
        let old = now.timestamp() - 301;
        let value = format!("t={old},v1={}", sign(old));
        assert_eq!(
            verify(
                &material,
                &headers(&[("stripe-signature", value)]),
                BODY,
                now
            ),
            Err(Refusal::Stale)
        );
        let value = format!("t={t},v1={}", sign(t + 1));
        assert_eq!(
            verify(
                &material,
                &headers(&[("stripe-signature", value)]),
                BODY,
                now
            ),
            Err(Refusal::Mismatch)
        );
        let value = format!("v1={}", sign(t));
        assert_eq!(
            verify(
                &material,
                &headers(&[("stripe-signature", value)]),
                BODY,
                now
            ),
            Err(Refusal::Malformed(STRIPE_SIGNATURE))
        );
    }

    #[test]
    fn basic_compares_both_parts() {
        let material = Material::Basic {
            username: "avinode_ws".to_owned(),
            password: "s3cret".to_owned(),
        };
        let now = Utc::now();
        let auth = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        let ok = headers(&[("authorization", auth("avinode_ws", "s3cret"))]);
        assert_eq!(verify(&material, &ok, BODY, now), Ok(()));
        for (u, p) in [("avinode_ws", "s3cre"), ("avinode_wx", "s3cret"), ("", "")] {
            let h = headers(&[("authorization", auth(u, p))]);
            assert_eq!(verify(&material, &h, BODY, now), Err(Refusal::Mismatch));
        }
        let bearer = headers(&[("authorization", "Bearer x".to_owned())]);
        assert_eq!(
            verify(&material, &bearer, BODY, now),
            Err(Refusal::Malformed("authorization"))
        );
    }

    #[test]
    fn the_generic_scheme_is_contract_signing_with_a_tolerance() {
        let key = [7u8; 32];
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let material = Material::PlaneConnection {
            secret: secret.clone(),
        };
        let now = Utc::now();
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let sign = |ts: &str| format!("v1={}", hex(&hmac_of(&key, &[ts.as_bytes(), b".", BODY])));
        let ts = at(now);
        let h = headers(&[
            ("x-planeconnection-timestamp", ts.clone()),
            (
                "x-planeconnection-signature",
                format!("v1=00,{}", sign(&ts)),
            ),
        ]);
        assert_eq!(verify(&material, &h, BODY, now), Ok(()));
        let old = at(now - chrono::Duration::seconds(400));
        let h = headers(&[
            ("x-planeconnection-timestamp", old.clone()),
            ("x-planeconnection-signature", sign(&old)),
        ]);
        assert_eq!(verify(&material, &h, BODY, now), Err(Refusal::Stale));
        let h = headers(&[
            ("x-planeconnection-timestamp", ts.clone()),
            ("x-planeconnection-signature", sign(&old)),
        ]);
        assert_eq!(verify(&material, &h, BODY, now), Err(Refusal::Mismatch));
        let h = headers(&[("x-planeconnection-signature", sign(&ts))]);
        assert_eq!(
            verify(&material, &h, BODY, now),
            Err(Refusal::MissingHeader(PLANE_TIMESTAMP))
        );
    }
}
