//! TLS to PostgreSQL through rustls (the project's one TLS stack, aws-lc-rs provider):
//! `store.sslmode` disable / require / verify-full, the CA of `store.ssl_root_cert` (or the
//! system's roots), and a client certificate for servers that ask for one. A failed handshake is
//! explained in terms of the setting to change.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{PostgresTls, SslMode};
use crate::store::error::StoreError;

/// The connector for every connection of the store (pooled and dedicated).
pub(crate) fn connector(tls: &PostgresTls) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StoreError::CannotOpen(format!("store TLS: {e}")))?;
    let builder = match tls.mode {
        // The connector is never used with sslmode=disable; it still needs a verifier.
        SslMode::Disable | SslMode::VerifyFull => builder.with_root_certificates(roots(tls)?),
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))),
    };
    let config = match &tls.client {
        Some((cert, key)) => {
            let chain = certificates("store.ssl_cert", cert)?;
            let pem = key
                .read()
                .map_err(|e| StoreError::CannotOpen(format!("store.ssl_key_file: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(pem.expose()).map_err(|_| {
                StoreError::CannotOpen("store.ssl_key_file: holds no PEM private key".into())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| StoreError::CannotOpen(format!("store.ssl_cert: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The trust anchors for verify-full: the configured CA file, else the system's roots.
fn roots(tls: &PostgresTls) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match &tls.root_cert {
        Some(path) => {
            for cert in certificates("store.ssl_root_cert", path)? {
                roots.add(cert).map_err(|e| {
                    StoreError::CannotOpen(format!(
                        "store.ssl_root_cert: not a usable CA certificate: {e}"
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 && tls.mode == SslMode::VerifyFull {
                return Err(StoreError::CannotOpen(
                    "store.sslmode = verify-full: no system CA certificates found; set \
                     store.ssl_root_cert"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file (at least one).
fn certificates(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let pem = std::fs::read(path)
        .map_err(|e| StoreError::CannotOpen(format!("{field}: {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StoreError::CannotOpen(format!("{field}: a malformed PEM certificate")))?;
    if certs.is_empty() {
        return Err(StoreError::CannotOpen(format!(
            "{field}: holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// `sslmode = require`: the channel is encrypted and the handshake's signatures are checked,
/// but any certificate is accepted (libpq's meaning of `require`).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a connection failed, in terms of the setting to look at when TLS was the cause; `None`
/// when TLS was not involved.
pub(crate) fn explain(error: &tokio_postgres::Error, mode: SslMode) -> Option<String> {
    if let Some(db) = error.as_db_error() {
        // The server's own refusal, e.g. `cert` authentication without a client certificate.
        return db.message().contains("certificate").then(|| {
            format!(
                "store.ssl_cert / store.ssl_key_file: the server refused the client certificate \
                 ({} ({}))",
                db.message(),
                db.code().code()
            )
        });
    }
    // The driver's text and its causes (the URL is never part of them).
    let mut text = error.to_string();
    let mut cause_of: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = cause_of {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause_of = e.source();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut cause = None;
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            cause = Some(tls.clone());
            break;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                cause = Some(tls.clone());
                break;
            }
        }
        source = e.source();
    }
    let mode_name = mode.as_str();
    match cause {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. },
        )) => Some(format!(
            "store.sslmode = {mode_name}: the server's certificate is not valid for the host \
             name in store.url"
        )),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
        )) => Some(format!(
            "store.sslmode = {mode_name}: the server's certificate is not signed by the CA in \
             store.ssl_root_cert (or the system's roots)"
        )),
        Some(rustls::Error::InvalidCertificate(other)) => Some(format!(
            "store.sslmode = {mode_name}: the server's certificate was refused ({other:?}); check \
             store.ssl_root_cert"
        )),
        Some(rustls::Error::AlertReceived(alert)) => Some(format!(
            "store.sslmode = {mode_name}: the server refused the TLS handshake ({alert:?}); check \
             store.ssl_cert and store.ssl_key_file"
        )),
        Some(other) => Some(format!(
            "store.sslmode = {mode_name}: TLS handshake failed ({other})"
        )),
        None if text.contains("server does not support TLS") => Some(format!(
            "store.sslmode = {mode_name}: the server does not offer TLS (ssl = off); nothing \
             was sent"
        )),
        None if text.contains("TLS") || text.contains("tls") => {
            Some(format!("store.sslmode = {mode_name}: {text}"))
        }
        None => None,
    }
}
