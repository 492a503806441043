//! Property tests of the webhook signatures: outbound signing (`workers/src/signing.rs`)
//! round-trips through both verifiers a receiver uses (our inbound generic verifier and the
//! Standard Webhooks reference crate) for any secrets, body and ids, and any change of the
//! body or the secret is a mismatch; the inbound verifiers (`workers/src/inbound/verify.rs`)
//! take any headers and body without a panic, refuse everything not signed with a reason that
//! names the header, and accept what is signed by each scheme's rules. Cases:
//! `PROPTEST_CASES` (default 256; `scripts/proptest` runs 10⁶).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hangar_workers::inbound::Material;
use hangar_workers::inbound::verify::{
    INTUIT_SIGNATURE, PLANE_SIGNATURE, PLANE_TIMESTAMP, Refusal, STRIPE_SIGNATURE, verify,
};
use hangar_workers::signing::{SignedRequest, WebhookSecret, signature_headers};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

fn secret() -> impl Strategy<Value = WebhookSecret> {
    prop::collection::vec(any::<u8>(), 24..=64)
        .prop_map(|key| WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode(key))).unwrap())
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tampered(body: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut changed = body.to_vec();
    if changed.is_empty() {
        changed.push(b' ');
    } else {
        let i = at % changed.len();
        changed[i] ^= 1 << (bit % 8);
    }
    changed
}

fn material() -> impl Strategy<Value = Material> {
    prop_oneof![
        "\\PC{0,40}".prop_map(|verifier_token| Material::Intuit { verifier_token }),
        "(whsec_)?[A-Za-z0-9+/=]{0,40}"
            .prop_map(|signing_secret| Material::Stripe { signing_secret }),
        ("\\PC{0,20}", "\\PC{0,20}")
            .prop_map(|(username, password)| Material::Basic { username, password }),
        "(whsec_)?[A-Za-z0-9+/=]{0,60}".prop_map(|secret| Material::PlaneConnection { secret }),
    ]
}

/// Header values near each scheme's form, and junk.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[A-Za-z0-9+/=]{0,60}",
        "(t=-?[0-9]{0,12},?)?(v[01]=[0-9a-f]{0,70},?){0,3}",
        "(v1=[0-9a-fA-F]{0,66},?){0,3}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        "(Basic|basic|Bearer) [A-Za-z0-9+/=]{0,40}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just(INTUIT_SIGNATURE.to_owned()),
        Just(STRIPE_SIGNATURE.to_owned()),
        Just(PLANE_SIGNATURE.to_owned()),
        Just(PLANE_TIMESTAMP.to_owned()),
        Just("authorization".to_owned()),
        Just("Stripe-Signature".to_owned()),
        "[a-z-]{1,20}",
    ];
    prop::collection::vec((name, header_value()), 0..5)
}

fn assert_refusal_is_clear(refusal: &Refusal) {
    let text = refusal.to_string();
    assert!(!text.trim().is_empty());
    if let Refusal::MissingHeader(name) | Refusal::Malformed(name) = refusal {
        assert!(text.contains(name), "{text}");
    }
}

proptest! {
    #[test]
    fn prop_signing_round_trips_through_both_verifiers(
        secrets in prop::collection::vec(secret(), 1..4),
        body in prop_oneof![
            3 => "\\PC{0,1000}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..2_000),
        ],
        message_id in "[A-Za-z0-9_-]{1,40}",
        delivery_id in "[A-Za-z0-9_-]{1,40}",
        event_type in "[a-z]{1,10}\\.[a-z_]{1,12}",
        skew in -300i64..=300,
        flip in (any::<usize>(), any::<u8>()),
        stranger in secret(),
    ) {
        // The Standard Webhooks crate checks the timestamp against its own clock: sign now.
        let at = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let request = SignedRequest { event_type: &event_type, message_id: &message_id,
            delivery_id: &delivery_id, body: &body, at };
        let headers: Vec<(String, String)> = signature_headers(&secrets, &request)
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            map.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let changed = tampered(&body, flip.0, flip.1);
        for secret in &secrets {
            let text = secret.expose();
            prop_assert_eq!(WebhookSecret::parse(&text).unwrap().expose(), text.clone());
            let material = Material::PlaneConnection { secret: text.clone() };
            prop_assert_eq!(verify(&material, &headers, &body, at + Duration::seconds(skew)), Ok(()));
            prop_assert_eq!(verify(&material, &headers, &changed, at), Err(Refusal::Mismatch));
            let late = at + Duration::seconds(301 + skew.abs());
            prop_assert_eq!(verify(&material, &headers, &body, late), Err(Refusal::Stale));
            let standard = standardwebhooks::Webhook::new(&text).unwrap();
            // The reference crate verifies text bodies only (ours are JSON).
            if std::str::from_utf8(&body).is_ok() {
                prop_assert!(standard.verify(&body, &map).is_ok(), "Standard Webhooks refused");
            }
            prop_assert!(standard.verify(&changed, &map).is_err());
        }
        let other = Material::PlaneConnection { secret: stranger.expose() };
        prop_assert_eq!(verify(&other, &headers, &body, at), Err(Refusal::Mismatch));
    }

    #[test]
    fn prop_webhook_secret_parse_refuses_clearly(text in prop_oneof!["\\PC*", "whsec_[A-Za-z0-9+/=]{0,100}"]) {
        match WebhookSecret::parse(&text) {
            Ok(secret) => {
                prop_assert!(text.starts_with("whsec_"));
                let key = STANDARD.decode(&text["whsec_".len()..]).unwrap();
                prop_assert!((24..=64).contains(&key.len()));
                prop_assert_eq!(secret.expose(), text);
                prop_assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
            }
            Err(error) => prop_assert!(error.to_string().contains("whsec_")),
        }
    }

    #[test]
    fn prop_inbound_verifiers_refuse_unsigned_input(
        material in material(),
        headers in headers(),
        body in prop::collection::vec(any::<u8>(), 0..300),
        now in time(),
    ) {
        match verify(&material, &headers, &body, now) {
            Ok(()) => prop_assert!(false, "accepted an unsigned push: {headers:?}"),
            Err(refusal) => assert_refusal_is_clear(&refusal),
        }
    }

    #[test]
    fn prop_inbound_verifiers_accept_what_each_scheme_signs(
        token in "\\PC{1,40}",
        user in "[^:\\x00-\\x1f]{1,20}",
        password in "\\PC{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..1_000),
        now in time(),
        skew in -300i64..=300,
        junk in "(v0=[0-9a-f]{64}|v1=[0-9a-f]{0,64}|x=[a-z]{0,5})",
        flip in (any::<usize>(), any::<u8>()),
    ) {
        let changed = tampered(&body, flip.0, flip.1);
        // QuickBooks: base64 HMAC of the body keyed with the verifier token.
        let intuit = Material::Intuit { verifier_token: token.clone() };
        let signed = vec![(INTUIT_SIGNATURE.to_owned(), STANDARD.encode(hmac(token.as_bytes(), &[&body])))];
        prop_assert_eq!(verify(&intuit, &signed, &body, now), Ok(()));
        prop_assert_eq!(verify(&intuit, &signed, &changed, now), Err(Refusal::Mismatch));
        // Stripe: t=<unix>,v1=<hex HMAC of "t.body"> keyed with the secret text, among others.
        let stripe_secret = format!("whsec_{}", STANDARD.encode(token.as_bytes()));
        let stripe = Material::Stripe { signing_secret: stripe_secret.clone() };
        let t = (now + Duration::seconds(skew)).timestamp();
        let v1 = hex(&hmac(stripe_secret.as_bytes(), &[t.to_string().as_bytes(), b".", &body]));
        let value = format!("t={t},{junk},v1={v1}");
        let signed = vec![(STRIPE_SIGNATURE.to_owned(), value)];
        prop_assert_eq!(verify(&stripe, &signed, &body, now), Ok(()));
        prop_assert_eq!(verify(&stripe, &signed, &changed, now), Err(Refusal::Mismatch));
        prop_assert_eq!(verify(&stripe, &signed, &body, now + Duration::seconds(301 + skew.abs())), Err(Refusal::Stale));
        // Avinode: Basic credentials.
        let basic = Material::Basic { username: user.clone(), password: password.clone() };
        let auth = vec![("authorization".to_owned(), format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))];
        prop_assert_eq!(verify(&basic, &auth, &body, now), Ok(()));
        let wrong = vec![("authorization".to_owned(), format!("Basic {}", STANDARD.encode(format!("{user}:{password}x"))))];
        prop_assert_eq!(verify(&basic, &wrong, &body, now), Err(Refusal::Mismatch));
    }
}
