//! Test support: a throwaway PKI (CA, server and client certificates, an ES256 assertion key, a
//! JWKS) written to a temporary directory, a configuration pointing at it, and a small mutual-TLS
//! HTTPS server on `127.0.0.1:0` whose answers each test scripts.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Files of a generated PKI.
pub(crate) struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub assertion_key_pem: String,
    pub assertion_public_pem: String,
}

impl Pki {
    /// Generates a CA, a server certificate for `localhost`/`127.0.0.1`, a client certificate,
    /// an assertion key and a JWKS, and writes them to a temporary directory.
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params =
            CertificateParams::new(vec!["provider-a.invalid".to_owned()]).expect("client params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client cert");

        let assertion_key = KeyPair::generate().expect("assertion key");
        let raw = assertion_key.public_key_raw();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65]),
        }]});

        let pki = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            assertion_key_pem: assertion_key.serialize_pem(),
            assertion_public_pem: assertion_key.public_key_pem(),
        };
        pki.write("ca.pem", &pki.ca_pem);
        pki.write("server.pem", &pki.server_cert_pem);
        pki.write("server.key", &pki.server_key_pem);
        pki.write("client.pem", &pki.client_cert_pem);
        pki.write("client.key", &pki.client_key_pem);
        pki.write("assertion.key", &pki.assertion_key_pem);
        pki.write("jwks.json", &jwks.to_string());
        pki
    }

    /// Writes `name` in the PKI directory.
    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path(name), content).expect("write test file");
    }

    /// A file of the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A complete gateway configuration (the sandbox's shape) using these files and
    /// `base_url` for DVV.
    pub fn config_toml(&self, base_url: &str) -> String {
        let p = |name: &str| self.path(name).display().to_string();
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "{server_pem}"
tls_key_file = "{server_key}"

[admin]
listen = "127.0.0.1:0"

[dvv]
base_url = "{base_url}"
provider_id = "provider-a"
ca_cert = "{ca}"
client_cert = "{client_pem}"
client_key_file = "{client_key}"
assertion_key_file = "{assertion_key}"
consent_service_url = "https://127.0.0.1:9/consent-service"

[assertions]
issuer = "https://identity.sandbox.ikkuna.invalid"
audience = "ikkuna"
jwks_file = "{jwks}"

[store]
data_dir = "{data}"
"#,
            server_pem = p("server.pem"),
            server_key = p("server.key"),
            ca = p("ca.pem"),
            client_pem = p("client.pem"),
            client_key = p("client.key"),
            assertion_key = p("assertion.key"),
            jwks = p("jwks.json"),
            data = p("data"),
        )
    }

    /// The directory itself.
    #[allow(dead_code)]
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// A request as the test server received it (body read whole: requests are small).
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: http::Method,
    /// Path and query.
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn bearer(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
    }
}

/// The body type of scripted answers.
pub(crate) type ReplyBody =
    http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;
/// A scripted answer.
pub(crate) type Reply = http::Response<ReplyBody>;
/// The script: each request to an answer, possibly after a delay.
pub(crate) type Script = std::sync::Arc<
    dyn Fn(Recorded) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>
        + Send
        + Sync,
>;

/// A JSON answer with a trace id.
pub(crate) fn reply_json(status: u16, json: serde_json::Value) -> Reply {
    use http_body_util::BodyExt;
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("traceId", "trace-0001")
        .body(
            http_body_util::Full::new(bytes::Bytes::from(json.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("reply")
}

/// The token endpoint's answer, issuing `token`.
pub(crate) fn reply_token(token: &str, expires_in: u64) -> Reply {
    reply_json(
        200,
        serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

/// A mutual-TLS HTTPS server answering by script, recording every request.
pub(crate) struct TestServer {
    pub pki: Pki,
    pub addr: std::net::SocketAddr,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts the server with a fresh PKI; only clients with a certificate of its CA connect.
    pub async fn start(script: Script) -> Self {
        Self::start_with(Pki::generate(), script).await
    }

    /// Starts the server with `pki`.
    pub async fn start_with(pki: Pki, script: Script) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("verifier");
        let chain =
            vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("key");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, script, recorded) =
                    (acceptor.clone(), script.clone(), recorded.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (script, recorded) = (script.clone(), recorded.clone());
                            async move {
                                use http_body_util::BodyExt;
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                let record = Recorded {
                                    method: parts.method,
                                    target: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: parts.headers,
                                    body,
                                };
                                recorded.lock().expect("lock").push(record.clone());
                                Ok::<_, std::convert::Infallible>(script(record).await)
                            }
                        },
                    );
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            pki,
            addr,
            requests,
            task,
        }
    }

    /// The base URL of this server.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// A `[dvv]` configuration for this server, with `overrides` as environment variables
    /// (e.g. `("IKKUNA_DVV_CALL_TIMEOUT_MS", "500")`).
    pub fn dvv_config(&self, overrides: &[(&str, &str)]) -> crate::config::DvvConfig {
        let map: std::collections::HashMap<String, String> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| map.get(name).cloned();
        crate::config::Config::from_toml_str(&self.pki.config_toml(&self.base_url()), &env)
            .expect("test configuration")
            .dvv
    }

    /// Requests received so far whose path is `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path() == path)
            .count()
    }

    /// Every request received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}
