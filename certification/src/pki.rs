//! The suite's own operator client CA: mode 1 launches the gateway requiring client certificates
//! from it (as production runs with `server.client_ca`) and presents one on every call.

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::http::ClientCert;

/// Writes `operator-ca.pem` and a client certificate issued by it into `dir`; answers the CA's
/// path and the client certificate.
pub fn operator_client_ca(dir: &Path) -> anyhow::Result<(std::path::PathBuf, ClientCert)> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Certification operator client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "certification operator backend");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let ca_path = dir.join("operator-ca.pem");
    let cert = dir.join("operator-client.pem");
    let key = dir.join("operator-client.key");
    std::fs::write(&ca_path, ca_cert.pem()).context("writing the operator CA")?;
    std::fs::write(&cert, leaf_cert.pem())?;
    std::fs::write(&key, leaf_key.serialize_pem())?;
    Ok((ca_path, ClientCert { cert, key }))
}
