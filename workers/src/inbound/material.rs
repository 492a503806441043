//! The verification material of a (workspace, provider): what the provider gave the admin
//! (QuickBooks' verifier token, Stripe's signing secret) or what Hangar generates and shows
//! once (Avinode's Basic credentials, the generic scheme's `whsec_` secret). Stored as JSON
//! sealed with the keyring, the row named in the associated data; never logged (`Debug`
//! redacts it) and never returned after the answer that created it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// How a provider's pushes are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// QuickBooks Online: `intuit-signature`, HMAC with the verifier token.
    Intuit,
    /// Stripe: `Stripe-Signature: t=…,v1=…`.
    Stripe,
    /// Avinode: Basic credentials Hangar generated.
    Basic,
    /// Everyone else: the `X-PlaneConnection-Signature` scheme with a `whsec_` secret.
    #[serde(rename = "planeconnection")]
    PlaneConnection,
}

impl Scheme {
    /// The scheme of provider `id` (a CONTRACT.md provider id; the binary checks it is one).
    pub fn for_provider(id: &str) -> Scheme {
        match id {
            "quickbooks" => Scheme::Intuit,
            "stripe" => Scheme::Stripe,
            "avinode" => Scheme::Basic,
            _ => Scheme::PlaneConnection,
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Intuit => "intuit",
            Scheme::Stripe => "stripe",
            Scheme::Basic => "basic",
            Scheme::PlaneConnection => "planeconnection",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Scheme> {
        [
            Scheme::Intuit,
            Scheme::Stripe,
            Scheme::Basic,
            Scheme::PlaneConnection,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The material one scheme verifies with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Material {
    /// QuickBooks' verifier token.
    Intuit {
        /// The token from the Intuit developer portal.
        verifier_token: String,
    },
    /// Stripe's endpoint signing secret (`whsec_…`, used as text).
    Stripe {
        /// The secret.
        signing_secret: String,
    },
    /// Basic credentials registered with Avinode.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A `whsec_` secret of the generic scheme.
    #[serde(rename = "planeconnection")]
    PlaneConnection {
        /// `whsec_` + base64 of 32 random bytes.
        secret: String,
    },
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Material({}, <redacted>)", self.scheme().as_str())
    }
}

/// Bad configuration input; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MaterialError(pub String);

impl Material {
    /// Its scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            Material::Intuit { .. } => Scheme::Intuit,
            Material::Stripe { .. } => Scheme::Stripe,
            Material::Basic { .. } => Scheme::Basic,
            Material::PlaneConnection { .. } => Scheme::PlaneConnection,
        }
    }

    /// The material for `scheme` from an admin's body: QuickBooks `{"verifier_token"}`,
    /// Stripe `{"signing_secret": "whsec_…"}`; Avinode and the generic scheme take an empty
    /// body (or `{}`) and get generated material.
    pub fn from_request(
        scheme: Scheme,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Material, MaterialError> {
        let allowed: &[&str] = match scheme {
            Scheme::Intuit => &["verifier_token"],
            Scheme::Stripe => &["signing_secret"],
            Scheme::Basic | Scheme::PlaneConnection => &[],
        };
        if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(MaterialError(match scheme {
                Scheme::Basic | Scheme::PlaneConnection => format!(
                    "field {unknown}: not taken (Hangar generates this provider's credentials; send {{}})"
                ),
                _ => format!("unknown field {unknown} (expected {})", allowed.join(", ")),
            }));
        }
        let text = |field: &str| -> Result<String, MaterialError> {
            match body.get(field) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.len() <= 1024 => {
                    Ok(s.trim().to_owned())
                }
                Some(_) => Err(MaterialError(format!(
                    "field {field}: expected a non-empty string of at most 1024 bytes"
                ))),
                None => Err(MaterialError(format!("missing field {field}"))),
            }
        };
        Ok(match scheme {
            Scheme::Intuit => Material::Intuit {
                verifier_token: text("verifier_token")?,
            },
            Scheme::Stripe => {
                let signing_secret = text("signing_secret")?;
                if !signing_secret.starts_with("whsec_") {
                    return Err(MaterialError(
                        "field signing_secret: expected Stripe's endpoint secret, whsec_…"
                            .to_owned(),
                    ));
                }
                Material::Stripe { signing_secret }
            }
            Scheme::Basic => Material::Basic {
                username: format!("hangar_{}", URL_SAFE_NO_PAD.encode(random::<9>())),
                password: URL_SAFE_NO_PAD.encode(random::<32>()),
            },
            Scheme::PlaneConnection => Material::PlaneConnection {
                secret: format!("whsec_{}", STANDARD.encode(random::<32>())),
            },
        })
    }

    /// What the admin sees once, when Hangar generated it: Avinode's credentials or the
    /// generic secret; `None` for material the admin gave (never echoed).
    pub fn shown_once(&self) -> Option<serde_json::Value> {
        match self {
            Material::Basic { username, password } => {
                Some(serde_json::json!({"username": username, "password": password}))
            }
            Material::PlaneConnection { secret } => Some(serde_json::json!({"secret": secret})),
            _ => None,
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The HMAC key of a `whsec_` secret: its base64-decoded part.
pub fn whsec_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

/// The associated data that binds sealed material to its row.
pub fn aad(workspace_id: &str, provider: &str) -> String {
    format!("inbound_hook:{workspace_id}:{provider}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn each_scheme_takes_its_fields_and_names_what_is_wrong() {
        let m = Material::from_request(Scheme::Intuit, &body(json!({"verifier_token": "t"})));
        assert_eq!(
            m.unwrap(),
            Material::Intuit {
                verifier_token: "t".to_owned()
            }
        );
        let e = Material::from_request(Scheme::Intuit, &body(json!({}))).unwrap_err();
        assert!(e.0.contains("verifier_token"), "{e}");
        let e = Material::from_request(Scheme::Stripe, &body(json!({"signing_secret": "sk_x"})))
            .unwrap_err();
        assert!(e.0.contains("whsec_"), "{e}");
        let e = Material::from_request(Scheme::Basic, &body(json!({"password": "x"}))).unwrap_err();
        assert!(e.0.contains("password"), "{e}");
        let e = Material::from_request(Scheme::Stripe, &body(json!({"signing_secret": 5})))
            .unwrap_err();
        assert!(e.0.contains("signing_secret"), "{e}");
    }

    #[test]
    fn generated_material_is_random_shown_once_and_never_debug_printed() {
        let a = Material::from_request(Scheme::PlaneConnection, &body(json!({}))).unwrap();
        let b = Material::from_request(Scheme::PlaneConnection, &body(json!({}))).unwrap();
        assert_ne!(a, b);
        let Material::PlaneConnection { secret } = &a else {
            panic!("generic")
        };
        assert_eq!(whsec_key(secret).unwrap().len(), 32);
        assert_eq!(a.shown_once().unwrap()["secret"], secret.as_str());
        assert!(!format!("{a:?}").contains(secret.as_str()));
        let basic = Material::from_request(Scheme::Basic, &body(json!({}))).unwrap();
        let shown = basic.shown_once().unwrap();
        assert!(shown["username"].as_str().unwrap().starts_with("hangar_"));
        assert!(shown["password"].as_str().unwrap().len() >= 40);
        let intuit = Material::Intuit {
            verifier_token: "t".to_owned(),
        };
        assert_eq!(intuit.shown_once(), None);
    }

    #[test]
    fn schemes_by_provider() {
        assert_eq!(Scheme::for_provider("quickbooks"), Scheme::Intuit);
        assert_eq!(Scheme::for_provider("stripe"), Scheme::Stripe);
        assert_eq!(Scheme::for_provider("avinode"), Scheme::Basic);
        for p in ["asap", "apg", "foreflight", "camp"] {
            assert_eq!(Scheme::for_provider(p), Scheme::PlaneConnection);
        }
        for s in [
            Scheme::Intuit,
            Scheme::Stripe,
            Scheme::Basic,
            Scheme::PlaneConnection,
        ] {
            assert_eq!(Scheme::parse(s.as_str()), Some(s));
        }
    }
}
