//! The TLS client configuration towards DVV: TLS 1.2 and 1.3 only, the configured CA as the only
//! trust anchor (no system roots, no webpki roots), and the operator's client certificate
//! presented for mutual TLS. Uses the aws-lc-rs provider explicitly, so it does not depend on a
//! process-wide default being installed.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::DvvSetupError;
use crate::config::DvvConfig;

/// Builds the rustls client configuration for DVV from `[dvv]` (ALPN is left to hyper-rustls).
pub(crate) fn client_config(cfg: &DvvConfig) -> Result<ClientConfig, DvvSetupError> {
    let roots = trust_anchors(&cfg.ca_cert)?;
    let chain = certificate_chain("dvv.client_cert", &cfg.client_cert)?;
    let key_pem = cfg.client_key.read().map_err(|error| DvvSetupError::Read {
        field: "dvv.client_key_file",
        path: cfg.client_key.path().to_path_buf(),
        reason: error.to_string(),
    })?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.expose()).map_err(|_| DvvSetupError::Material {
            field: "dvv.client_key_file",
            reason: "holds no PEM private key".to_owned(),
        })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(config)
}

/// The one CA (or CA bundle) trusted for DVV.
fn trust_anchors(path: &Path) -> Result<RootCertStore, DvvSetupError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificate_chain("dvv.ca_cert", path)? {
        roots
            .add(certificate)
            .map_err(|error| DvvSetupError::Material {
                field: "dvv.ca_cert",
                reason: format!("not a usable CA certificate: {error}"),
            })?;
    }
    Ok(roots)
}

/// All certificates of a PEM file (at least one).
fn certificate_chain(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, DvvSetupError> {
    let pem = std::fs::read(path).map_err(|error| DvvSetupError::Read {
        field,
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| DvvSetupError::Material {
            field,
            reason: "holds a malformed PEM certificate".to_owned(),
        })?;
    if chain.is_empty() {
        return Err(DvvSetupError::Material {
            field,
            reason: "holds no PEM certificate".to_owned(),
        });
    }
    Ok(chain)
}
