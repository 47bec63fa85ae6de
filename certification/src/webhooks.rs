//! The suite's webhook receiver: an HTTPS endpoint the launched gateway (or, in mode 2, a
//! deployment pointed at it) delivers its webhooks to. It records each delivery as it arrived,
//! answers 200, and never interprets anything on the gateway's behalf.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Longest a delivery's TLS handshake or body may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Request headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
    /// When it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// The URL to configure as the webhook endpoint.
    pub url: String,
    /// The shared secret the deliveries are signed with.
    pub secret: Vec<u8>,
    /// The file holding the secret (for the gateway's configuration).
    pub secret_file: PathBuf,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on `listen` with the server certificate `cert`/`key`; writes a fresh secret to
    /// `secret_file` (or uses the one there when `reuse_secret`).
    pub async fn start(
        listen: &str,
        cert: &Path,
        key: &Path,
        secret_file: &Path,
        reuse_secret: bool,
    ) -> anyhow::Result<Self> {
        let secret = if reuse_secret {
            std::fs::read(secret_file)
                .with_context(|| format!("reading {}", secret_file.display()))?
        } else {
            let s = hex::encode(rand::random::<[u8; 32]>()).into_bytes();
            write_private(secret_file, &s)?;
            s
        };
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let certs = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading {}", key.display()))?;
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the webhook receiver to {listen}"))?;
        let url = format!("https://{}/certification/webhooks", listener.local_addr()?);
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let shared = deliveries.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let store = shared.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(DELIVERY_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = tokio::time::timeout(DELIVERY_TIMEOUT, body.collect())
                                .await
                                .ok()
                                .and_then(|b| b.ok())
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if let Ok(mut d) = store.lock() {
                                d.push(Delivery {
                                    headers: parts.headers,
                                    body,
                                    at: chrono::Utc::now(),
                                });
                            }
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                                b"{}",
                            ))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            url,
            secret,
            secret_file: secret_file.to_owned(),
            deliveries,
            task,
        })
    }

    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

/// Whether `header` (`t=<unix seconds>,v1=<hex>[,v1=…]`) is a valid HMAC-SHA256 over
/// `"<t>.<body>"` with `secret`.
pub fn signature_valid(secret: &[u8], header: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => tags.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    tags.iter().any(|tag| {
        let Ok(expected) = hex::decode(tag) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"1700000000.{\"id\":1}");
        let tag = hex::encode(mac.finalize().into_bytes());
        let header = format!("t=1700000000,v1={tag}");
        assert!(signature_valid(b"s3cret", &header, b"{\"id\":1}"));
        assert!(!signature_valid(b"s3cret", &header, b"{\"id\":2}"));
        assert!(!signature_valid(b"other", &header, b"{\"id\":1}"));
        assert!(!signature_valid(b"s3cret", "v1=00", b"{\"id\":1}"));
    }
}
