//! Verifies `private_key_jwt` client assertions (RFC 7523) exactly as the contract states:
//! ES256 signed with the provider's registered key, `iss` = `sub` = provider id, `aud` = the
//! token URL, `exp` in the future (30 s skew) and at most 300 s ahead, `jti` never reused while
//! the assertion could still be valid, and sent over the same provider's TLS client certificate.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Allowed clock skew, seconds.
const LEEWAY: u64 = 30;
/// Furthest `exp` may lie in the future, seconds (before skew).
const MAX_LIFETIME: u64 = 300;
/// Longest assertion looked at.
const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// Used `jti`s kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Why an assertion was refused; the message is the answer's `reason`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    /// Not a JWT, or unreadable claims.
    #[error("client_assertion is not a well-formed JWT")]
    Malformed,
    /// Signed with something other than ES256.
    #[error("client_assertion must be signed with ES256")]
    Algorithm,
    /// `iss` is not a registered provider.
    #[error("client_assertion iss is not a registered provider")]
    UnknownIssuer,
    /// Signature does not verify with the provider's key.
    #[error("client_assertion signature does not verify")]
    Signature,
    /// `sub` differs from `iss`.
    #[error("client_assertion sub must equal iss")]
    Subject,
    /// `aud` is not the token URL.
    #[error("client_assertion aud must be the token endpoint URL")]
    Audience,
    /// `exp` has passed.
    #[error("client_assertion has expired")]
    Expired,
    /// `nbf` lies in the future.
    #[error("client_assertion is not yet valid")]
    NotYetValid,
    /// `exp` is more than 300 s ahead.
    #[error("client_assertion exp is more than 300 seconds ahead")]
    TooLong,
    /// A required claim is missing or has the wrong type.
    #[error("client_assertion lacks a valid {0} claim")]
    Claim(&'static str),
    /// The `jti` was used before.
    #[error("client_assertion jti was already used")]
    Replayed,
    /// The TLS client certificate is not this provider's.
    #[error("TLS client certificate does not belong to the assertion's provider")]
    CertificateMismatch,
    /// `client_id` was sent and differs from `iss`.
    #[error("client_id does not match the assertion's iss")]
    ClientId,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<serde_json::Value>,
    jti: Option<serde_json::Value>,
}

/// The verifier with every provider's public key and the `jti` replay cache.
pub struct AssertionVerifier {
    token_url: String,
    keys: HashMap<String, DecodingKey>,
    used: Mutex<HashMap<(String, String), u64>>,
}

impl AssertionVerifier {
    /// A verifier for assertions addressed to `token_url`, with `(provider, SPKI PEM)` keys.
    pub fn new(token_url: String, keys: &[(String, Vec<u8>)]) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for (provider, pem) in keys {
            let key = DecodingKey::from_ec_pem(pem)
                .map_err(|e| anyhow::anyhow!("assertion key of {provider}: {e}"))?;
            map.insert(provider.clone(), key);
        }
        Ok(Self {
            token_url,
            keys: map,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies an assertion arriving on a connection whose client certificate belongs to
    /// `cert_provider`; answers the provider id.
    pub fn verify(
        &self,
        assertion: &str,
        cert_provider: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<String, AssertionError> {
        if assertion.len() > MAX_ASSERTION_LEN {
            return Err(AssertionError::Malformed);
        }
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
        if header.alg != Algorithm::ES256 {
            return Err(AssertionError::Algorithm);
        }
        // The issuer names the key to verify with; nothing else is trusted before that.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<Unverified>(assertion)
            .map_err(|_| AssertionError::Malformed)?;
        let iss = match unverified.claims.iss {
            Some(serde_json::Value::String(s)) => s,
            _ => return Err(AssertionError::Claim("iss")),
        };
        let key = self.keys.get(&iss).ok_or(AssertionError::UnknownIssuer)?;

        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[&iss]);
        validation.set_audience(&[&self.token_url]);
        validation.sub = Some(iss.clone());
        let data =
            jsonwebtoken::decode::<Claims>(assertion, key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => {
                        AssertionError::Signature
                    }
                    ErrorKind::ExpiredSignature => AssertionError::Expired,
                    ErrorKind::ImmatureSignature => AssertionError::NotYetValid,
                    ErrorKind::InvalidAudience => AssertionError::Audience,
                    ErrorKind::InvalidSubject => AssertionError::Subject,
                    ErrorKind::InvalidIssuer => AssertionError::UnknownIssuer,
                    ErrorKind::InvalidAlgorithm => AssertionError::Algorithm,
                    ErrorKind::MissingRequiredClaim(c) => AssertionError::Claim(claim_name(c)),
                    ErrorKind::InvalidClaimFormat(c) => AssertionError::Claim(claim_name(c)),
                    _ => AssertionError::Malformed,
                }
            })?;

        let now = jsonwebtoken::get_current_timestamp();
        let exp = data
            .claims
            .exp
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .ok_or(AssertionError::Claim("exp"))?;
        if exp > now + MAX_LIFETIME + LEEWAY {
            return Err(AssertionError::TooLong);
        }
        let jti = match data.claims.jti {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= MAX_JTI_LEN => s,
            _ => return Err(AssertionError::Claim("jti")),
        };
        if client_id.is_some_and(|c| c != iss) {
            return Err(AssertionError::ClientId);
        }
        if cert_provider != Some(iss.as_str()) {
            return Err(AssertionError::CertificateMismatch);
        }
        self.remember(&iss, jti, exp + LEEWAY, now)?;
        Ok(iss)
    }

    fn remember(
        &self,
        iss: &str,
        jti: String,
        keep_until: u64,
        now: u64,
    ) -> Result<(), AssertionError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= SWEEP_AT {
            used.retain(|_, until| *until >= now);
        }
        let key = (iss.to_owned(), jti);
        match used.get(&key) {
            Some(until) if *until >= now => Err(AssertionError::Replayed),
            _ => {
                used.insert(key, keep_until);
                Ok(())
            }
        }
    }
}

fn claim_name(c: &str) -> &'static str {
    match c {
        "exp" => "exp",
        "iss" => "iss",
        "sub" => "sub",
        "aud" => "aud",
        "nbf" => "nbf",
        _ => "required",
    }
}
