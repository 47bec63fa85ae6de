//! The suite's one HTTP client: HTTPS to the gateway (trusting only the CA given), plain HTTP to
//! admin listeners, every call with a timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// Longest time any one call may take, body included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

type Inner = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A captured answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body holds `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        !needle.is_empty()
            && self
                .body
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
    }

    /// `status` and the `reason` field, for evidence.
    pub fn summary(&self) -> String {
        let reason = self.json()["reason"].as_str().unwrap_or("").to_owned();
        format!("{} {reason}", self.status)
    }
}

/// A client certificate the suite presents to the operator listener.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// One answer of the operator API as the suite saw it, kept for the checks that judge every
/// answer of the run (`no-store`, the error shape).
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with the query.
    pub path: String,
    /// Status.
    pub status: u16,
    /// `Cache-Control` as sent.
    pub cache_control: Option<String>,
    /// For errors: whether the body is a JSON object with a string `reason`.
    pub reason: Option<String>,
}

/// The client, counting the calls made to the gateway's operator API and keeping their answers.
pub struct Http {
    client: Inner,
    gateway_calls: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// The CA the client trusts.
    pub ca: PathBuf,
    /// The client certificate it presents, if any.
    pub client_cert: Option<ClientCert>,
}

/// A rustls client configuration trusting only `ca`, presenting `client` when given.
pub fn tls_config(ca: &Path, client: Option<&ClientCert>) -> anyhow::Result<rustls::ClientConfig> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.context("a CA certificate")?)?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let certs = CertificateDer::pem_file_iter(&c.cert)
                .with_context(|| format!("reading {}", c.cert.display()))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(&c.key)
                .with_context(|| format!("reading {}", c.key.display()))?;
            builder.with_client_auth_cert(certs, key)?
        }
    })
}

impl Http {
    /// A client whose only trust anchor is the PEM file `ca`.
    pub fn new(ca: &Path) -> anyhow::Result<Self> {
        Self::with_client_cert(ca, None)
    }

    /// A client trusting `ca` that presents `client` to servers asking for a certificate.
    pub fn with_client_cert(ca: &Path, client: Option<ClientCert>) -> anyhow::Result<Self> {
        let tls = tls_config(ca, client.as_ref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            gateway_calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            ca: ca.to_owned(),
            client_cert: client,
        })
    }

    /// Every operator-API answer seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Calls made so far through [`Http::gateway`] that were answered, `HEAD` left out (refused
    /// before any access, so not an access an audit trail must show).
    pub fn gateway_calls(&self) -> usize {
        self.gateway_calls.load(Ordering::Relaxed)
    }

    /// An operator-API call with an optional bearer token.
    pub async fn gateway(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(("authorization".to_owned(), format!("Bearer {t}")));
        }
        let answer = self
            .request(method, &format!("{base}{path}"), &headers, None)
            .await?;
        self.record(method, path, &answer);
        Ok(answer)
    }

    /// Counts an operator-API answer (`HEAD` excepted) and keeps it for the checks that judge
    /// every answer of the run.
    fn record(&self, method: &str, path: &str, answer: &Answer) {
        if method != "HEAD" {
            self.gateway_calls.fetch_add(1, Ordering::Relaxed);
        }
        let reason = (answer.status >= 400).then(|| {
            answer.json()["reason"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default()
        });
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                method: method.to_owned(),
                path: path.to_owned(),
                status: answer.status,
                cache_control: answer.header("cache-control").map(str::to_owned),
                reason,
            });
        }
    }

    /// An operator-API `POST` with a body of any type (a multipart reply), recorded like
    /// [`Http::gateway`]'s calls for the checks over every answer.
    pub async fn gateway_post(
        &self,
        base: &str,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let answer = self
            .send("POST", &format!("{base}{path}"), headers, body)
            .await?;
        self.record("POST", path, &answer);
        Ok(answer)
    }

    /// Any call; JSON body when given.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut headers = headers.to_vec();
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type".to_owned(), "application/json".to_owned()));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        self.send(method, url, &headers, bytes).await
    }

    /// A `POST` of an `application/x-www-form-urlencoded` body (an OAuth token request).
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        self.send("POST", url, &headers, Bytes::from(body)).await
    }

    /// Any call with the body as given (its type among `headers`), within [`CALL_TIMEOUT`].
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        bytes: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(bytes))?;
        let call = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| anyhow::anyhow!("{method} {url}: no answer within {CALL_TIMEOUT:?}"))?
    }

    /// A call to an admin API (the backend's or the gateway's).
    pub async fn admin(
        &self,
        url: &str,
        method: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        self.request(method, url, &[], body.as_ref()).await
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
