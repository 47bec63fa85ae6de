//! Bad neighbours: clients that stop reading, sockets that say nothing, trickled headers and a
//! revocation in the middle of a download cannot hold back another citizen's window.
//!
//! One scenario, run twice: with the gateway's deadlines as an operator would set them, every
//! bad neighbour is cut within its deadline while a well-behaved citizen is served; with the
//! deadlines pushed out of reach (the protections "off"), the same scenario's checks fail — so
//! the first run cannot pass by accident. The DVV bulkhead (attachment bodies on connections of
//! their own) has no switch: `stalled_readers_do_not_block_dvv_calls` shows what it protects,
//! and it fails against a gateway that multiplexes attachment bodies onto its shared HTTP/2
//! connection (checked by hand when the bulkhead was built; see RELIABILITY.md).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, NO_LIMITS};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Deadlines of the protected run (short, so the test is quick; the defaults are longer).
const HEADER_READ_MS: u64 = 2_000;
const WRITE_IDLE_MS: u64 = 3_000;
const IDLE_MS: u64 = 5_000;

/// Connection caps that the bad neighbours exceed: without deadlines they hold every slot.
const API_SLOTS: usize = 170;
const ADMIN_SLOTS: usize = 16;

const STALLED_DOWNLOADS: usize = 8;
const SILENT_API: usize = 160;
const SILENT_ADMIN: usize = 40;
const SLOW_HEADERS: usize = 20;

/// How long the well-behaved citizen is measured while the bad neighbours are there.
const PHASE: Duration = Duration::from_secs(10);

fn env(protected: bool) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&str, String)> = NO_LIMITS
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let (header, write_idle, idle) = if protected {
        (HEADER_READ_MS, WRITE_IDLE_MS, IDLE_MS)
    } else {
        (600_000, 600_000, 3_600_000)
    };
    env.extend([
        ("IKKUNA_SERVER_HEADER_READ_TIMEOUT_MS", header.to_string()),
        ("IKKUNA_SERVER_TLS_HANDSHAKE_TIMEOUT_MS", header.to_string()),
        (
            "IKKUNA_SERVER_WRITE_IDLE_TIMEOUT_MS",
            write_idle.to_string(),
        ),
        ("IKKUNA_SERVER_IDLE_TIMEOUT_MS", idle.to_string()),
        ("IKKUNA_SERVER_MAX_CONNECTIONS", API_SLOTS.to_string()),
        ("IKKUNA_ADMIN_MAX_CONNECTIONS", ADMIN_SLOTS.to_string()),
        // Only the events feed can enforce a revocation within the test's 2 s.
        ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "120".to_owned()),
    ]);
    env
}

async fn start(protected: bool) -> Harness {
    start_with(protected, &[]).await
}

async fn start_with(protected: bool, extra: &[(&str, &str)]) -> Harness {
    let mut h = Harness::with_sandbox().await;
    h.gateway_env = env(protected)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    h.start_gateway().await;
    h
}

fn addr_of(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("url");
    format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    )
    .parse()
    .expect("socket address")
}

fn tls_connector(h: &Harness, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut config =
        common::tls_client_config(Path::new(h.info["caCert"].as_str().expect("caCert")));
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls(h: &Harness, alpn: &[u8]) -> Tls {
    let addr = addr_of(&h.gateway_url());
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(
        Duration::from_secs(10),
        tls_connector(h, alpn).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

/// Reads (and discards) until the peer closes; the time that took from `opened`, or `None` if
/// it did not happen within `limit`.
/// A connection still open at its limit is held (not dropped) until `release` fires, so that the
/// gateway's slots stay taken while the scenario checks whether anyone else is served.
async fn closed_after<S: AsyncRead + Unpin>(
    mut stream: S,
    opened: Instant,
    limit: Duration,
    mut release: Release,
) -> Option<Duration> {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::from_std(opened + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                let _ = release.wait_for(|go| *go).await;
                drop(stream);
                return None;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Fires when the scenario lets go of the connections it held.
type Release = tokio::sync::watch::Receiver<bool>;

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// A HEADERS frame on stream 1 without END_HEADERS (flags 0), carrying one indexed field
/// (`:method GET`): the header block is never finished.
const H2_OPEN_HEADERS: &[u8] = &[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82];

/// One silent or unfinished connection: opened, brought to its state, then left alone; the
/// task answers how long the gateway took to close it.
fn silent(
    h: &Harness,
    kind: usize,
    limit: Duration,
    release: Release,
) -> JoinHandle<Option<Duration>> {
    let api = addr_of(&h.gateway_url());
    let (h2, h1) = (tls_connector(h, b"h2"), tls_connector(h, b"http/1.1"));
    tokio::spawn(async move {
        let opened = Instant::now();
        let tcp = TcpStream::connect(api).await.expect("connect");
        let name = ServerName::IpAddress(api.ip().into());
        match kind % 5 {
            // TCP accepted, no TLS ClientHello.
            0 => closed_after(tcp, opened, limit, release).await,
            // TLS done, then nothing.
            1 => {
                let s = h1.connect(name, tcp).await.ok()?;
                closed_after(s, opened, limit, release).await
            }
            // Half an HTTP/2 preface.
            2 => {
                let mut s = h2.connect(name, tcp).await.ok()?;
                s.write_all(&H2_PREFACE[..10]).await.ok()?;
                s.flush().await.ok()?;
                closed_after(s, opened, limit, release).await
            }
            // A full preface and SETTINGS, then idle.
            3 => {
                let mut s = h2.connect(name, tcp).await.ok()?;
                s.write_all(H2_PREFACE).await.ok()?;
                s.write_all(H2_SETTINGS).await.ok()?;
                s.flush().await.ok()?;
                closed_after(s, opened, limit, release).await
            }
            // A header block that never ends.
            _ => {
                let mut s = h2.connect(name, tcp).await.ok()?;
                s.write_all(H2_PREFACE).await.ok()?;
                s.write_all(H2_SETTINGS).await.ok()?;
                s.write_all(H2_OPEN_HEADERS).await.ok()?;
                s.flush().await.ok()?;
                closed_after(s, opened, limit, release).await
            }
        }
    })
}

/// A plain TCP connection to the admin listener that says nothing.
fn silent_admin(
    admin: SocketAddr,
    limit: Duration,
    release: Release,
) -> JoinHandle<Option<Duration>> {
    tokio::spawn(async move {
        let opened = Instant::now();
        let tcp = TcpStream::connect(admin).await.expect("connect admin");
        closed_after(tcp, opened, limit, release).await
    })
}

/// A request head trickled one byte every 500 ms.
fn slow_headers(h: &Harness, limit: Duration, release: Release) -> JoinHandle<Option<Duration>> {
    let connector = tls_connector(h, b"http/1.1");
    let api = addr_of(&h.gateway_url());
    tokio::spawn(async move {
        let opened = Instant::now();
        let tcp = TcpStream::connect(api).await.expect("connect");
        let s = connector
            .connect(ServerName::IpAddress(api.ip().into()), tcp)
            .await
            .ok()?;
        let (read, mut write) = tokio::io::split(s);
        let trickle = tokio::spawn(async move {
            let _ = write
                .write_all(b"GET /v1/consent HTTP/1.1\r\nHost: gateway\r\n")
                .await;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if write.write_all(b"X").await.is_err() || write.flush().await.is_err() {
                    return;
                }
            }
        });
        let closed = closed_after(read, opened, limit, release).await;
        trickle.abort();
        closed
    })
}

/// Starts a download and stops reading after its first 64 KiB: the stream stays open, unread.
async fn stalled_download(h: &Harness, path: &str, token: &str) -> Tls {
    let mut s = tls(h, b"http/1.1").await;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("request");
    s.flush().await.expect("flush");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while got.len() < 64 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(n > 0, "the download started");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "download answered 200: {:?}",
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
    s
}

async fn big_message(h: &Harness, citizen: &str, size: u64) -> (i64, i64) {
    h.message_with_attachment(citizen, size).await
}

/// A metric's value summed over the label sets whose text contains every one of `labels`.
fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one run of the scenario observed.
#[derive(Debug)]
struct Observed {
    /// Latencies of the well-behaved citizen's calls, and how many failed.
    latencies: Vec<Duration>,
    failures: Vec<String>,
    /// Longest time to close a silent or slow connection, and how many stayed open.
    silent_api_max: Option<Duration>,
    silent_api_open: usize,
    silent_admin_max: Option<Duration>,
    silent_admin_open: usize,
    slow_max: Option<Duration>,
    slow_open: usize,
    /// Health answers during the phase (status 200 within 10 s).
    health_ok: usize,
    health_failed: usize,
    /// Time from stalling to the last of the stalled downloads being cut, if all were.
    stalled_cut_after: Option<Duration>,
    /// Time from the revocation at DVV to the first refusal.
    revocation_after: Option<Duration>,
    /// Whether a fresh connection was served after the deadlines had passed.
    fresh_connection_served: bool,
}

impl Observed {
    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(Duration::MAX)
    }
}

async fn scenario(h: &Harness) -> Observed {
    let good = "121262-969N"; // Paavo Paljonposti: a large inbox
    let revoked = "090904A941E"; // Emma Uusimerkki: revoked mid-run
    let staller = "150385-9046"; // Aino Testinen: downloads and stops reading
    let good_token = h.token(good);
    let revoked_token = h.token(revoked);
    let staller_token = h.token(staller);
    // Warm up: the well-behaved citizen's keep-alive connection, and Emma's consent cached as
    // active for 120 s (so only the feed can end it in time).
    let page = h
        .call("GET", "/v1/messages?limit=20", Some(&good_token))
        .await;
    assert_eq!(page.status, 200, "{:?}", page.json());
    let message_ids: Vec<i64> = page.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["messageServiceType"] == "Normal")
        .filter_map(|m| m["messageId"].as_i64())
        .collect();
    assert!(!message_ids.is_empty());
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&revoked_token))
            .await
            .status,
        200
    );
    let (big_m, big_a) = big_message(h, staller, 1 << 30).await;

    // --- the bad neighbours arrive ---
    let mut stalled = Vec::new();
    for _ in 0..=STALLED_DOWNLOADS {
        let path = format!("/v1/messages/{big_m}/attachments/{big_a}");
        stalled.push(stalled_download(h, &path, &staller_token).await);
    }
    let stalled_at = Instant::now();
    // How long until the gateway has cut them all, watched from its metrics meanwhile.
    let cuts = {
        let url = format!("{}/metrics", h.gateway_admin_url());
        let ca = std::path::PathBuf::from(h.info["caCert"].as_str().expect("caCert"));
        tokio::spawn(async move {
            let client = common::https_client(&ca);
            while stalled_at.elapsed() < PHASE + Duration::from_secs(5) {
                let req = http::Request::builder()
                    .uri(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .expect("request");
                if let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(2), client.request(req)).await
                {
                    use http_body_util::BodyExt;
                    let text = r
                        .into_body()
                        .collect()
                        .await
                        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        .unwrap_or_default();
                    let cut = metric_sum(
                        &text,
                        "ikkuna_connections_closed_total",
                        &["listener=\"api\"", "reason=\"write_stalled\""],
                    );
                    if cut >= (STALLED_DOWNLOADS + 1) as f64 {
                        return Some(stalled_at.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        })
    };
    let watch_limit = Duration::from_secs(15);
    let (release, held) = tokio::sync::watch::channel(false);
    let silent_api: Vec<_> = (0..SILENT_API)
        .map(|i| silent(h, i, watch_limit, held.clone()))
        .collect();
    let admin = addr_of(&h.gateway_admin_url());
    let silent_admin_tasks: Vec<_> = (0..SILENT_ADMIN)
        .map(|_| silent_admin(admin, watch_limit, held.clone()))
        .collect();
    let slow: Vec<_> = (0..SLOW_HEADERS)
        .map(|_| slow_headers(h, watch_limit, held.clone()))
        .collect();

    // Health, checked once a second on fresh connections.
    let health_url = h.gateway_admin_url();
    let ca = std::path::PathBuf::from(h.info["caCert"].as_str().expect("caCert"));
    let health = tokio::spawn(async move {
        let (mut ok, mut failed) = (0, 0);
        let started = Instant::now();
        while started.elapsed() < PHASE {
            for path in ["/healthz", "/readyz"] {
                let req = http::Request::builder()
                    .uri(format!("{health_url}{path}"))
                    .header("connection", "close")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .expect("request");
                // A client of its own each time: a new connection, as a prober makes.
                let client = common::https_client(&ca);
                match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                    Ok(Ok(r)) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        (ok, failed)
    });

    // --- the well-behaved citizen, and a revocation through the feed ---
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut revoked_at: Option<Instant> = None;
    let mut revocation_after = None;
    let phase_start = Instant::now();
    let mut i = 0usize;
    while phase_start.elapsed() < PHASE {
        let path = if i % 2 == 0 {
            "/v1/messages?limit=20".to_owned()
        } else {
            format!("/v1/messages/{}", message_ids[i / 2 % message_ids.len()])
        };
        i += 1;
        let started = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(10),
            h.call("GET", &path, Some(&good_token)),
        )
        .await
        {
            Ok(a) if a.status == 200 => latencies.push(started.elapsed()),
            Ok(a) => failures.push(format!("{path}: {} {:?}", a.status, a.json())),
            Err(_) => failures.push(format!("{path}: no answer in 10 s")),
        }
        if revoked_at.is_none() && phase_start.elapsed() > Duration::from_secs(3) {
            h.revoke_consent(revoked).await;
            revoked_at = Some(Instant::now());
        }
        if let (Some(at), None) = (revoked_at, revocation_after) {
            // The consent state comes from the gateway's cache (120 s): it turns only when the
            // events feed brings the revocation. No message call is made for Emma, since DVV's
            // own 403 would close the window without the feed.
            let a = h.call("GET", "/v1/consent", Some(&revoked_token)).await;
            if a.json()["state"] == "Revoked" {
                revocation_after = Some(at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every stalled download must have been cut. Over HTTP/1.1 its connection's write deadline
    // closes it (each stalled client holds one connection); the stream's own cut (counted as
    // `ikkuna_streams_cut_total`) is what HTTP/2 needs, see `an_unread_http2_stream_is_cut`.
    let stalled_cut_after = cuts.await.expect("metrics watcher");
    // A new connection is served once the deadlines have freed the slots.
    let fresh = common::https_client(Path::new(h.info["caCert"].as_str().expect("caCert")));
    let fresh_connection_served = {
        let req = http::Request::builder()
            .uri(format!("{}/v1/messages?limit=1", h.gateway_url()))
            .header("authorization", format!("Bearer {good_token}"))
            .header("connection", "close")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        matches!(
            tokio::time::timeout(Duration::from_secs(5), fresh.request(req)).await,
            Ok(Ok(r)) if r.status() == 200
        )
    };

    let _ = release.send(true);
    // From the stalled clients' side: what is left in their buffers, then the end — never the
    // whole gigabyte.
    for s in stalled {
        let mut s = s;
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let ended = loop {
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => total += n as u64,
            }
        };
        if stalled_cut_after.is_some() {
            assert!(ended, "a cut download's connection is closed");
            assert!(total < 1 << 30, "a cut download never looks complete");
        }
    }

    let collect = |tasks: Vec<JoinHandle<Option<Duration>>>| async move {
        let mut max = Some(Duration::ZERO);
        let mut open = 0;
        for t in tasks {
            match t.await.expect("task") {
                Some(d) => max = max.map(|m| m.max(d)),
                None => open += 1,
            }
        }
        (if open > 0 { None } else { max }, open)
    };
    let (silent_api_max, silent_api_open) = collect(silent_api).await;
    let (silent_admin_max, silent_admin_open) = collect(silent_admin_tasks).await;
    let (slow_max, slow_open) = collect(slow).await;
    let (health_ok, health_failed) = health.await.expect("health task");

    Observed {
        latencies,
        failures,
        silent_api_max,
        silent_api_open,
        silent_admin_max,
        silent_admin_open,
        slow_max,
        slow_open,
        health_ok,
        health_failed,
        stalled_cut_after,
        revocation_after,
        fresh_connection_served,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_neighbours_hold_back_no_one() {
    let h = start(true).await;
    let seen = scenario(&h).await;
    println!(
        "protected run: {seen:#?}\nwell-behaved p99: {:?}",
        seen.p99()
    );
    assert!(
        seen.failures.is_empty(),
        "well-behaved calls failed: {:?}",
        seen.failures
    );
    assert!(
        seen.latencies.len() >= 20,
        "the citizen was served: {seen:?}"
    );
    assert!(
        seen.p99() < Duration::from_secs(1),
        "well-behaved p99 {:?} (want < 1 s)",
        seen.p99()
    );
    assert_eq!(seen.health_failed, 0, "/healthz and /readyz kept answering");
    assert!(seen.health_ok >= 10);
    let revocation = seen.revocation_after.expect("the revocation was enforced");
    assert!(
        revocation < Duration::from_secs(2),
        "revocation through the feed took {revocation:?}"
    );
    let stalled = seen
        .stalled_cut_after
        .expect("every stalled download was cut");
    assert!(
        stalled < Duration::from_millis(WRITE_IDLE_MS) + PHASE,
        "{stalled:?}"
    );
    // Silent sockets: the first batch is closed at the header deadline, those that waited in
    // the kernel's accept queue for a slot after the batches before them.
    let api = seen
        .silent_api_max
        .expect("every silent API socket was closed");
    assert!(
        api < Duration::from_secs(10),
        "silent API sockets closed after {api:?}"
    );
    let admin = seen
        .silent_admin_max
        .expect("every silent admin socket was closed");
    assert!(
        admin < Duration::from_secs(12),
        "silent admin sockets closed after {admin:?}"
    );
    let slow = seen.slow_max.expect("every slow-header client was closed");
    assert!(
        slow < Duration::from_secs(10),
        "slow headers closed after {slow:?}"
    );
    assert!(seen.fresh_connection_served, "a new connection is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_deadlines_the_same_neighbours_do_hold_everyone_back() {
    let h = start(false).await;
    let seen = scenario(&h).await;
    println!("unprotected run: {seen:#?}");
    // The same checks as the protected run, each of which fails here.
    assert!(
        seen.silent_api_open > 0,
        "silent sockets stay open without deadlines"
    );
    assert!(seen.silent_admin_open > 0, "silent admin sockets stay open");
    assert!(seen.slow_open > 0, "trickling clients stay open");
    assert!(
        seen.stalled_cut_after.is_none(),
        "stalled downloads are never cut"
    );
    assert!(
        seen.health_failed > 0,
        "the admin slots are taken: health checks time out"
    );
    assert!(
        !seen.fresh_connection_served,
        "every API slot is held: a new connection is not served"
    );
}

/// Many unread downloads at once never delay the calls a citizen waits for. The write-idle cut
/// is pushed out of reach here, so that only the bulkhead (attachment bodies on connections of
/// their own) can keep the inbox answering: with attachment bodies on the shared HTTP/2
/// connection to DVV, every call below times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_readers_do_not_block_dvv_calls() {
    let h = start_with(true, &[("IKKUNA_SERVER_WRITE_IDLE_TIMEOUT_MS", "600000")]).await;
    let staller = "150385-9046";
    let token = h.token(staller);
    let (m, a) = big_message(&h, staller, 256 << 20).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(stalled_download(&h, &format!("/v1/messages/{m}/attachments/{a}"), &token).await);
    }
    // Give the stalled streams time to fill every window they can.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let good = h.token("121262-969N");
    for _ in 0..10 {
        let started = Instant::now();
        let answer = h.call("GET", "/v1/messages?limit=50", Some(&good)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.json());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    drop(held);
}

/// A revocation reaches bytes in flight: a download that is being read is cut when the consent
/// is revoked, and the cut is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_cuts_a_download_in_flight() {
    let h = start(true).await;
    let citizen = "150385-9046";
    let token = h.token(citizen);
    let (m, a) = big_message(&h, citizen, 1 << 30).await;
    let response = h
        .open_stream(&format!("/v1/messages/{m}/attachments/{a}"), &token)
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    let mut revoked_at: Option<Instant> = None;
    let mut known: Option<tokio::task::JoinHandle<Duration>> = None;
    let outcome = loop {
        use http_body_util::BodyExt;
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
            Err(_) => break "stalled",
            Ok(None) => break "complete",
            Ok(Some(Err(_))) => break "cut",
            Ok(Some(Ok(frame))) => {
                received += frame.into_data().map_or(0, |d| d.len() as u64);
            }
        }
        if revoked_at.is_none() && received > 8 << 20 {
            h.revoke_consent(citizen).await;
            let at = Instant::now();
            revoked_at = Some(at);
            // When the gateway learns of it (its cached consent state turns): the feed's share
            // of the delay, as opposed to the stream's.
            let (url, client, token) = (h.gateway_url(), h.client.clone(), token.clone());
            known = Some(tokio::spawn(async move {
                loop {
                    let req = http::Request::builder()
                        .uri(format!("{url}/v1/consent"))
                        .header("authorization", format!("Bearer {token}"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("request");
                    if let Ok(r) = client.request(req).await {
                        use http_body_util::BodyExt;
                        let body = r.into_body().collect().await.map(|b| b.to_bytes());
                        let v: Value = body
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or(Value::Null);
                        if v["state"] == "Revoked" {
                            return at.elapsed();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        // A steady reader (a phone on a good link), slow enough that the file cannot finish.
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let after = revoked_at.expect("revoked mid-download").elapsed();
    let known = known.expect("poller").await.expect("poller task");
    println!(
        "revocation: known to the gateway after {known:?}, stream ended at the client after {after:?} ({received} bytes)"
    );
    assert_eq!(outcome, "cut", "received {received} bytes");
    assert!(received < 1 << 30);
    assert!(
        after < known + Duration::from_secs(2),
        "cut {after:?} after the revocation, known after {known:?}"
    );
    // The cut is in the audit trail, with its reason.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records: Vec<Value> = h.audit_records();
        if records.iter().any(|r| {
            r["action"] == "attachment"
                && r["reason"] == "stream_cut_revoked"
                && r["messageId"] == m
                && r["attachmentId"] == a
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "cut not audited: {records:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// HTTP/2 multiplexes many citizens' streams on one operator connection: a stream whose client
/// keeps its window shut is cut on its own (DVV's side freed), the other streams of the
/// connection keep working, and the connection is then drained so the stuck stream ends too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unread_http2_stream_is_cut() {
    let h = start(true).await;
    let citizen = "150385-9046";
    let token = h.token(citizen);
    let (m, a) = big_message(&h, citizen, 256 << 20).await;
    let tls = common::tls_client_config(Path::new(h.info["caCert"].as_str().expect("caCert")));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(connector);
    let get = |path: String| {
        http::Request::builder()
            .uri(format!("{}{path}", h.gateway_url()))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request")
    };
    let stalled = client
        .request(get(format!("/v1/messages/{m}/attachments/{a}")))
        .await
        .expect("stream opens");
    assert_eq!(stalled.status(), 200);
    assert_eq!(stalled.version(), http::Version::HTTP_2);
    let opened = Instant::now();
    // The other streams of the same connection are served while this one sits unread.
    for _ in 0..5 {
        let answer = client
            .request(get("/v1/messages?limit=5".to_owned()))
            .await
            .expect("served beside the unread stream");
        assert_eq!(answer.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut_after = loop {
        let metrics = h.scrape_metrics().await;
        if metric_sum(
            &metrics,
            "ikkuna_streams_cut_total",
            &["reason=\"write_idle\""],
        ) >= 1.0
        {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < Duration::from_millis(WRITE_IDLE_MS) + Duration::from_secs(10),
            "the unread stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("unread HTTP/2 stream cut after {cut_after:?}");
    assert!(
        cut_after >= Duration::from_millis(WRITE_IDLE_MS),
        "{cut_after:?}"
    );
    // The stuck stream ends (drained connection) and never looks complete.
    let mut body = stalled.into_body();
    let mut received = 0u64;
    let ended = loop {
        use http_body_util::BodyExt;
        match tokio::time::timeout(Duration::from_secs(20), body.frame()).await {
            Err(_) => break "still open",
            Ok(None) => break "complete",
            Ok(Some(Err(_))) => break "cut",
            Ok(Some(Ok(f))) => received += f.into_data().map_or(0, |d| d.len() as u64),
        }
    };
    assert_eq!(ended, "cut", "after {received} bytes");
    assert!(received < 256 << 20);
    // And the client carries on (on a new connection after the GOAWAY).
    let answer = client
        .request(get("/v1/messages?limit=5".to_owned()))
        .await
        .expect("served after the drain");
    assert_eq!(answer.status(), 200);
}

/// `server.idle_timeout_ms`: an HTTP/2 connection that served a request and then carries
/// nothing is closed once that long has passed — not at the (shorter) first-request deadline.
/// An HTTP/1 keep-alive connection waiting for its next request head is also under hyper's own
/// head timer, so it is closed after the shorter of the two (`server.header_read_timeout_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_their_deadlines() {
    let h = start(true).await;
    let token = h.token("121262-969N");
    let request = || {
        http::Request::builder()
            .uri(format!("{}/v1/consent", h.gateway_url()))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request")
    };
    // HTTP/2: one request, then nothing.
    let io = hyper_util::rt::TokioIo::new(tls(&h, b"h2").await);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("HTTP/2 handshake");
    let ended = tokio::spawn(connection);
    let answer = sender.send_request(request()).await.expect("answer");
    assert_eq!(answer.status(), 200);
    drop(answer);
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_millis(IDLE_MS + 5_000), ended)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .expect("connection task")
        .ok();
    let h2_closed = answered.elapsed();
    // HTTP/1.1 keep-alive: one request, then nothing.
    let mut s = tls(&h, b"http/1.1").await;
    let raw = format!(
        "GET /v1/consent HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(raw.as_bytes()).await.expect("request");
    s.flush().await.expect("flush");
    let mut head = vec![0u8; 4096];
    let n = s.read(&mut head).await.expect("answer");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    let (_release, held) = tokio::sync::watch::channel(false);
    let h1_closed = closed_after(s, answered, Duration::from_millis(IDLE_MS + 5_000), held)
        .await
        .expect("the idle HTTP/1.1 connection was closed");
    println!("idle connections closed after: HTTP/2 {h2_closed:?}, HTTP/1.1 {h1_closed:?}");
    assert!(
        h2_closed >= Duration::from_millis(IDLE_MS - 500),
        "HTTP/2 closed after {h2_closed:?}, before the idle timeout"
    );
    assert!(
        h2_closed < Duration::from_millis(IDLE_MS + 3_000),
        "{h2_closed:?}"
    );
    assert!(
        h1_closed >= Duration::from_millis(HEADER_READ_MS - 500)
            && h1_closed < Duration::from_millis(HEADER_READ_MS + 3_000),
        "HTTP/1.1 closed after {h1_closed:?}"
    );
}

/// `dvv.max_attachment_streams`: downloads beyond the bulkhead's size are refused at once with
/// 503, `Retry-After` and a reason, and a slot is free again when a download ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn downloads_beyond_the_bulkhead_are_refused_at_once() {
    let h = start_with(true, &[("IKKUNA_DVV_MAX_ATTACHMENT_STREAMS", "2")]).await;
    let citizen = "150385-9046";
    let token = h.token(citizen);
    let (m, a) = big_message(&h, citizen, 256 << 20).await;
    let path = format!("/v1/messages/{m}/attachments/{a}");
    let first = stalled_download(&h, &path, &token).await;
    let _second = stalled_download(&h, &path, &token).await;
    let started = Instant::now();
    let third = h.call("GET", &path, Some(&token)).await;
    assert_eq!(third.status, 503, "{:?}", third.json());
    assert_eq!(third.header("retry-after"), Some("1"));
    assert!(third.json()["reason"]
        .as_str()
        .is_some_and(|r| r.contains("downloads")));
    assert_eq!(third.header("cache-control"), Some("no-store"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = h
            .call_with("GET", &path, Some(&token), &[("range", "bytes=0-1023")])
            .await;
        if answer.status == 206 {
            assert_eq!(answer.body.len(), 1024);
            break;
        }
        assert_eq!(answer.status, 503);
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A revocation that never arrives through the feed still reaches a download in flight: the
/// stream re-confirms its consent every `consent.revocation_bound_secs` and is cut when DVV no
/// longer reports it active.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_the_feed_withholds_cuts_a_download_within_the_bound() {
    let h = start_with(
        true,
        &[
            ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "2"),
            ("IKKUNA_CONSENT_NEGATIVE_TTL_SECS", "1"),
        ],
    )
    .await;
    let citizen = "150385-9046";
    let token = h.token(citizen);
    let (m, a) = big_message(&h, citizen, 1 << 30).await;
    let withheld = h
        .sandbox_admin(
            "POST",
            "/admin/faults",
            Some(serde_json::json!({"durationMs": 60000, "withholdRevocations": true, "paths": ["/v1/events"]})),
        )
        .await;
    assert_eq!(withheld.status, 200, "{:?}", withheld.json());
    let response = h
        .open_stream(&format!("/v1/messages/{m}/attachments/{a}"), &token)
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    let mut revoked_at: Option<Instant> = None;
    let outcome = loop {
        use http_body_util::BodyExt;
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
            Err(_) => break "stalled",
            Ok(None) => break "complete",
            Ok(Some(Err(_))) => break "cut",
            Ok(Some(Ok(frame))) => received += frame.into_data().map_or(0, |d| d.len() as u64),
        }
        if revoked_at.is_none() && received > 8 << 20 {
            h.revoke_consent(citizen).await;
            revoked_at = Some(Instant::now());
        }
        // Slow enough that the gigabyte cannot finish within the test.
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let after = revoked_at.expect("revoked mid-download").elapsed();
    println!("withheld revocation: stream ended {after:?} after it ({received} bytes)");
    assert_eq!(outcome, "cut", "received {received} bytes");
    assert!(
        after < Duration::from_secs(5),
        "cut {after:?} after the revocation (bound 2 s)"
    );
}
