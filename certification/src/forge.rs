//! Citizen assertions, good and forged: what the operator's identity service would issue, and
//! every way an attacker or a broken identity service might get it wrong.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::target::Backend;

/// Strong identification, level high.
pub const ACR_HIGH: &str = "http://ftn.ficora.fi/2017/loa3";

/// Signs assertions as the backend's operator identity service.
pub struct Signer {
    key: EncodingKey,
    kid: String,
    jwk: Value,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
}

impl Signer {
    /// The operator key and JWKS named in `sandbox.json`.
    pub fn from_backend(backend: &Backend) -> anyhow::Result<Self> {
        let pem = std::fs::read(backend.path("operatorSigningKey")?)?;
        let key = EncodingKey::from_ec_pem(&pem).context("operator signing key")?;
        let jwks: Value = serde_json::from_slice(&std::fs::read(backend.path("operatorJwks")?)?)?;
        let jwk = jwks["keys"][0].clone();
        let kid = jwk["kid"]
            .as_str()
            .context("JWKS key without kid")?
            .to_owned();
        Ok(Self {
            key,
            kid,
            jwk,
            issuer: backend.info["operatorIssuer"]
                .as_str()
                .context("operatorIssuer")?
                .to_owned(),
            audience: backend.info["gatewayAudience"]
                .as_str()
                .context("gatewayAudience")?
                .to_owned(),
        })
    }

    /// The claims of a good assertion for `sub`.
    pub fn claims(&self, sub: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "acr": ACR_HIGH,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// ES256 with the operator key and `kid` (the real one unless given).
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(kid.unwrap_or(&self.kid).to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }

    /// An unsigned token (`alg: none`).
    pub fn alg_none(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid});
        format!("{}.{}.", b64(&header), b64(claims))
    }

    /// HS256 keyed with the public key's PEM: the classic algorithm-confusion forgery.
    pub fn hmac_with_public_key(&self, claims: &Value) -> anyhow::Result<String> {
        let pem = self.public_key_pem()?;
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(pem.as_bytes()),
        )?)
    }

    /// The P-256 public key of the JWKS as SPKI PEM.
    fn public_key_pem(&self) -> anyhow::Result<String> {
        let coord = |name: &str| -> anyhow::Result<Vec<u8>> {
            let text = self.jwk[name].as_str().context("JWK coordinate")?;
            Ok(URL_SAFE_NO_PAD.decode(text)?)
        };
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200")?;
        der.push(0x04);
        der.extend(coord("x")?);
        der.extend(coord("y")?);
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        Ok(format!(
            "-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
        ))
    }
}

/// The token with its payload replaced and its signature kept.
pub fn tamper(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [h, _, s] => format!("{h}.{}.{s}", b64(claims)),
        _ => token.to_owned(),
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}
