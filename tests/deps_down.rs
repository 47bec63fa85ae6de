//! Dependencies down at start: DVV unreachable (the sandbox stopped, its port closed), DVV's
//! token endpoint failing (503 injected by the sandbox), the JWKS URL failing (a real HTTPS
//! server answering 503). Each time the gateway starts and stays up, `/healthz` answers,
//! `/readyz` says not ready and names the dependency, requests get a 5xx with a reason, and the
//! gateway recovers by itself when the dependency returns — same process, no restart.

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Harness;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

async fn readyz(h: &Harness) -> Option<(u16, Value)> {
    let a = h
        .get_plain(&format!("{}/readyz", h.gateway_admin_url()))
        .await
        .ok()?;
    Some((a.status, a.json()))
}

async fn healthz(h: &Harness) -> u16 {
    h.get_plain(&format!("{}/healthz", h.gateway_admin_url()))
        .await
        .map_or(0, |a| a.status)
}

/// Waits until the admin listener answers `/readyz` at all (the gateway is up, maybe not ready).
async fn wait_up(h: &Harness) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(answer) = readyz(h).await {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never came up; its log:\n{}",
            h.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `/readyz` answers 200; returns how long it took.
async fn wait_ready(h: &Harness, secs: u64, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let answer = readyz(h).await;
        if answer.as_ref().is_some_and(|(s, _)| *s == 200) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not ready after {secs}s: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway process is still running (did not exit, so nothing could crash-loop it).
fn still_running(h: &mut Harness) {
    let child = h.gateway.as_mut().expect("gateway");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the gateway exited; its log:\n{}",
        h.log_text()
    );
}

/// A 5xx with a `{"reason"}` naming what is wrong (no identity code, no token).
fn assert_clear_5xx(a: &common::Answer, citizen: &str, token: &str, words: &[&str]) -> String {
    assert!(
        (500..600).contains(&a.status),
        "{} {:?}",
        a.status,
        a.json()
    );
    let reason = a.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        words.iter().any(|w| reason.contains(w)),
        "reason {reason:?} names none of {words:?}"
    );
    let text = String::from_utf8_lossy(&a.body);
    assert!(!text.contains(citizen) && !text.contains(token));
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvv_unreachable_at_start_then_back() {
    let mut h = Harness::with_sandbox().await;
    h.gateway_env = vec![
        ("IKKUNA_DVV_CALL_TIMEOUT_MS".into(), "3000".into()),
        ("IKKUNA_DVV_MAX_RETRIES".into(), "1".into()),
    ];
    let citizen = h.citizen("Active");
    h.stop_sandbox().await;
    h.spawn_gateway();
    let (status, ready) = wait_up(&h).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap_or_default().contains("DVV"),
        "{ready}"
    );
    assert_ne!(ready["dvv"], "authenticated", "{ready}");
    assert_eq!(healthz(&h).await, 200, "liveness stays up");
    let token = h.token(&citizen);
    let list = h.call("GET", "/v1/messages", Some(&token)).await;
    let reason = assert_clear_5xx(&list, &citizen, &token, &["DVV"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_running(&mut h);
    let pid = h.gateway_pid();

    // DVV comes back on the same port (the sandbox remembers its ports).
    let sandbox = ikkuna_sandbox::start(ikkuna_sandbox::SandboxOptions::new(h.dir.path()))
        .await
        .expect("sandbox restarts");
    h.sandbox = Some(sandbox);
    let recovery = wait_ready(&h, 30, "after DVV returned").await;
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    assert_eq!(h.gateway_pid(), pid, "no restart");
    eprintln!(
        "deps_down figures: DVV down at start -> {} {reason:?}; ready {:.1}s after DVV returned",
        list.status,
        recovery.as_secs_f64()
    );
    h.kill_gateway().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failing_at_start_then_back() {
    let mut h = Harness::with_sandbox().await;
    let plan = h
        .sandbox_admin(
            "POST",
            "/admin/faults",
            Some(json!({"durationMs": 120_000, "errorRate": 1.0, "paths": ["/v1/token"]})),
        )
        .await;
    assert_eq!(plan.status, 200, "{:?}", plan.json());
    h.gateway_env = vec![("IKKUNA_DVV_MAX_RETRIES".into(), "1".into())];
    h.spawn_gateway();
    let (status, ready) = wait_up(&h).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap_or_default().contains("DVV"),
        "{ready}"
    );
    assert_eq!(ready["store"], "writable", "{ready}");
    assert_eq!(healthz(&h).await, 200);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let list = h.call("GET", "/v1/messages", Some(&token)).await;
    let reason = assert_clear_5xx(&list, &citizen, &token, &["authenticate", "DVV"]);
    still_running(&mut h);
    let pid = h.gateway_pid();

    let cleared = h.sandbox_admin("DELETE", "/admin/faults", None).await;
    assert!(cleared.status < 300);
    let recovery = wait_ready(&h, 30, "after the token endpoint recovered").await;
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    assert_eq!(h.gateway_pid(), pid, "no restart");
    eprintln!(
        "deps_down figures: token endpoint 503 at start -> {} {reason:?}; ready {:.1}s after it recovered",
        list.status,
        recovery.as_secs_f64()
    );
    h.kill_gateway().await;
}

/// A real HTTPS JWKS endpoint (certificate from the sandbox CA) answering the operator's JWKS, or
/// the status the test sets.
struct JwksServer {
    url: String,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(cert: &Path, key: &Path, jwks: Bytes, status: u16) -> JwksServer {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert pem");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "https://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let status = Arc::new(AtomicU16::new(status));
        let hits = Arc::new(AtomicU64::new(0));
        let (shared, counted) = (status.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, status, hits, jwks) = (
                    acceptor.clone(),
                    shared.clone(),
                    counted.clone(),
                    jwks.clone(),
                );
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                        let (status, jwks) = (status.load(Ordering::SeqCst), jwks.clone());
                        hits.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let body = if status == 200 {
                                jwks
                            } else {
                                Bytes::from_static(b"{\"error\":\"down\"}")
                            };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        JwksServer {
            url,
            status,
            hits,
            task,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_failing_at_start_then_back() {
    let mut h = Harness::with_sandbox().await;
    let info = h.info.clone();
    let path = |key: &str| PathBuf::from(info[key].as_str().expect(key));
    let jwks = Bytes::from(std::fs::read(path("operatorJwks")).expect("jwks"));
    let server = JwksServer::start(&path("gatewayCert"), &path("gatewayKey"), jwks, 503).await;
    // The sandbox's configuration names a JWKS file; this gateway takes its keys from the URL.
    let config = h.config_path();
    let text = std::fs::read_to_string(&config).expect("ikkuna.toml");
    let rewritten: String = text
        .lines()
        .map(|l| {
            if l.starts_with("jwks_file") {
                format!(
                    "jwks_url = \"{}\"\njwks_ca = \"{}\"",
                    server.url,
                    path("caCert").display()
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(rewritten.contains("jwks_url"), "config rewritten");
    std::fs::write(&config, rewritten).expect("config");
    h.spawn_gateway();
    let (status, ready) = wait_up(&h).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["assertionKeys"], "not loaded", "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("JWKS"),
        "{ready}"
    );
    assert_eq!(healthz(&h).await, 200);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let list = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(list.status, 503, "{:?}", list.json());
    let reason = assert_clear_5xx(&list, &citizen, &token, &["JWKS", "signing keys"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_running(&mut h);
    let pid = h.gateway_pid();

    server.status.store(200, Ordering::SeqCst);
    // Recovery by the gateway's own retry: /readyz is not polled until the keys are in.
    let started = Instant::now();
    while !h.log_text().contains("citizen assertion keys loaded") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "keys never loaded: {}",
            h.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = started.elapsed();
    wait_ready(&h, 10, "after the JWKS URL recovered").await;
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    assert_eq!(h.gateway_pid(), pid, "no restart");
    eprintln!(
        "deps_down figures: JWKS URL 503 at start -> {} {reason:?}; keys loaded {:.1}s after the URL recovered ({} fetches)",
        list.status,
        recovery.as_secs_f64(),
        server.hits.load(Ordering::SeqCst)
    );
    h.kill_gateway().await;
}
