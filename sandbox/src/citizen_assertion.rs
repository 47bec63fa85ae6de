//! Citizen assertions as the sandbox operator's identity service would issue them: ES256 JWTs
//! signed with `operator/signing.key`, for demos (`ikkuna-sandbox token`) and tests.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::fsutil;
use crate::info::{GATEWAY_AUDIENCE, OPERATOR_ISSUER};

/// Strong identification, level high (`loa3`): the default `acr`.
pub const DEFAULT_ACR: &str = "http://ftn.ficora.fi/2017/loa3";

/// Signs a citizen assertion for `citizen_id` with the operator key of `data_dir`:
/// `sub` = the identity code, `acr`, `aud` = `ikkuna`, `iss` = the sandbox operator, `iat`,
/// `nbf`, `exp` = now + `ttl`, a random `jti`, and the key's `kid` in the header.
///
/// The identity code is not checked, so tests can mint assertions the gateway must refuse.
pub fn mint_citizen_assertion(
    data_dir: &Path,
    citizen_id: &str,
    acr: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": citizen_id,
        "acr": acr,
        "aud": GATEWAY_AUDIENCE,
        "iss": OPERATOR_ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    sign_operator_jwt(data_dir, &claims)
}

/// Signs arbitrary claims with the operator key of `data_dir` (ES256, with `kid`): for tests
/// that need assertions a well-behaved identity service would never issue.
pub fn sign_operator_jwt(data_dir: &Path, claims: &serde_json::Value) -> anyhow::Result<String> {
    crate::tls::install_crypto_provider();
    let key_path = data_dir.join("operator").join("signing.key");
    let pem = fsutil::read_string(&key_path)?;
    let key = EncodingKey::from_ec_pem(pem.as_bytes())
        .with_context(|| format!("parsing {}", key_path.display()))?;
    let jwks_path = data_dir.join("operator").join("jwks.json");
    let jwks: serde_json::Value = serde_json::from_str(&fsutil::read_string(&jwks_path)?)
        .with_context(|| format!("parsing {}", jwks_path.display()))?;
    let kid = jwks["keys"][0]["kid"]
        .as_str()
        .with_context(|| format!("{} has no kid", jwks_path.display()))?;
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".to_owned());
    header.kid = Some(kid.to_owned());
    Ok(jsonwebtoken::encode(&header, claims, &key)?)
}
