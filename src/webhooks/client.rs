//! The HTTPS client that POSTs webhooks: TLS 1.2/1.3 only, trusting the configured CA or the
//! system's roots, https only, a connect timeout and a deadline on every attempt.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// Most of a receiver's answer that is read (and thrown away) so the connection can be reused.
const RESPONSE_LIMIT: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("ikkuna-webhooks/", env!("CARGO_PKG_VERSION"));

/// Why the webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The CA file is unreadable or holds no usable certificate.
    #[error("webhooks.ca_cert: {0}")]
    Ca(String),
    /// No system root certificate could be loaded and no CA was configured.
    #[error("webhooks: no system root certificates found; set webhooks.ca_cert")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("webhooks TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why one delivery attempt failed; `kind` is a stable label for logs, the queue and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No answer within `webhooks.timeout_ms`.
    #[error("webhook endpoint timed out")]
    Timeout,
    /// Connect, TLS or protocol failure.
    #[error("webhook endpoint unreachable: {0}")]
    Unreachable(String),
    /// The endpoint answered, but not with a 2xx.
    #[error("webhook endpoint answered {0}")]
    Status(u16),
    /// The endpoint URL could not be used.
    #[error("webhook endpoint URL is unusable")]
    BadUrl,
}

impl SendError {
    /// A stable snake_case label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::Status(_) => "status",
            Self::BadUrl => "bad_url",
        }
    }

    /// The HTTP status, when the endpoint answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(status) => Some(*status),
            _ => None,
        }
    }
}

/// Pooled HTTPS client for the operator's endpoints. Cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookClient {
    /// Builds the client: `ca_cert` (PEM) as the only trust anchor when given, else the system
    /// roots; `connect_timeout` per connection, `timeout` per attempt.
    pub fn new(
        ca_cert: Option<&Path>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, WebhookSetupError> {
        let roots = match ca_cert {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(8)
            .build(https);
        Ok(Self { http, timeout })
    }

    /// POSTs `body` as JSON with `headers` and reads the answer; Ok with the 2xx status.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<u16, SendError> {
        let mut request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| SendError::BadUrl)?;
        let attempt = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|error| SendError::Unreachable(cause_chain(&error)))?;
            let status = response.status();
            // Read (and drop) a bounded answer so the pooled connection stays usable.
            let _ = Limited::new(response.into_body(), RESPONSE_LIMIT)
                .collect()
                .await;
            if status.is_success() {
                Ok(status.as_u16())
            } else {
                Err(SendError::Status(status.as_u16()))
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| SendError::Timeout)?
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, WebhookSetupError> {
    let pem =
        std::fs::read(path).map_err(|e| WebhookSetupError::Ca(format!("cannot read: {e}")))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate
            .map_err(|_| WebhookSetupError::Ca("holds a malformed PEM certificate".into()))?;
        roots
            .add(certificate)
            .map_err(|e| WebhookSetupError::Ca(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(WebhookSetupError::Ca("holds no PEM certificate".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, WebhookSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(WebhookSetupError::NoRoots);
    }
    Ok(roots)
}

/// A transport error with its sources (connect, TLS and protocol errors: no content).
fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        cause.push_str(": ");
        cause.push_str(&inner.to_string());
        source = inner.source();
    }
    cause
}
