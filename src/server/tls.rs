//! The operator API's TLS configuration: TLS 1.2 and 1.3 only, optional client certificates.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Why the operator API's TLS could not be set up; names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A certificate file could not be read or holds no certificate.
    #[error("{field}: cannot read certificates from {path}")]
    Certificates {
        /// Configuration key naming the file.
        field: &'static str,
        /// The file.
        path: String,
    },
    /// The private key file could not be read.
    #[error("server.tls_key_file: cannot read a private key from {0}")]
    Key(String),
    /// rustls refused the combination.
    #[error("server TLS: {0}")]
    Rustls(String),
}

/// Builds the server configuration from PEM files; with `client_ca`, clients must present a
/// certificate issued by it (mutual TLS from the operator backend).
pub fn server_config(
    cert_chain: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    crate::tls_provider::install();
    let certs = read_certs("server.tls_cert", cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| ServerTlsError::Key(key.display().to_string()))?;
    let builder = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]);
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("server.client_ca", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| ServerTlsError::Rustls(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| ServerTlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerTlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ServerTlsError> {
    let err = || ServerTlsError::Certificates {
        field,
        path: path.display().to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|_| err())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| err())?;
    if certs.is_empty() {
        return Err(err());
    }
    Ok(certs)
}
