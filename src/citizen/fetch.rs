//! Fetching a JWKS document over https: only this CA (or the system bundle), bounded in time and
//! size, following no redirects.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use super::error::JwksError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where common Linux distributions keep the system CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// An https client for one JWKS URL.
pub(crate) struct JwksFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: http::Uri,
    timeout: Duration,
}

impl JwksFetcher {
    /// Builds the client; fails if the URL is not https or the trust anchors cannot be read.
    pub(crate) fn new(
        url: &str,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, JwksError> {
        let uri: http::Uri = url.parse().map_err(|_| JwksError::Url)?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(JwksError::Url);
        }
        let roots = trust_anchors(ca_file)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JwksError::Trust(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            uri,
            timeout,
        })
    }

    /// Fetches the document: a 200 answer of at most 256 KiB within the time limit.
    pub(crate) async fn fetch(&self) -> Result<Bytes, JwksError> {
        let work = async {
            let response = self
                .client
                .get(self.uri.clone())
                .await
                .map_err(|e| JwksError::Fetch(e.to_string()))?;
            if response.status() != http::StatusCode::OK {
                return Err(JwksError::Fetch(format!("status {}", response.status())));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| JwksError::Fetch(e.to_string()))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| JwksError::Fetch("timed out".into()))?
    }
}

fn trust_anchors(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, JwksError> {
    let path: PathBuf = match ca_file {
        Some(path) => path.to_path_buf(),
        None => system_bundle().ok_or_else(|| {
            JwksError::Trust("no CA file configured and no system CA bundle found".into())
        })?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| JwksError::Trust(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| JwksError::Trust(format!("{}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(JwksError::Trust(format!(
            "{}: no usable CA certificate",
            path.display()
        )));
    }
    Ok(roots)
}

fn system_bundle() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(path));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}
