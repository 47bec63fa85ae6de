//! Test harness: a sandbox in a temporary directory, and clients that talk to it over real
//! sockets — the DVV API over mutual TLS with a provider's generated credentials, the admin API
//! over plain HTTP.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ikkuna_sandbox::{start, RunningSandbox, SandboxInfo, SandboxOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

/// Per-request deadline, so that a hang fails the test instead of blocking the suite.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The seeded citizen with active consents to both providers and a varied inbox.
pub const AINO: &str = "150385-9046";
/// Revoked consent with provider-a.
pub const MATTI: &str = "021178-917V";
/// No consent at all.
pub const LIISA: &str = "210690Y923C";
/// 45 messages, active consent with provider-a.
pub const PAAVO: &str = "121262-969N";
/// Active consent with provider-a, one message.
pub const VILLE_DASH: &str = "010190-936V";
/// Same digits as VILLE_DASH, a different person without consent.
pub const VILLE_Y: &str = "010190Y936V";
/// Active with provider-a, empty inbox.
pub const EEVA: &str = "280201A977E";

pub struct Harness {
    pub sandbox: RunningSandbox,
    pub dir: tempfile::TempDir,
    pub admin: Admin,
}

pub async fn start_sandbox() -> Harness {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut SandboxOptions)) -> Harness {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = SandboxOptions::new(dir.path());
    adjust(&mut opts);
    let sandbox = start(opts).await.expect("sandbox starts");
    let admin = Admin::new(sandbox.admin_url());
    Harness {
        sandbox,
        dir,
        admin,
    }
}

impl Harness {
    pub fn info(&self) -> &SandboxInfo {
        self.sandbox.info()
    }

    /// A client acting as provider `index` (0 = provider-a, 1 = provider-b).
    pub fn provider(&self, index: usize) -> Provider {
        Provider::new(self.info(), index, index)
    }

    /// A client whose TLS certificate is provider `cert` but whose assertions are signed as
    /// provider `assertion`.
    pub fn mixed_provider(&self, cert: usize, assertion: usize) -> Provider {
        Provider::new(self.info(), cert, assertion)
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, a `{"reason"}` body for errors, and the traceId header.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
        );
        let trace = self.header("traceid").expect("traceId header");
        assert!(uuid::Uuid::parse_str(trace).is_ok(), "traceId is a UUID");
        // A 409 answers with the original result, every other error with a reason.
        if status >= 400 && status != 409 {
            assert!(!self.reason().is_empty(), "error has a reason");
        }
        self
    }
}

pub struct Provider {
    pub id: String,
    pub base: String,
    pub token_url: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    assertion_id: String,
    assertion_key: jsonwebtoken::EncodingKey,
}

pub fn client_tls(info: &SandboxInfo, cert: Option<usize>) -> rustls::ClientConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&info.ca_cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match cert {
        Some(i) => {
            let p = &info.providers[i];
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p.client_cert)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&p.client_key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

impl Provider {
    /// A client acting as provider `index` of a sandbox described by `info`.
    pub fn for_info(info: &SandboxInfo, index: usize) -> Self {
        Self::new(info, index, index)
    }

    fn new(info: &SandboxInfo, cert: usize, assertion: usize) -> Self {
        let tls = client_tls(info, Some(cert));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let a = &info.providers[assertion];
        let pem = std::fs::read(&a.assertion_key).unwrap();
        Self {
            id: info.providers[cert].id.clone(),
            base: info.dvv_url.clone(),
            token_url: format!("{}/v1/token", info.dvv_url),
            client,
            assertion_id: a.id.clone(),
            assertion_key: jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
        }
    }

    /// Standard claims for this provider's assertion.
    pub fn claims(&self) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.assertion_id,
            "sub": self.assertion_id,
            "aud": self.token_url,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "exp": now + 60,
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            claims,
            &self.assertion_key,
        )
        .unwrap()
    }

    pub fn token_form(assertion: &str) -> String {
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        )
    }

    pub async fn post_token(&self, form: &str) -> Resp {
        self.send(
            Method::POST,
            "/v1/token",
            None,
            Some((
                "application/x-www-form-urlencoded",
                form.as_bytes().to_vec(),
            )),
            &[],
        )
        .await
    }

    /// A fresh bearer token.
    pub async fn token(&self) -> String {
        let r = self
            .post_token(&Self::token_form(&self.sign(&self.claims())))
            .await
            .expect(200);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Resp {
        self.send(Method::GET, path, Some(bearer), None, &[]).await
    }

    pub async fn get_with(&self, path: &str, bearer: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, path, Some(bearer), None, headers)
            .await
    }

    pub async fn post_json(&self, path: &str, bearer: &str, body: &Value) -> Resp {
        self.send(
            Method::POST,
            path,
            Some(bearer),
            Some(("application/json", serde_json::to_vec(body).unwrap())),
            &[],
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, bearer: &str, body: Vec<u8>) -> Resp {
        self.send(
            Method::POST,
            path,
            Some(bearer),
            Some(("application/json", body)),
            &[],
        )
        .await
    }

    /// The consentId of a citizen for this provider (panics unless 200).
    pub async fn consent_id(&self, bearer: &str, citizen: &str) -> String {
        let r = self
            .post_json(
                "/v1/consents/lookup",
                bearer,
                &json!({"endUserId": citizen}),
            )
            .await
            .expect(200);
        r.json()["consentId"].as_str().unwrap().to_owned()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some((ct, b)) => {
                req = req.header("content-type", ct);
                b
            }
            None => Vec::new(),
        };
        let req = req.body(Full::new(Bytes::from(bytes))).unwrap();
        let fut = async {
            let res = self.client.request(req).await.expect("request sent");
            let (parts, body) = res.into_parts();
            let body = body.collect().await.expect("body read").to_bytes();
            Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .expect("answered in time")
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn stream(
        &self,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        let mut req = Request::builder()
            .uri(format!("{}{}", self.base, path))
            .header("authorization", format!("Bearer {bearer}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.client
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
    }
}

pub struct Admin {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Admin {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                serde_json::to_vec(v).unwrap()
            }
            None => Vec::new(),
        };
        let fut = async {
            let res = self
                .client
                .request(req.body(Full::new(Bytes::from(bytes))).unwrap())
                .await
                .expect("admin request sent");
            let (parts, body) = res.into_parts();
            Resp {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .expect("admin answered in time")
    }

    pub async fn get(&self, path: &str) -> Value {
        self.send(Method::GET, path, None).await.expect(200).json()
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(&body)).await
    }

    /// Delivers a message; answers (messageId, attachmentIds).
    pub async fn new_message(&self, body: Value) -> (i64, Vec<i64>) {
        let v = self.post("/admin/messages", body).await.expect(201).json();
        (
            v["messageId"].as_i64().unwrap(),
            v["attachmentIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_i64().unwrap())
                .collect(),
        )
    }
}

/// Every message of an inbox, following continuation tokens.
pub async fn all_messages(p: &Provider, bearer: &str, consent: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => {
                format!("/v1/consents/{consent}/messages?limit={limit}&continuationToken={t}")
            }
            None => format!("/v1/consents/{consent}/messages?limit={limit}"),
        };
        let page = p.get(&path, bearer).await.expect(200).json();
        let messages = page["messages"].as_array().unwrap();
        assert!(messages.len() <= limit);
        out.extend(messages.iter().cloned());
        match page["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// Finds a message in a list by title.
pub fn by_title<'a>(messages: &'a [Value], title: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["title"] == title)
        .unwrap_or_else(|| panic!("no message titled {title}"))
}

/// Every event of a provider's feed from `token`; answers the events and the last token.
pub async fn drain_events(p: &Provider, bearer: &str, token: Option<&str>) -> (Vec<Value>, String) {
    let mut token = token.map(str::to_owned);
    let mut out = Vec::new();
    loop {
        let path = match &token {
            Some(t) => format!("/v1/events?continuationToken={t}"),
            None => "/v1/events".to_owned(),
        };
        let page = p.get(&path, bearer).await.expect(200).json();
        let events = page["events"].as_array().unwrap().clone();
        assert!(events.len() <= 1000);
        token = Some(page["continuationToken"].as_str().unwrap().to_owned());
        if events.is_empty() {
            return (out, token.unwrap());
        }
        out.extend(events);
    }
}
