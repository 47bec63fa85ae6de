//! One HTTP/1.1 connection (plain, TLS, or mutual TLS) with nothing between the load generator
//! and the socket: no pool, no retries, so every request measured is exactly one request sent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

/// Longest wait for a TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a setup call (token, admin API) to answer completely.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect and how: the address, the TLS configuration if any, and the `Host` header.
#[derive(Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    host: HeaderValue,
}

impl Endpoint {
    /// Plain HTTP (the sandbox admin API).
    pub fn plain(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            tls: None,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// HTTPS trusting only `ca`, optionally presenting a client certificate (mutual TLS).
    pub fn tls(
        addr: SocketAddr,
        ca: &Path,
        client: Option<(&Path, &Path)>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).context("reading the CA")? {
            roots.add(cert?)?;
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match client {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .context("reading the client certificate")?
                    .collect::<Result<Vec<_>, _>>()?;
                let key = PrivateKeyDer::from_pem_file(key).context("reading the client key")?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr,
            tls: Some((
                Arc::new(config),
                ServerName::try_from("localhost")?.to_owned(),
            )),
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Opens one connection.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner())
            .await
            .context("connect timed out")?
    }

    async fn connect_inner(&self) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let sender = match &self.tls {
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await?;
                handshake(TokioIo::new(tls)).await?
            }
            None => handshake(TokioIo::new(tcp)).await?,
        };
        Ok(Conn {
            sender,
            host: self.host.clone(),
        })
    }

    /// One setup call on a fresh connection, answered completely within a time limit: the
    /// status and the body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let work = async {
            let mut conn = self.connect().await?;
            let mut req = Request::builder().method(method).uri(path);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let bytes = match body {
                Some((content_type, bytes)) => {
                    req = req.header(http::header::CONTENT_TYPE, content_type);
                    Bytes::from(bytes)
                }
                None => Bytes::new(),
            };
            let resp = conn.send(req.body(Full::new(bytes))?).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        tokio::time::timeout(SETUP_TIMEOUT, work)
            .await
            .context("setup call timed out")?
    }

    /// A JSON setup call that must succeed (2xx): the parsed answer.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (status, bytes) = self.call(method, path, headers, body).await?;
        anyhow::ensure!(
            status.is_success(),
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(serde_json::from_slice(&bytes)?)
    }
}

async fn handshake<T>(io: TokioIo<T>) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// An open HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    /// Sends one request (adding `Host`) and returns the answer's head; the body is left to read.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        req.headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| self.host.clone());
        self.sender.ready().await?;
        Ok(self.sender.send_request(req).await?)
    }
}

/// Reads a body to its end, counting its bytes and keeping none of them.
pub async fn drain(mut body: Incoming) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok(bytes)
}
