//! The trusted key set: a JWKS document reduced to asymmetric verification keys, each pinned to
//! the algorithms its key type (and its own `alg`, when present) allows.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::error::JwksError;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// One verification key and the algorithms it may verify.
pub(crate) struct TrustedKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, TrustedKey>,
}

impl KeySet {
    /// Parses a JWKS document, keeping only asymmetric signature keys with a `kid`. Keys of
    /// unknown or symmetric type are skipped rather than failing the whole set, so one exotic key
    /// cannot lock every citizen out.
    pub(crate) fn parse(document: &[u8]) -> Result<Self, JwksError> {
        let doc: JwksDocument = serde_json::from_slice(document).map_err(|_| JwksError::Parse)?;
        let mut keys = HashMap::new();
        let mut skipped = 0usize;
        for raw in doc.keys {
            let Ok(jwk) = serde_json::from_value::<RawJwk>(raw) else {
                skipped += 1;
                continue;
            };
            match jwk.into_trusted() {
                Some((kid, key)) if !keys.contains_key(&kid) => {
                    keys.insert(kid, key);
                }
                Some(_) => {
                    tracing::warn!("JWKS holds a duplicate kid; the first key with it is used");
                    skipped += 1;
                }
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::debug!(
                skipped,
                "JWKS keys skipped as unusable for citizen assertions"
            );
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(Self { keys })
    }

    /// The key with this `kid`, if trusted.
    pub(crate) fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// How many keys are trusted.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl RawJwk {
    fn into_trusted(self) -> Option<(String, TrustedKey)> {
        let kid = self.kid.filter(|k| !k.is_empty())?;
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        if let Some(ops) = &self.key_ops {
            if !ops.iter().any(|op| op == "verify") {
                return None;
            }
        }
        let (key, mut algorithms) = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let (x, y) = (self.x?, self.y?);
                let expected = if curve == "P-256" { 32 } else { 48 };
                if decoded_len(&x)? != expected || decoded_len(&y)? != expected {
                    return None;
                }
                let alg = if curve == "P-256" {
                    Algorithm::ES256
                } else {
                    Algorithm::ES384
                };
                (DecodingKey::from_ec_components(&x, &y).ok()?, vec![alg])
            }
            ("OKP", Some("Ed25519")) => {
                let x = self.x?;
                if decoded_len(&x)? != 32 {
                    return None;
                }
                (
                    DecodingKey::from_ed_components(&x).ok()?,
                    vec![Algorithm::EdDSA],
                )
            }
            ("RSA", _) => {
                let (n, e) = (self.n?, self.e?);
                let modulus = URL_SAFE_NO_PAD.decode(n.as_bytes()).ok()?;
                let significant = modulus.iter().skip_while(|b| **b == 0).count();
                if significant < MIN_RSA_MODULUS_BYTES {
                    return None;
                }
                (
                    DecodingKey::from_rsa_components(&n, &e).ok()?,
                    vec![
                        Algorithm::RS256,
                        Algorithm::RS384,
                        Algorithm::RS512,
                        Algorithm::PS256,
                        Algorithm::PS384,
                        Algorithm::PS512,
                    ],
                )
            }
            // "oct" (shared secrets) and anything unknown are never trusted.
            _ => return None,
        };
        if let Some(pinned) = self.alg {
            let pinned: Algorithm = pinned.parse().ok()?;
            algorithms.retain(|a| *a == pinned);
            if algorithms.is_empty() {
                return None;
            }
        }
        Some((kid, TrustedKey { key, algorithms }))
    }
}

fn decoded_len(b64: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(b64.as_bytes()).ok().map(|v| v.len())
}
