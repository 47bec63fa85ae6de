//! Verifying one citizen assertion: scheme, shape, algorithm, key, signature, then claims.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ikkuna_hetu::IdentityCode;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use std::sync::Arc;

use super::derived::Derived;
use super::error::{AssertionError, JwksError, VerifierBuildError};
use super::jwks::JwksStore;
use super::seen::VerifiedSignatures;
use super::settings::{is_asymmetric, VerifierSettings};

/// Longest `Authorization` value looked at; real assertions are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A citizen proven by a verified assertion: who, how strongly, and until when.
#[derive(Debug, Clone)]
pub struct Citizen {
    /// The citizen's own identity code (`sub`); redacted in `Debug`.
    pub identity: IdentityCode,
    /// The assurance level (`acr`) the citizen authenticated at.
    pub acr: String,
    /// When the assertion expires (`exp`).
    pub expires_at: DateTime<Utc>,
    /// Pseudonyms derived from `identity`, shared by every call with the same assertion.
    pub derived: Arc<Derived>,
}

/// Two citizens are equal when the assertions prove the same facts (the memo is not a fact).
impl PartialEq for Citizen {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
            && self.acr == other.acr
            && self.expires_at == other.expires_at
    }
}

impl Eq for Citizen {}

/// Verifies the citizen assertions the operator's backend sends with each call.
///
/// Built once at start from [`VerifierSettings`]; cheap to share behind an `Arc`. The key set is
/// kept fresh in the background of calls (see [`AssertionVerifier::verify`]).
pub struct AssertionVerifier {
    settings: VerifierSettings,
    keys: JwksStore,
    seen: VerifiedSignatures,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

impl AssertionVerifier {
    /// Validates the settings and loads the key set; fails if either is unusable, so a broken
    /// configuration stops the gateway at start rather than refusing every citizen later.
    pub async fn new(settings: VerifierSettings) -> Result<Self, VerifierBuildError> {
        settings.validate()?;
        let keys = JwksStore::load(&settings).await?;
        let seen = VerifiedSignatures::new(settings.max_lifetime + settings.leeway);
        Ok(Self {
            settings,
            keys,
            seen,
        })
    }

    /// Verifies the raw `Authorization` header value (`Bearer <JWT>`) and returns the citizen it
    /// proves. Refreshes the key set first when its periodic refresh is due, and at most once per
    /// cooldown window when the token names an unknown `kid`.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Citizen, AssertionError> {
        self.verify_at(authorization, unix_now()).await
    }

    /// Re-reads the key set now (for an operator-triggered rotation); keeps the old set on failure.
    pub async fn refresh_keys(&self) -> Result<(), JwksError> {
        self.keys.refresh_now().await
    }

    /// How many times the key set has been re-read since start (for metrics and tests).
    pub fn key_reloads(&self) -> u64 {
        self.keys.reloads()
    }

    /// Whether a token's signature is remembered as verified (tests only).
    #[cfg(test)]
    pub(crate) fn remembers(&self, token: &str) -> bool {
        let digest = VerifiedSignatures::digest(token);
        self.seen.remembers_any(&digest)
    }

    pub(crate) async fn verify_at(
        &self,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<Citizen, AssertionError> {
        let token = bearer_token(authorization)?;
        let (signing_input, signature) = token.rsplit_once('.').ok_or(AssertionError::Malformed)?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or(AssertionError::Malformed)?;
        if header_b64.is_empty() || payload_b64.is_empty() {
            return Err(AssertionError::Malformed);
        }
        let header: JoseHeader = decode_json(header_b64)?;
        // The algorithm is judged before anything else, so an unsigned (`none`) token is named
        // for what it is rather than as merely malformed.
        let alg = self.allowed_algorithm(&header.alg)?;
        if signature.is_empty() {
            return Err(AssertionError::Malformed);
        }
        if header.crit.is_some() {
            return Err(AssertionError::UnsupportedCritical);
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(AssertionError::UnknownKey)?;
        let keys = self
            .keys
            .key_set_for(&kid)
            .await
            .ok_or(AssertionError::UnknownKey)?;
        let key = keys.get(&kid).ok_or(AssertionError::UnknownKey)?;
        if !key.algorithms.contains(&alg) {
            return Err(AssertionError::KeyMismatch);
        }
        let digest = VerifiedSignatures::digest(token);
        let remembered = self.seen.get(&digest, &keys);
        if remembered.is_none() {
            let valid =
                jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.key, alg)
                    .map_err(|_| AssertionError::BadSignature)?;
            if !valid {
                return Err(AssertionError::BadSignature);
            }
        }
        let claims: Map<String, Value> = decode_json(payload_b64)?;
        let derived = remembered.clone().unwrap_or_default();
        let citizen = self.check_claims(&claims, now, derived)?;
        if remembered.is_none() {
            // Only assertions that passed every check are remembered: a flood of tokens that
            // verify but are refused (expired, wrong audience) cannot fill the cache.
            self.seen
                .insert(digest, &keys, Arc::clone(&citizen.derived));
        }
        Ok(citizen)
    }

    /// The header's algorithm, if it is asymmetric and allowed. `none` and HMAC are refused here
    /// whatever the configuration says.
    fn allowed_algorithm(&self, name: &str) -> Result<Algorithm, AssertionError> {
        let alg: Algorithm = name
            .parse()
            .map_err(|_| AssertionError::AlgorithmNotAllowed)?;
        if !is_asymmetric(alg) || !self.settings.algorithms.contains(&alg) {
            return Err(AssertionError::AlgorithmNotAllowed);
        }
        Ok(alg)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
        derived: Arc<Derived>,
    ) -> Result<Citizen, AssertionError> {
        let s = &self.settings;
        let iss = string_claim(claims, "iss")?;
        if iss != s.issuer {
            return Err(AssertionError::WrongIssuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == s.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&s.audience)),
            Some(_) => return Err(AssertionError::MissingClaim("aud")),
            None => return Err(AssertionError::MissingClaim("aud")),
        };
        if !audience_ok {
            return Err(AssertionError::WrongAudience);
        }

        let leeway = secs(s.leeway.as_secs());
        let exp = time_claim(claims, "exp")?.ok_or(AssertionError::MissingClaim("exp"))?;
        let nbf = time_claim(claims, "nbf")?;
        let iat = time_claim(claims, "iat")?;
        if now > exp.saturating_add(leeway) {
            return Err(AssertionError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(AssertionError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AssertionError::IssuedInFuture);
        }
        let start = match (iat, nbf) {
            (Some(iat), Some(nbf)) => iat.min(nbf),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return Err(AssertionError::MissingClaim("iat")),
        };
        let max_lifetime = secs(s.max_lifetime.as_secs());
        if exp.saturating_sub(start) > max_lifetime
            || exp.saturating_sub(now) > max_lifetime.saturating_add(leeway)
        {
            return Err(AssertionError::LifetimeTooLong);
        }

        // Own mail only: decided by what the claims say, at any depth (see `representation`).
        super::representation::check(claims, s.allowed_claims.as_deref())?;
        let acr = match claims.get("acr") {
            Some(Value::String(acr)) if s.accepted_acr.iter().any(|a| a == acr) => acr.clone(),
            _ => return Err(AssertionError::AcrNotAccepted),
        };
        let sub = string_claim(claims, "sub")?;
        let identity = IdentityCode::parse(sub).map_err(|_| AssertionError::InvalidSubject)?;
        let expires_at =
            DateTime::<Utc>::from_timestamp(exp, 0).ok_or(AssertionError::MissingClaim("exp"))?;
        Ok(Citizen {
            identity,
            acr,
            expires_at,
            derived,
        })
    }
}

/// The token from `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: Option<&str>) -> Result<&str, AssertionError> {
    let value = authorization.ok_or(AssertionError::Missing)?.trim();
    if value.is_empty() {
        return Err(AssertionError::Missing);
    }
    let (scheme, token) = value.split_once(' ').ok_or(AssertionError::Scheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AssertionError::Scheme);
    }
    let token = token.trim_start();
    if token.is_empty()
        || token.len() > MAX_TOKEN_BYTES
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || token.bytes().filter(|b| *b == b'.').count() != 2
    {
        return Err(AssertionError::Malformed);
    }
    Ok(token)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AssertionError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.as_bytes())
        .map_err(|_| AssertionError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, AssertionError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(AssertionError::MissingClaim(name))
}

/// A NumericDate claim in whole seconds; `Ok(None)` when absent, an error when not a number.
fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(AssertionError::MissingClaim(name)),
        Some(_) => Err(AssertionError::MissingClaim(name)),
    }
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| secs(d.as_secs()))
        .unwrap_or(0)
}
