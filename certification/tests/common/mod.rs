//! Deliberately broken stand-in gateways for the suite's self-test: a small TLS proxy in front of
//! the real gateway that misbehaves in one way each. The real gateway is never weakened; the
//! misbehaviour lives only here.
#![allow(dead_code)]

pub mod dvv;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ikkuna_certify::http::Http;
use ikkuna_certify::outcome::Verdict;
use ikkuna_certify::report::Report;
use ikkuna_certify::{certify, launch, Launch, RunOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

/// One way a stand-in gateway misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// The control: passes everything through unchanged.
    Faithful,
    /// Accepts `alg: none` assertions (re-signs them before the real gateway sees them).
    AcceptsAlgNone,
    /// Writes every response body into its data directory.
    WritesBodiesToDisk,
    /// Logs the citizen's identity code.
    LogsIdentityCodes,
    /// Drops `Cache-Control: no-store`.
    DropsNoStore,
    /// Reports a second opening of every message it serves.
    ReportsOpeningTwice,
    /// Skips the consent check: when the gateway refuses, fetches the inbox from DVV anyway.
    SkipsConsent,
    /// Loses an audit line: removes the second line of the audit trail after every answer.
    LosesAuditLine,
    /// Drops `Cache-Control: no-store` from error answers only.
    DropsNoStoreOnErrors,
    /// Answers `HEAD` by doing a `GET` upstream (which records an opening) and sending no body.
    OpensOnHead,
    /// Accepts assertions without `acr` (adds the highest level and re-signs them).
    AcceptsMissingAcr,
    /// Accepts representation claims (strips every non-standard claim and re-signs).
    AcceptsRepresentation,
    /// Accepts assertions of up to ten hours (shortens them and re-signs).
    AcceptsLongLifetime,
    /// Ignores the century sign (maps every 1900s sign to `-` and re-signs).
    IgnoresCenturySign,
    /// Caches every body base64-encoded in its data directory.
    WritesBase64ToDisk,
    /// Does not ask the operator backend for a client certificate although one is configured.
    ClientCertNotEnforced,
    /// Spools each attachment to an unlinked temporary file it keeps open.
    SpillsAttachments,
}

/// Files the spilling mutant keeps open after unlinking them.
static SPILLED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

struct Proxy {
    mutant: Mutant,
    upstream: String,
    http: Http,
    backend_dir: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    dvv: dvv::Dvv,
    written: AtomicUsize,
    audit_file: Option<PathBuf>,
}

/// Runs the suite against the real gateway behind a mutant; answers the report.
pub async fn run_mutant(mutant: Mutant, only: &[&str]) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sandbox, mut target, http) = launch(Launch {
        gateway_bin: gateway_bin(),
        work_dir: dir.path().join("work"),
        env: Vec::new(),
        audit_file: None,
        omit_env: omit_env(),
    })
    .await
    .expect("launch");
    let backend_dir = target.backend.dir.clone();
    let audit_file = target.audit_file.clone();
    // The spilling mutant is a separate process from the gateway: the suite must look at the
    // stand-in's descriptors, so it finds the process by the listening port instead.
    let _gateway = if mutant == Mutant::SpillsAttachments {
        target.process.lock().await.take()
    } else {
        None
    };
    let proxy = Arc::new(Proxy {
        mutant,
        upstream: target.gateway_url.clone(),
        http: Http::with_client_cert(
            &target.backend.path("caCert").expect("ca"),
            http.client_cert.clone(),
        )
        .expect("http"),
        backend_dir: backend_dir.clone(),
        data_dir: target.data_dir.clone(),
        log_file: target.log_file.clone().expect("log"),
        dvv: dvv::Dvv::new(&target.backend),
        written: AtomicUsize::new(0),
        audit_file,
    });
    let operator_ca = target.work_dir.join("operator-pki/operator-ca.pem");
    let addr = serve(proxy, &target.backend, &operator_ca).await;
    target.gateway_url = format!("https://{addr}");
    let opts = RunOptions {
        only: only.iter().map(|s| s.to_string()).collect(),
        expected_failures: Vec::new(),
    };
    let report = certify(target, http, "mutant", &opts)
        .await
        .expect("certify runs");
    report
        .write(&dir.path().join("report"))
        .expect("report written");
    report
}

/// Asserts the requirement failed through `case` (not through an error elsewhere), and the
/// broken gateway is not certified.
pub fn assert_caught(report: &Report, requirement: &str, case: &str) {
    let r = report
        .requirements
        .iter()
        .find(|r| r.requirement.id == requirement)
        .expect("requirement in the report");
    let c = r
        .results
        .iter()
        .find(|c| c.id == case)
        .expect("case in the requirement");
    assert_eq!(
        (r.verdict, c.outcome.verdict),
        (Verdict::Fail, Verdict::Fail),
        "{requirement}/{case} should catch the mutant: {:#?}",
        r.results
    );
    assert!(
        report
            .requirements
            .iter()
            .flat_map(|r| &r.results)
            .all(|c| c.outcome.verdict != Verdict::Error),
        "no case may end in ERROR: the mutant must be caught by a check, not by accident"
    );
    assert!(
        !report.certified(),
        "a broken gateway must not be certified"
    );
}

/// Asserts every selected case passed.
pub fn assert_clean(report: &Report, only: &[&str]) {
    for r in &report.requirements {
        for c in &r.results {
            if only.contains(&c.id.as_str()) || only.contains(&r.requirement.id.as_str()) {
                assert_eq!(
                    c.outcome.verdict,
                    Verdict::Pass,
                    "{}: {:#?}",
                    c.id,
                    c.outcome
                );
            }
        }
    }
}

/// Launch settings to leave out, from `IKKUNA_CERTIFY_OMIT_ENV` (comma-separated `IKKUNA_…`
/// names), for a gateway build that does not know them yet.
pub fn omit_env() -> Vec<String> {
    std::env::var("IKKUNA_CERTIFY_OMIT_ENV")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The gateway binary of this workspace's target directory (built by `cargo build --bins`).
pub fn gateway_bin() -> PathBuf {
    if let Ok(p) = std::env::var("IKKUNA_GATEWAY_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/<test-exe> → target/debug/ikkuna
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let bin = profile_dir.join(format!("ikkuna{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin ikkuna` first (CI does `cargo build --bins`)",
        bin.display()
    );
    bin
}

async fn serve(
    proxy: Arc<Proxy>,
    backend: &ikkuna_certify::target::Backend,
    operator_ca: &std::path::Path,
) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(backend.path("gatewayCert").expect("cert"))
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(backend.path("gatewayKey").expect("key")).expect("key");
    let builder = rustls::ServerConfig::builder();
    let builder = if proxy.mutant == Mutant::ClientCertNotEnforced {
        builder.with_no_client_auth()
    } else {
        // As the real gateway is configured: client certificates from the suite's operator CA.
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(operator_ca).expect("operator CA") {
            roots.add(c.expect("operator CA")).expect("operator CA");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier");
        builder.with_client_cert_verifier(verifier)
    };
    let tls = builder.with_single_cert(certs, key).expect("tls");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| handle(proxy.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn claims_of(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let c = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    Some((
        serde_json::from_slice(&h).ok()?,
        serde_json::from_slice(&c).ok()?,
    ))
}

async fn handle(
    p: Arc<Proxy>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|x| x.to_string())
        .unwrap_or_default();
    let mut token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let claims = token.as_deref().and_then(claims_of);
    if p.mutant == Mutant::AcceptsAlgNone {
        if let Some((h, c)) = &claims {
            if h["alg"] == "none" {
                token = ikkuna_sandbox::sign_operator_jwt(&p.backend_dir, c).ok();
            }
        }
    }
    if let Some((h, c)) = &claims {
        let mut c = c.clone();
        let resign = match p.mutant {
            Mutant::AcceptsMissingAcr if c.get("acr").is_none() => {
                c["acr"] = json!("http://ftn.ficora.fi/2017/loa3");
                true
            }
            Mutant::AcceptsRepresentation => {
                let standard = ["iss", "aud", "sub", "acr", "iat", "nbf", "exp", "jti"];
                let before = c.as_object().map(|o| o.len()).unwrap_or(0);
                if let Some(o) = c.as_object_mut() {
                    o.retain(|k, _| standard.contains(&k.as_str()));
                }
                c.as_object().map(|o| o.len()).unwrap_or(0) != before
            }
            Mutant::AcceptsLongLifetime => {
                let (iat, exp) = (
                    c["iat"].as_i64().unwrap_or(0),
                    c["exp"].as_i64().unwrap_or(0),
                );
                if exp - iat > 600 && exp - iat <= 36_000 {
                    c["exp"] = json!(iat + 600);
                    true
                } else {
                    false
                }
            }
            Mutant::IgnoresCenturySign => {
                let sub = c["sub"].as_str().unwrap_or("").to_owned();
                let mut chars: Vec<char> = sub.chars().collect();
                if chars.len() == 11 && "YXWVU".contains(chars[6]) {
                    chars[6] = '-';
                    c["sub"] = json!(chars.into_iter().collect::<String>());
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        // Only tokens that were genuinely signed are re-signed: forgeries stay forgeries.
        if resign && h["alg"] == "ES256" {
            token = ikkuna_sandbox::sign_operator_jwt(&p.backend_dir, &c).ok();
        }
    }
    if p.mutant == Mutant::LogsIdentityCodes {
        if let Some((_, c)) = &claims {
            let line = format!("{{\"message\":\"request\",\"citizen\":{}}}\n", c["sub"]);
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&p.log_file) {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
    let headers: Vec<(String, String)> = token
        .iter()
        .map(|t| ("authorization".to_owned(), format!("Bearer {t}")))
        .collect();
    let upstream_method = if p.mutant == Mutant::OpensOnHead && method == "HEAD" {
        "GET".to_owned()
    } else {
        method.clone()
    };
    let Ok(mut answer) = p
        .http
        .request(
            &upstream_method,
            &format!("{}{path}", p.upstream),
            &headers,
            None,
        )
        .await
    else {
        return Ok(http::Response::builder()
            .status(502)
            .body(Full::new(Bytes::from_static(b"{\"reason\":\"upstream\"}")))
            .expect("response"));
    };
    let sub = claims
        .as_ref()
        .and_then(|(_, c)| c["sub"].as_str().map(str::to_owned));
    match p.mutant {
        Mutant::WritesBodiesToDisk => {
            let n = p.written.fetch_add(1, Ordering::Relaxed);
            let dir = p.data_dir.join("cache");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{n}.bin")), &answer.body);
        }
        Mutant::DropsNoStore => {
            answer.headers.remove("cache-control");
        }
        Mutant::DropsNoStoreOnErrors if answer.status >= 400 => {
            answer.headers.remove("cache-control");
        }
        Mutant::OpensOnHead if method == "HEAD" => {
            answer.body = Bytes::new();
        }
        Mutant::WritesBase64ToDisk => {
            use base64::Engine;
            let n = p.written.fetch_add(1, Ordering::Relaxed);
            let dir = p.data_dir.join("cache");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(
                dir.join(format!("{n}.b64")),
                base64::engine::general_purpose::STANDARD.encode(&answer.body),
            );
        }
        Mutant::SpillsAttachments if path.contains("/attachments/") => {
            use std::io::Write;
            let n = p.written.fetch_add(1, Ordering::Relaxed);
            let file = p.data_dir.join(format!("../spill-{n}"));
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&file)
            {
                let _ = f.write_all(&answer.body);
                let _ = std::fs::remove_file(&file);
                if let Ok(mut held) = SPILLED.lock() {
                    held.push(f);
                }
            }
        }
        Mutant::ReportsOpeningTwice => {
            let id = path
                .strip_prefix("/v1/messages/")
                .and_then(|r| r.parse::<i64>().ok());
            if let (Some(id), Some(sub), 200) = (id, &sub, answer.status) {
                let _ = p.dvv.report_opening(sub, id).await;
            }
        }
        Mutant::SkipsConsent => {
            if let (Some(sub), 403, true) = (&sub, answer.status, path.starts_with("/v1/messages"))
            {
                let list = p
                    .dvv
                    .inbox_ignoring_consent(sub)
                    .await
                    .unwrap_or(json!({"messages": []}));
                answer.status = 200;
                answer.body = Bytes::from(list.to_string());
            }
        }
        Mutant::LosesAuditLine => {
            if let Some(f) = &p.audit_file {
                if let Ok(text) = std::fs::read_to_string(f) {
                    let mut lines: Vec<&str> = text.lines().collect();
                    if lines.len() > 2 {
                        lines.remove(1);
                        let _ = std::fs::write(f, format!("{}\n", lines.join("\n")));
                    }
                }
            }
        }
        _ => {}
    }
    let mut resp = http::Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            resp = resp.header(k, v);
        }
    }
    let body = answer.body.clone();
    drop(answer);
    Ok(resp.body(Full::new(body)).expect("response"))
}

/// Keeps `BodyExt` in use for readers of this module.
pub async fn collect(b: Incoming) -> Bytes {
    b.collect().await.map(|c| c.to_bytes()).unwrap_or_default()
}
