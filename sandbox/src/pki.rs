//! The throwaway PKI every sandbox data directory carries.
//!
//! Created on the first start and reused afterwards, so that a gateway configured against a
//! sandbox keeps working across restarts: a CA, the DVV listener's server certificate, a server
//! certificate for the gateway's operator API, one TLS client certificate and one ES256
//! assertion key per provider, and the operator identity service's signing key with its JWKS.
//! Every key is EC P-256 in PKCS#8 PEM, written with mode 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};

use crate::fsutil::{self, Mode};

/// Names every server certificate answers to.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Paths of one provider's credentials.
#[derive(Clone, Debug)]
pub struct ProviderPki {
    /// Provider id, as in the seed.
    pub id: String,
    /// TLS client certificate (PEM).
    pub client_cert: PathBuf,
    /// Key of the TLS client certificate (PKCS#8 PEM).
    pub client_key: PathBuf,
    /// ES256 key that signs `private_key_jwt` client assertions (PKCS#8 PEM).
    pub assertion_key: PathBuf,
    /// Public half of the assertion key (SPKI PEM), which the token endpoint verifies with.
    pub assertion_public_key: PathBuf,
}

/// Paths of the whole PKI, all absolute.
#[derive(Clone, Debug)]
pub struct Pki {
    /// CA certificate every client and server certificate chains to.
    pub ca_cert: PathBuf,
    /// DVV listener certificate.
    pub server_cert: PathBuf,
    /// DVV listener key.
    pub server_key: PathBuf,
    /// Certificate for the gateway's operator API.
    pub gateway_cert: PathBuf,
    /// Key for the gateway's operator API.
    pub gateway_key: PathBuf,
    /// One entry per provider, in seed order.
    pub providers: Vec<ProviderPki>,
    /// The operator identity service's ES256 signing key.
    pub operator_signing_key: PathBuf,
    /// Its public key as a JWKS document (`kid` = the key's RFC 7638 thumbprint).
    pub operator_jwks: PathBuf,
}

impl Pki {
    /// Creates whatever is missing under `dir` and returns the paths.
    ///
    /// A newly created CA invalidates every certificate it did not sign, so then all of them
    /// are issued again; assertion and operator keys do not depend on the CA and are kept.
    pub fn ensure(dir: &Path, provider_ids: &[String]) -> anyhow::Result<Self> {
        let ca_cert = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        let (ca, fresh_ca) = load_or_create_ca(&ca_cert, &ca_key)?;

        let server_cert = dir.join("server.pem");
        let server_key = dir.join("server.key");
        ensure_leaf(
            &ca,
            fresh_ca,
            &server_cert,
            &server_key,
            server_params("Ikkuna sandbox DVV")?,
        )?;

        let gateway_cert = dir.join("gateway.pem");
        let gateway_key = dir.join("gateway.key");
        ensure_leaf(
            &ca,
            fresh_ca,
            &gateway_cert,
            &gateway_key,
            server_params("Ikkuna sandbox gateway")?,
        )?;

        let mut providers = Vec::with_capacity(provider_ids.len());
        for id in provider_ids {
            let pdir = dir.join("providers").join(id);
            fsutil::ensure_private_dir(&pdir)?;
            let client_cert = pdir.join("client.pem");
            let client_key = pdir.join("client.key");
            ensure_leaf(&ca, fresh_ca, &client_cert, &client_key, client_params(id)?)?;
            let assertion_key = pdir.join("assertion.key");
            let assertion_public_key = pdir.join("assertion.pub.pem");
            let key = load_or_create_key(&assertion_key)?;
            fsutil::write_atomic(
                &assertion_public_key,
                key.public_key_pem().as_bytes(),
                Mode::Public,
            )?;
            providers.push(ProviderPki {
                id: id.clone(),
                client_cert,
                client_key,
                assertion_key,
                assertion_public_key,
            });
        }

        let odir = dir.join("operator");
        fsutil::ensure_private_dir(&odir)?;
        let operator_signing_key = odir.join("signing.key");
        let operator_jwks = odir.join("jwks.json");
        let key = load_or_create_key(&operator_signing_key)?;
        let jwks = jwks_for(&key)?;
        fsutil::write_atomic(&operator_jwks, jwks.as_bytes(), Mode::Public)?;

        Ok(Self {
            ca_cert,
            server_cert,
            server_key,
            gateway_cert,
            gateway_key,
            providers,
            operator_signing_key,
            operator_jwks,
        })
    }
}

/// SHA-256 of a certificate's DER: how the DVV listener recognises a provider.
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The RFC 7638 thumbprint of an EC P-256 public key given as base64url coordinates.
pub fn jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn jwks_for(key: &KeyPair) -> anyhow::Result<String> {
    let raw = key.public_key_raw();
    anyhow::ensure!(
        raw.len() == 65 && raw[0] == 4,
        "operator key is not an uncompressed P-256 point"
    );
    let x = URL_SAFE_NO_PAD.encode(&raw[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&raw[33..65]);
    let kid = jwk_thumbprint(&x, &y);
    let jwks = serde_json::json!({
        "keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]
    });
    Ok(serde_json::to_string_pretty(&jwks)?)
}

fn load_or_create_key(path: &Path) -> anyhow::Result<KeyPair> {
    if path.exists() {
        let pem = fsutil::read_string(path)?;
        return KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", path.display()));
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    fsutil::write_atomic(path, key.serialize_pem().as_bytes(), Mode::Private)?;
    Ok(key)
}

fn load_or_create_ca(cert: &Path, key: &Path) -> anyhow::Result<(Issuer<'static, KeyPair>, bool)> {
    if cert.exists() && key.exists() {
        let pem = fsutil::read_string(key)?;
        let key = KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", key.display()))?;
        // rcgen needs only the CA's name, key usages and key-id method to issue certificates:
        // rebuilding them from the same parameters reproduces the issuer exactly.
        return Ok((Issuer::new(ca_params()?, key), false));
    }
    let signing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let params = ca_params()?;
    let certificate = params.self_signed(&signing_key)?;
    fsutil::write_atomic(key, signing_key.serialize_pem().as_bytes(), Mode::Private)?;
    fsutil::write_atomic(cert, certificate.pem().as_bytes(), Mode::Public)?;
    Ok((Issuer::new(params, signing_key), true))
}

fn ensure_leaf(
    ca: &Issuer<'static, KeyPair>,
    reissue: bool,
    cert: &Path,
    key: &Path,
    params: CertificateParams,
) -> anyhow::Result<()> {
    if !reissue && cert.exists() && key.exists() {
        return Ok(());
    }
    let signing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let certificate = params.signed_by(&signing_key, ca)?;
    fsutil::write_atomic(key, signing_key.serialize_pem().as_bytes(), Mode::Private)?;
    fsutil::write_atomic(cert, certificate.pem().as_bytes(), Mode::Public)?;
    Ok(())
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Ikkuna sandbox CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Ikkuna sandbox");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    Ok(params)
}

fn server_params(common_name: &str) -> anyhow::Result<CertificateParams> {
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    leaf_common(&mut params, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn client_params(provider_id: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    leaf_common(&mut params, provider_id);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn leaf_common(params: &mut CertificateParams, common_name: &str) {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Ikkuna sandbox");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    set_validity(params);
}

fn set_validity(params: &mut CertificateParams) {
    let year = chrono::Utc::now().year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
}
