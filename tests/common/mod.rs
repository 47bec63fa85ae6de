//! End-to-end harness: the real sandbox (in process, real mutual TLS) and the real gateway binary
//! (a child process, so it can be measured, killed and restarted), talked to over real sockets.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A captured answer.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running sandbox plus a gateway child process configured from the sandbox's `ikkuna.toml`.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub sandbox: Option<ikkuna_sandbox::RunningSandbox>,
    pub info: Value,
    pub gateway: Option<tokio::process::Child>,
    pub client: HttpsClient,
    pub gateway_env: Vec<(String, String)>,
}

impl Harness {
    /// Starts the sandbox and the gateway with extra `IKKUNA_…` environment overrides.
    pub async fn start(env: &[(&str, &str)]) -> Harness {
        let mut h = Harness::with_sandbox().await;
        h.gateway_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        h.start_gateway().await;
        h
    }

    /// Starts only the sandbox; the caller sets `gateway_env` and then starts the gateway.
    pub async fn with_sandbox() -> Harness {
        Harness::with_sandbox_options(|_| {}).await
    }

    /// Starts only the sandbox, with its options adjusted (e.g. a short settlement window).
    pub async fn with_sandbox_options(
        adjust: impl FnOnce(&mut ikkuna_sandbox::SandboxOptions),
    ) -> Harness {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = ikkuna_sandbox::SandboxOptions::new(dir.path());
        adjust(&mut options);
        let sandbox = ikkuna_sandbox::start(options)
            .await
            .expect("sandbox starts");
        let info: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("sandbox.json")).expect("sandbox.json"),
        )
        .expect("sandbox.json is JSON");
        let client = https_client(Path::new(info["caCert"].as_str().expect("caCert")));
        Harness {
            dir,
            sandbox: Some(sandbox),
            info,
            gateway: None,
            client,
            gateway_env: Vec::new(),
        }
    }

    /// Stops the sandbox DVV backend (DVV down).
    pub async fn stop_sandbox(&mut self) {
        if let Some(s) = self.sandbox.take() {
            s.shutdown().await;
        }
    }

    pub fn gateway_url(&self) -> String {
        self.info["gatewayUrl"]
            .as_str()
            .expect("gatewayUrl")
            .to_owned()
    }

    pub fn admin_url(&self) -> String {
        self.info["adminUrl"].as_str().expect("adminUrl").to_owned()
    }

    pub fn gateway_log(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    pub fn config_path(&self) -> PathBuf {
        PathBuf::from(self.info["gatewayConfig"].as_str().expect("gatewayConfig"))
    }

    /// The gateway's own admin listener, read from its configuration file.
    pub fn gateway_admin_url(&self) -> String {
        let text = std::fs::read_to_string(self.config_path()).expect("ikkuna.toml");
        let cfg: toml::Table = text.parse().expect("toml");
        format!(
            "http://{}",
            cfg["admin"]["listen"].as_str().expect("admin.listen")
        )
    }

    /// Starts the gateway binary without waiting for it to be ready (to kill it mid-work).
    pub fn spawn_gateway(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.gateway_log())
            .expect("log file");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ikkuna"));
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .env("IKKUNA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.gateway_env {
            cmd.env(k, v);
        }
        self.gateway = Some(cmd.spawn().expect("gateway binary starts"));
    }

    /// Starts (or restarts) the gateway binary and waits until it is ready.
    pub async fn start_gateway(&mut self) {
        self.spawn_gateway();
        let ready = format!("{}/readyz", self.gateway_admin_url());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = self.get_plain(&ready).await {
                if a.status == 200 {
                    return;
                }
            }
            // A gateway that refused its configuration has exited: say so now, not in 30 s.
            if let Some(status) = self
                .gateway
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "gateway exited ({status}) before it became ready; its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not become ready; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn gateway_pid(&self) -> u32 {
        self.gateway
            .as_ref()
            .and_then(|c| c.id())
            .expect("gateway running")
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub async fn kill_gateway(&mut self) {
        if let Some(mut child) = self.gateway.take() {
            child.kill().await.expect("kill");
            let _ = child.wait().await;
        }
    }

    /// Every seeded citizen whose consent is in `consent` state, in seed order.
    pub fn citizens(&self, consent: &str) -> Vec<String> {
        self.info["citizens"]
            .as_array()
            .expect("citizens")
            .iter()
            .filter(|c| c["consent"] == consent)
            .map(|c| c["id"].as_str().expect("citizen id").to_owned())
            .collect()
    }

    pub fn citizen(&self, consent: &str) -> String {
        self.info["citizens"]
            .as_array()
            .expect("citizens")
            .iter()
            .find(|c| c["consent"] == consent)
            .and_then(|c| c["id"].as_str())
            .expect("a citizen in that consent state")
            .to_owned()
    }

    /// The active citizen whose inbox has the most kinds of mail (Verifiable, attachments).
    pub async fn richest_citizen(&self) -> String {
        let mut best = (0, String::new());
        for c in self.info["citizens"].as_array().expect("citizens") {
            if c["consent"] != "Active" {
                continue;
            }
            let id = c["id"].as_str().expect("id").to_owned();
            let page = self
                .call("GET", "/v1/messages?limit=100", Some(&self.token(&id)))
                .await
                .json();
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            let verifiable = messages
                .iter()
                .any(|m| m["messageServiceType"] == "Verifiable");
            let attachments = messages
                .iter()
                .any(|m| m["attachmentCount"].as_i64().unwrap_or(0) > 0);
            let kinds = usize::from(verifiable) * 2 + usize::from(attachments);
            let score = kinds * 1000 + messages.len();
            if score > best.0 {
                best = (score, id);
            }
        }
        assert!(
            best.0 >= 3000,
            "a seeded citizen has Verifiable mail and attachments"
        );
        best.1
    }

    /// A good citizen assertion, minted the way the operator's identity service would.
    pub fn token(&self, citizen: &str) -> String {
        self.assertion(citizen, |_| {})
    }

    /// A citizen assertion with claims adjusted by `edit`, signed with the operator key.
    pub fn assertion(&self, citizen: &str, edit: impl FnOnce(&mut Value)) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": self.info["operatorIssuer"],
            "aud": self.info["gatewayAudience"],
            "sub": citizen,
            "acr": "http://ftn.ficora.fi/2017/loa3",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        edit(&mut claims);
        self.sign(&claims, None)
    }

    /// Signs claims with the operator identity key (ES256, its JWKS kid unless overridden).
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let key_pem = std::fs::read(self.info["operatorSigningKey"].as_str().expect("key"))
            .expect("operator key");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&key_pem).expect("EC key");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(
            kid.map(str::to_owned)
                .unwrap_or_else(|| self.operator_kid()),
        );
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    pub fn operator_kid(&self) -> String {
        let jwks: Value = serde_json::from_slice(
            &std::fs::read(self.info["operatorJwks"].as_str().expect("jwks")).expect("jwks"),
        )
        .expect("jwks json");
        jwks["keys"][0]["kid"].as_str().expect("kid").to_owned()
    }

    /// An operator-API call with a bearer token.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Answer {
        self.call_with(method, path, token, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req =
            http::Request::builder()
                .method(method)
                .uri(format!("{}{}", self.gateway_url(), path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let resp = self.client.request(req).await.expect("gateway answers");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// Starts a streamed call and returns the response without reading its body.
    pub async fn open_stream(
        &self,
        path: &str,
        token: &str,
    ) -> http::Response<hyper::body::Incoming> {
        let req = http::Request::builder()
            .uri(format!("{}{}", self.gateway_url(), path))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.client.request(req).await.expect("gateway answers")
    }

    pub async fn get_plain(&self, url: &str) -> Result<Answer, String> {
        self.plain("GET", url, None).await
    }

    /// Calls the sandbox admin API (plain HTTP on loopback).
    pub async fn sandbox_admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.plain(method, &format!("{}{}", self.admin_url(), path), body)
            .await
            .expect("sandbox admin answers")
    }

    async fn plain(&self, method: &str, url: &str, body: Option<Value>) -> Result<Answer, String> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Revokes the citizen's consent for provider-a at DVV (the sandbox admin API).
    pub async fn revoke_consent(&self, citizen: &str) {
        let revoked = self
            .sandbox_admin(
                "POST",
                "/admin/consents/revoke",
                Some(json!({"endUserId": citizen, "providerId": "provider-a"})),
            )
            .await;
        assert_eq!(revoked.status, 200, "{:?}", revoked.json());
    }

    /// Openings DVV has received, as the sandbox recorded them.
    pub async fn dvv_openings(&self) -> Vec<Value> {
        let a = self.sandbox_admin("GET", "/admin/openings", None).await;
        list_of(a.json(), "openings")
    }

    /// Calls a provider made on the DVV listener.
    pub async fn dvv_calls(&self, provider: &str) -> Vec<Value> {
        let a = self
            .sandbox_admin("GET", &format!("/admin/calls?providerId={provider}"), None)
            .await;
        list_of(a.json(), "calls")
    }

    /// Waits until `pred` holds for DVV's openings, or panics after `secs`.
    pub async fn wait_openings(&self, secs: u64, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let openings = self.dvv_openings().await;
            if pred(&openings) {
                return openings;
            }
            assert!(
                Instant::now() < deadline,
                "openings never matched: {openings:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the gateway logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.gateway_log()).unwrap_or_default()
    }
}

/// Accepts either a bare JSON array or an object holding one under `key`.
pub fn list_of(v: Value, key: &str) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove(key) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A TLS client configuration trusting only the sandbox CA (no ALPN set).
pub fn tls_client_config(ca: &Path) -> rustls::ClientConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca").flatten() {
        roots.add(cert).expect("ca cert");
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A client trusting only the sandbox CA (which issued the gateway's certificate too).
pub fn https_client(ca: &Path) -> HttpsClient {
    let tls = tls_client_config(ca);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Memory of a process from /proc: (current RSS, peak RSS) in KiB.
/// Rate limits raised out of the way, for tests whose load is not about limits.
pub const NO_LIMITS: &[(&str, &str)] = &[
    ("IKKUNA_LIMITS_CITIZEN_PER_MINUTE", "1000000"),
    ("IKKUNA_LIMITS_CITIZEN_BURST", "100000"),
    ("IKKUNA_LIMITS_CLIENT_PER_SECOND", "1000000"),
    ("IKKUNA_LIMITS_CLIENT_BURST", "100000"),
    ("IKKUNA_LIMITS_DVV_PER_SECOND", "1000000"),
    ("IKKUNA_LIMITS_DVV_BURST", "100000"),
];

/// Open file descriptors of a process (0 when it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Regular files a process holds open (sockets, pipes and anonymous memory excluded).
pub fn open_regular_files(pid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in entries.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let s = target.to_string_lossy();
                if s.starts_with('/') && !s.starts_with("/dev/") && !s.starts_with("/proc/") {
                    out.push(target);
                }
            }
        }
    }
    out
}

impl Harness {
    /// Creates a message for `citizen` at DVV with one attachment of `size` bytes (content is
    /// generated, never stored): (messageId, attachmentId).
    pub async fn message_with_attachment(&self, citizen: &str, size: u64) -> (i64, i64) {
        let created = self
            .sandbox_admin(
                "POST",
                "/admin/messages",
                Some(json!({
                    "endUserId": citizen,
                    "title": "Iso liite",
                    "body": "x",
                    "attachments": [{"name": "iso.bin", "mediaType": "application/octet-stream", "size": size}],
                })),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json());
        let v = created.json();
        (
            v["messageId"].as_i64().expect("messageId"),
            v["attachmentIds"][0].as_i64().expect("attachmentId"),
        )
    }

    /// The gateway's active audit file, as `sandbox.json` names it.
    pub fn audit_log(&self) -> PathBuf {
        PathBuf::from(self.info["auditLog"].as_str().expect("auditLog"))
    }

    /// The audit file's records as JSON values.
    pub fn audit_records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Scrapes the gateway's `/metrics`.
    pub async fn scrape_metrics(&self) -> String {
        let url = format!("{}/metrics", self.gateway_admin_url());
        let a = self.get_plain(&url).await.expect("metrics answer");
        assert_eq!(a.status, 200, "metrics status");
        String::from_utf8(a.body.to_vec()).expect("metrics are UTF-8")
    }

    /// SIGTERM: the orchestrator's stop. Returns the exit status within `secs`.
    pub async fn terminate_gateway(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut child = self.gateway.take().expect("gateway running");
        let pid = child.id().expect("pid");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        tokio::time::timeout(Duration::from_secs(secs), child.wait())
            .await
            .expect("gateway exits after SIGTERM")
            .expect("wait")
    }
}

/// Runs the `ikkuna` binary with `args` (and optional standard input), with a timeout.
pub async fn run_ikkuna(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ikkuna"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("ikkuna runs");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.expect("stdin");
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ikkuna finishes in time")
        .expect("output")
}
