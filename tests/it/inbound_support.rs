//! What the inbound webhook tests share: a `hangar serve` with fast `webhooks` and `inbound`
//! pools, the configuration call, a raw push, and each provider's signature computed here,
//! independently of Hangar's code (HMAC-SHA256 of the documented strings).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::{ANY_PORT, TestDb};
use crate::webhooks_support::{Hangar, POOLS};

/// The `inbound` pool, polling fast.
const INBOUND_POOL: &str = r#"
[[pool]]
name = "inbound"
queue = "inbound"
kinds = ["inbound_event"]
poll_interval_ms = 100
lease_ms = 2000
"#;

/// `hangar serve` over `db` with the webhook pools and the inbound pool.
pub async fn start(db: &TestDb) -> Hangar {
    db.pools(&format!("{POOLS}{INBOUND_POOL}"));
    Hangar::start_with(db, db.command(&["serve", "--bind", ANY_PORT])).await
}

/// Sets `provider`'s material in `ws` with `token`; returns the status and the answer.
pub async fn configure(
    hangar: &Hangar,
    token: &str,
    ws: &str,
    provider: &str,
    body: Value,
) -> (u16, Value) {
    hangar
        .call(
            "PUT",
            &format!("/api/v1/workspaces/{ws}/inbound-hooks/{provider}"),
            token,
            Some(body),
        )
        .await
}

/// Pushes `body` to `/hooks/{provider}/{ws}` with `headers`; returns the status and answer.
pub async fn push(
    hangar: &Hangar,
    provider: &str,
    ws: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/hooks/{provider}/{ws}", hangar.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the hook answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// QuickBooks: `intuit-signature` = base64 HMAC-SHA256(body) with the verifier token.
pub fn intuit(token: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![(
        "intuit-signature",
        STANDARD.encode(hmac(token.as_bytes(), body.as_bytes())),
    )]
}

/// Stripe: `Stripe-Signature: t=<t>,v1=<hex HMAC("<t>.<body>")>` with the secret as text.
pub fn stripe(secret: &str, t: i64, body: &str) -> Vec<(&'static str, String)> {
    let signature = hex(&hmac(secret.as_bytes(), format!("{t}.{body}").as_bytes()));
    vec![("stripe-signature", format!("t={t},v1={signature}"))]
}

/// The generic scheme: `X-PlaneConnection-Timestamp` and `-Signature: v1=<hex HMAC(key,
/// "<timestamp>.<body>")>`, the key being the base64-decoded part of the `whsec_` secret.
pub fn plane(
    secret: &str,
    at: chrono::DateTime<chrono::Utc>,
    body: &str,
) -> Vec<(&'static str, String)> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64");
    let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let signature = hex(&hmac(&key, format!("{timestamp}.{body}").as_bytes()));
    vec![
        ("x-planeconnection-timestamp", timestamp),
        ("x-planeconnection-signature", format!("v1={signature}")),
    ]
}

/// Avinode: `Authorization: Basic base64(user:password)`.
pub fn basic(username: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![(
        "authorization",
        format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        ),
    )]
}

/// A generic envelope (the body of the `X-PlaneConnection` scheme).
pub fn envelope(id: &str, event_type: &str, data: Value) -> String {
    serde_json::json!({"id": id, "type": event_type, "timestamp": "2026-11-22T10:00:00Z",
        "data": data})
    .to_string()
}
