//! `private_key_jwt` client assertions (RFC 7523) that the token request carries: ES256, `iss` =
//! `sub` = provider id, `aud` = the exact token URL, a random `jti`, `exp` one minute ahead.
//! ES256 (not RS256) on purpose: RSA signing in pure Rust has a timing side channel
//! (RUSTSEC-2023-0071), and jsonwebtoken runs on aws-lc-rs here.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::error::{DvvError, DvvSetupError};
use crate::config::DvvConfig;

/// How far ahead a client assertion expires (the contract allows at most 300 s).
pub(crate) const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The claims of one client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClientAssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs client assertions with the operator's assertion key.
pub(crate) struct AssertionSigner {
    key: EncodingKey,
    header: Header,
    provider_id: String,
    audience: String,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("key", &format_args!("<redacted>"))
            .field("kid", &self.header.kid)
            .field("provider_id", &self.provider_id)
            .field("audience", &self.audience)
            .finish()
    }
}

impl AssertionSigner {
    /// Loads the ES256 key of `[dvv]` and proves it can sign. `token_url` is the `aud`.
    pub(crate) fn new(cfg: &DvvConfig, token_url: &str) -> Result<Self, DvvSetupError> {
        const FIELD: &str = "dvv.assertion_key_file";
        let pem = cfg
            .assertion_key
            .read()
            .map_err(|error| DvvSetupError::Read {
                field: FIELD,
                path: cfg.assertion_key.path().to_path_buf(),
                reason: error.to_string(),
            })?;
        let key = EncodingKey::from_ec_pem(pem.expose()).map_err(|_| DvvSetupError::Material {
            field: FIELD,
            reason: "must be an EC P-256 private key in PKCS#8 PEM".to_owned(),
        })?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = cfg.assertion_kid.clone();
        let signer = Self {
            key,
            header,
            provider_id: cfg.provider_id.clone(),
            audience: token_url.to_owned(),
        };
        signer.mint().map_err(|_| DvvSetupError::Material {
            field: FIELD,
            reason: "cannot sign ES256: must be an EC P-256 private key in PKCS#8 PEM".to_owned(),
        })?;
        Ok(signer)
    }

    /// A fresh assertion for one token request.
    pub(crate) fn mint(&self) -> Result<String, DvvError> {
        let now = chrono::Utc::now().timestamp();
        let claims = self.claims(now, uuid::Uuid::new_v4().to_string());
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|_| DvvError::Token {
            status: None,
            reason: "cannot sign the client assertion".to_owned(),
            trace_id: None,
        })
    }

    /// The claims for an assertion minted at `now` (Unix seconds) with id `jti`.
    fn claims(&self, now: i64, jti: String) -> ClientAssertionClaims {
        let lifetime = i64::try_from(ASSERTION_LIFETIME.as_secs()).unwrap_or(60);
        ClientAssertionClaims {
            iss: self.provider_id.clone(),
            sub: self.provider_id.clone(),
            aud: self.audience.clone(),
            jti,
            iat: now,
            exp: now + lifetime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{no_env, Config};
    use crate::dvv::testing::Pki;
    use jsonwebtoken::{DecodingKey, Validation};

    fn config(pki: &Pki, kid: Option<&str>) -> DvvConfig {
        let mut text = pki.config_toml("https://127.0.0.1:1");
        if let Some(kid) = kid {
            text = text.replace(
                "provider_id = \"provider-a\"",
                &format!("provider_id = \"provider-a\"\nassertion_kid = \"{kid}\""),
            );
        }
        Config::from_toml_str(&text, &no_env).unwrap().dvv
    }

    #[test]
    fn claims_verify_with_the_public_key() {
        let pki = Pki::generate();
        let url = "https://127.0.0.1:1/v1/token";
        let signer = AssertionSigner::new(&config(&pki, Some("k-1")), url).unwrap();
        let jwt = signer.mint().unwrap();

        let key = DecodingKey::from_ec_pem(pki.assertion_public_pem.as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[url]);
        validation.set_issuer(&["provider-a"]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<ClientAssertionClaims>(&jwt, &key, &validation).unwrap();
        let claims = data.claims;
        assert_eq!(data.header.alg, Algorithm::ES256);
        assert_eq!(data.header.kid.as_deref(), Some("k-1"));
        assert_eq!(claims.iss, "provider-a");
        assert_eq!(claims.sub, "provider-a");
        assert_eq!(claims.aud, url);
        assert_eq!(claims.exp - claims.iat, 60);
        let now = chrono::Utc::now().timestamp();
        assert!((claims.iat - now).abs() <= 2);
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());

        let second = jsonwebtoken::decode::<ClientAssertionClaims>(
            &signer.mint().unwrap(),
            &key,
            &validation,
        )
        .unwrap();
        assert_ne!(second.claims.jti, claims.jti, "jti is unique per assertion");
    }

    #[test]
    fn no_kid_when_not_configured_and_key_not_in_debug() {
        let pki = Pki::generate();
        let signer = AssertionSigner::new(&config(&pki, None), "https://x/v1/token").unwrap();
        let header = jsonwebtoken::decode_header(signer.mint().unwrap()).unwrap();
        assert_eq!(header.kid, None);
        let debug = format!("{signer:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(pki.assertion_key_pem.lines().nth(1).unwrap()));
    }

    #[test]
    fn wrong_key_type_is_a_setup_error() {
        let pki = Pki::generate();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        pki.write("assertion.key", &ed.serialize_pem());
        let error = AssertionSigner::new(&config(&pki, None), "https://x/v1/token").unwrap_err();
        assert!(
            error.to_string().starts_with("dvv.assertion_key_file"),
            "{error}"
        );
    }
}
