//! Hardening: slow or oversized request heads are cut off, only modern TLS is spoken, a key file
//! others can read refuses start-up, and SIGTERM lets a slow download in flight finish.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{run_ikkuna, Harness};
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn tls_config(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca").flatten() {
        roots.add(cert).expect("ca cert");
    }
    rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A raw TLS connection to the operator API (HTTP/1.1).
async fn connect(
    h: &Harness,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsStream<TcpStream> {
    let url = url::Url::parse(&h.gateway_url()).expect("gateway url");
    let addr = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut config = tls_config(
        Path::new(h.info["caCert"].as_str().expect("caCert")),
        versions,
    );
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let name = ServerName::try_from(url.host_str().expect("host").to_owned()).expect("name");
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

/// Reads until the server closes the connection (or `secs` pass: then panics).
async fn read_to_close(stream: &mut TlsStream<TcpStream>, secs: u64) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_heads_are_cut_off_and_tls_is_modern() {
    let h = Harness::start(&[("IKKUNA_SERVER_HEADER_READ_TIMEOUT_MS", "500")]).await;

    // Slowloris: half a request head, then silence. The gateway hangs up.
    let mut slow = connect(&h, &[&rustls::version::TLS13]).await;
    slow.write_all(b"GET /v1/consent HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .expect("write");
    slow.flush().await.expect("flush");
    let answer = read_to_close(&mut slow, 10).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "a trickled request is not served"
    );

    // A request head over the limit is refused without being served.
    let mut big = connect(&h, &[&rustls::version::TLS13]).await;
    let header = "a".repeat(100 * 1024);
    let request = format!("GET /v1/consent HTTP/1.1\r\nHost: gateway\r\nX-Big: {header}\r\n\r\n");
    let _ = big.write_all(request.as_bytes()).await;
    let answer = String::from_utf8_lossy(&read_to_close(&mut big, 10).await).into_owned();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "oversized head: {answer:.80}"
    );

    // TLS 1.2 works, with a forward-secret AEAD suite only.
    let tls12 = connect(&h, &[&rustls::version::TLS12]).await;
    let suite = format!(
        "{:?}",
        tls12
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .expect("suite")
            .suite()
    );
    assert!(suite.contains("ECDHE"), "{suite}");
    assert!(
        suite.contains("GCM") || suite.contains("CHACHA20"),
        "{suite}"
    );

    // The gateway still serves well-behaved clients.
    let token = h.token(&h.citizen("Active"));
    assert_eq!(h.call("GET", "/v1/consent", Some(&token)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_can_read_refuses_start_up() {
    let h = Harness::start(&[]).await;
    let key = h.info["gatewayKey"]
        .as_str()
        .expect("gatewayKey")
        .to_owned();
    let config = h.config_path().to_string_lossy().into_owned();
    let set_mode = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    set_mode(0o644);
    let check = run_ikkuna(&["check-config", &config], None).await;
    let run = run_ikkuna(&["run", "--config", &config], None).await;
    set_mode(0o600);
    for (what, out) in [("check-config", check), ("run", run)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} accepted a readable key");
        assert!(stderr.contains("server.tls_key_file"), "{what}: {stderr}");
        assert!(stderr.contains("chmod 600"), "{what}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_download_in_flight_finish() {
    let mut h = Harness::start(&[]).await;
    let citizen = h.citizen("Active");
    // Larger than the socket buffers on both sides, so most of it is still upstream at SIGTERM.
    const SIZE: u64 = 64 << 20;
    let (message, attachment) = h.message_with_attachment(&citizen, SIZE).await;
    let token = h.token(&citizen);
    let response = h
        .open_stream(
            &format!("/v1/messages/{message}/attachments/{attachment}"),
            &token,
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    // Read a first part, then the orchestrator stops the gateway.
    while received < 256 * 1024 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("data in time")
            .expect("a frame")
            .expect("no error");
        received += frame.into_data().map_or(0, |d| d.len() as u64);
    }
    let pid = h.gateway_pid();
    let stopping = tokio::spawn(async move {
        let status = h.terminate_gateway(60).await;
        (h, status)
    });
    // The rest arrives slowly, well after SIGTERM: nothing is cut off.
    let mut since_pause = 0u64;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("data in time")
    {
        let n = frame
            .expect("no error mid-body")
            .into_data()
            .map_or(0, |d| d.len() as u64);
        received += n;
        since_pause += n;
        if since_pause >= 1024 * 1024 {
            since_pause = 0;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(received, SIZE, "the whole attachment arrived");
    let (h, status) = stopping.await.expect("stopper");
    assert!(status.success(), "clean exit after draining: {status:?}");
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_err(),
        "the process is gone"
    );
    let log = h.log_text();
    assert!(log.contains("draining"), "the stop was logged");
    // The audit chain's head is logged at stop, and is what `audit verify` computes.
    let head = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "audit chain head")
        .find_map(|v| v["chain_head"].as_str().map(str::to_owned))
        .expect("chain head logged at stop");
    let out = run_ikkuna(&["audit", "verify", &h.audit_log().to_string_lossy()], None).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("chain head {head}")),
        "{text} vs {head}"
    );
}
