//! ISO-1..3: no client, stream or socket can hold back another citizen's window. Silent sockets
//! of every kind are closed within the header-read deadline while others are served; downloads
//! whose clients stop reading are cut within the write-idle deadline while other citizens keep
//! being answered quickly; a download in flight is cut within the revocation bound when its
//! consent is revoked. Raw sockets, so the suite controls exactly what it sends and reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// Allowance on top of every configured deadline (scheduling on a loaded machine, polling).
const MARGIN: Duration = Duration::from_secs(3);
/// How quickly a well-behaved citizen must be answered while others misbehave.
const QUICK: Duration = Duration::from_secs(5);
/// Receive buffer of the suite's download sockets: small, so bytes held in flight are few.
const RECV_BUFFER: u32 = 128 * 1024;
/// Downloads whose clients stop reading at once.
const STALLED: usize = 4;

pub(crate) fn host_port(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

async fn tcp(addr: &str) -> anyhow::Result<TcpStream> {
    let addr: std::net::SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("resolving the address")?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_recv_buffer_size(RECV_BUFFER)?;
    Ok(tokio::time::timeout(Duration::from_secs(10), socket.connect(addr)).await??)
}

pub(crate) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

pub(crate) async fn tls(ctx: &Ctx, alpn: &[u8]) -> anyhow::Result<Tls> {
    let hp = host_port(&ctx.target.gateway_url);
    let host = hp
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&hp)
        .to_owned();
    let mut config = crate::http::tls_config(&ctx.http.ca, ctx.http.client_cert.as_ref())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
    let stream = tcp(&hp).await?;
    Ok(tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream)).await??)
}

/// The status and `Content-Length` (when given) of an HTTP/1.1 answer head.
pub(crate) fn status_and_length(head: &[u8]) -> (u16, Option<u64>) {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    (status, length)
}

/// A download over its own TLS connection, read exactly as fast as the case wants.
pub struct RawDownload {
    stream: Tls,
    /// HTTP status.
    pub status: u16,
    /// Body bytes received so far (framing included when chunked).
    pub received: u64,
    /// `Content-Length`, when given.
    pub length: Option<u64>,
    /// When the stream ended (EOF or error), if it did.
    pub ended: Option<Instant>,
    buf: Vec<u8>,
}

impl RawDownload {
    /// `GET path` as `code` over a fresh connection; reads the head.
    pub async fn start(ctx: &Ctx, code: &str, path: &str) -> anyhow::Result<Self> {
        let token = ctx.token(code)?;
        let mut stream = tls(ctx, b"http/1.1").await?;
        let host = host_port(&ctx.target.gateway_url);
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut head = Vec::new();
        let mut byte = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        let body_start = loop {
            let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut byte))
                .await
                .context("no answer head within 20 s")??;
            anyhow::ensure!(n > 0, "the connection closed before the answer head");
            head.extend_from_slice(&byte[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let (status, length) = status_and_length(&head[..body_start]);
        Ok(Self {
            stream,
            status,
            received: (head.len() - body_start) as u64,
            length,
            ended: None,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Whether every byte of the body arrived.
    pub fn complete(&self) -> bool {
        self.length.is_some_and(|l| self.received >= l)
    }

    async fn read_once(&mut self, limit: Duration) -> bool {
        if self.ended.is_some() {
            return false;
        }
        match tokio::time::timeout(limit, self.stream.read(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = Some(Instant::now());
                false
            }
            Ok(Ok(n)) => {
                self.received += n as u64;
                true
            }
            Err(_) => false,
        }
    }

    /// Reads until `n` more bytes arrived, the stream ended, or `limit` passed; answers the
    /// total received.
    pub async fn read_at_least(&mut self, n: u64, limit: Duration) -> anyhow::Result<u64> {
        let target = self.received + n;
        let deadline = Instant::now() + limit;
        while self.received < target && self.ended.is_none() && Instant::now() < deadline {
            self.read_once(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        Ok(self.received)
    }

    /// Reads as fast as possible until the stream ends or `limit` passes.
    pub async fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.ended.is_none() && !self.complete() && Instant::now() < deadline {
            self.read_once(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
    }
}

/// Waits until the peer closes `read`'s stream or `limit` passes; answers when it closed.
async fn closed_within<R: AsyncReadExt + Unpin>(mut s: R, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// ISO-1: silent sockets of every kind are closed within the header-read deadline, on both
/// listeners, and while they are held the operator API and `/healthz` still answer.
pub async fn silent_sockets(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let set = &ctx.target.settings;
    let deadline = set.header_read_timeout.max(set.tls_handshake_timeout);
    let limit = deadline + MARGIN;
    let op = host_port(&ctx.target.gateway_url);
    let mut kinds: Vec<(String, tokio::task::JoinHandle<Option<Duration>>)> = Vec::new();
    // Plain TCP, nothing sent.
    let s = tcp(&op).await?;
    kinds.push((
        "operator: TCP, no TLS".into(),
        tokio::spawn(closed_within(s, limit)),
    ));
    // TLS done, then nothing.
    let t = tls(ctx, b"http/1.1").await?;
    kinds.push((
        "operator: TLS done, no bytes".into(),
        tokio::spawn(closed_within(t, limit)),
    ));
    // TLS with h2, half a connection preface.
    let mut h = tls(ctx, b"h2").await?;
    h.write_all(b"PRI * HTTP/2.0\r\n").await?;
    h.flush().await?;
    kinds.push((
        "operator: partial HTTP/2 preface".into(),
        tokio::spawn(closed_within(h, limit)),
    ));
    // HTTP/1 head never finished.
    let mut p = tls(ctx, b"http/1.1").await?;
    p.write_all(b"GET /v1/messages HTTP/1.1\r\nHost: x\r\n")
        .await?;
    p.flush().await?;
    kinds.push((
        "operator: HTTP/1 head never finished".into(),
        tokio::spawn(closed_within(p, limit)),
    ));
    // Every admin slot taken by silent TCP. A socket beyond the cap (the suite's own pooled
    // connection may hold a slot) waits in the listen backlog until a slot frees, then gets its
    // own deadline: two deadlines at most.
    let admin = ctx.target.admin_url.clone();
    let admin_limit = deadline * 2 + MARGIN;
    let mut admin_held = 0;
    if let Some(admin) = &admin {
        let ahp = host_port(admin);
        for i in 0..set.admin_max_connections.min(256) {
            let s = tcp(&ahp).await?;
            kinds.push((
                format!("admin: silent TCP #{}", i + 1),
                tokio::spawn(closed_within(s, admin_limit)),
            ));
            admin_held += 1;
        }
    }
    out.log(format!(
        "{} silent sockets held ({admin_held} on the admin listener); deadline {} ms + margin {} ms",
        kinds.len(),
        deadline.as_millis(),
        MARGIN.as_millis()
    ));
    let mut problems = Vec::new();
    // While they are held: the operator API serves a citizen.
    let started = Instant::now();
    let served = tokio::time::timeout(
        QUICK,
        ctx.call(
            "GET",
            "/v1/messages?limit=1",
            Some(&ctx.token(&ctx.fx.b.code)?),
        ),
    )
    .await;
    match served {
        Ok(Ok(a)) if a.status == 200 => out.log(format!(
            "an inbox was served in {} ms while the sockets were held",
            started.elapsed().as_millis()
        )),
        other => problems.push(format!(
            "while silent sockets were held the inbox was not served within {} s ({})",
            QUICK.as_secs(),
            match other {
                Ok(Ok(a)) => a.summary(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".into(),
            }
        )),
    }
    // `/healthz` must answer once the silent sockets' deadline has passed at the latest.
    if let Some(admin) = &admin {
        let started = Instant::now();
        let health = loop {
            let a = tokio::time::timeout(
                Duration::from_secs(2),
                ctx.http.admin(&format!("{admin}/healthz"), "GET", None),
            )
            .await;
            if matches!(&a, Ok(Ok(x)) if x.status == 200) {
                break Some(started.elapsed());
            }
            if started.elapsed() > admin_limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        match health {
            Some(t) => out.log(format!(
                "/healthz answered {} ms after every admin slot was taken",
                t.as_millis()
            )),
            None => problems.push(format!(
                "/healthz did not answer within {} ms while silent sockets held the admin listener",
                admin_limit.as_millis()
            )),
        }
    }
    let mut worst: Vec<String> = Vec::new();
    for (kind, task) in kinds {
        match task.await.ok().flatten() {
            Some(t) => {
                if !kind.starts_with("admin") || kind.ends_with("#1") {
                    worst.push(format!("{kind}: closed after {} ms", t.as_millis()));
                }
            }
            None => problems.push(format!(
                "{kind}: still open after {} ms",
                if kind.starts_with("admin") {
                    admin_limit
                } else {
                    limit
                }
                .as_millis()
            )),
        }
    }
    for w in &worst {
        out.log(w.clone());
    }
    Ok(out.decide(
        problems.is_empty(),
        format!(
            "every silent socket was closed within {} ms (admin: {} ms; deadline {} ms); others were served meanwhile",
            limit.as_millis(),
            admin_limit.as_millis(),
            deadline.as_millis()
        ),
        problems.join("; "),
    ))
}

/// ISO-2: several downloads whose clients stop reading; other citizens keep being answered
/// quickly, and each stalled download is cut within the write-idle deadline.
pub async fn stalled_reader(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let idle = ctx.target.settings.write_idle_timeout;
    let m = &ctx.fx.slow_big;
    let path = format!(
        "/v1/messages/{}/attachments/{}",
        m.id,
        m.attachment.unwrap_or_default()
    );
    let mut downloads = Vec::new();
    for _ in 0..STALLED {
        let mut d = RawDownload::start(ctx, &ctx.fx.slow.code, &path).await?;
        if d.status != 200 {
            return Ok(out.error(format!("the download was not served: {}", d.status)));
        }
        d.read_at_least(512 * 1024, Duration::from_secs(20)).await?;
        downloads.push(d);
    }
    let stalled_at = Instant::now();
    out.log(format!(
        "{STALLED} downloads of {} MiB started, each read ~512 KiB, then no more reading",
        crate::ctx::BIG_ATTACHMENT >> 20
    ));
    // Other citizens, for as long as the stall must last.
    let mut problems = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let others = [
        (ctx.fx.a.code.clone(), "/v1/messages?limit=5".to_owned()),
        (
            ctx.fx.a.code.clone(),
            format!("/v1/messages/{}", ctx.fx.a_normal.id),
        ),
        (ctx.fx.b.code.clone(), "/v1/messages?limit=5".to_owned()),
    ];
    while stalled_at.elapsed() < idle + MARGIN {
        for (code, p) in &others {
            let started = Instant::now();
            let a = tokio::time::timeout(QUICK, ctx.call("GET", p, Some(&ctx.token(code)?))).await;
            let took = started.elapsed();
            slowest = slowest.max(took);
            calls += 1;
            match a {
                Ok(Ok(a)) if a.status == 200 => {}
                Ok(Ok(a)) => problems.push(format!("GET {p} → {} during the stall", a.summary())),
                Ok(Err(e)) => problems.push(format!("GET {p} failed during the stall: {e}")),
                Err(_) => problems.push(format!(
                    "GET {p} not answered within {} s during the stall",
                    QUICK.as_secs()
                )),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out.log(format!(
        "{calls} calls of other citizens during the stall; slowest {} ms",
        slowest.as_millis()
    ));
    problems.truncate(4);
    // Now read again: a cut stream ends short; one never cut delivers everything.
    let mut cut = 0;
    for (i, d) in downloads.iter_mut().enumerate() {
        d.drain(Duration::from_secs(30)).await;
        let ended_short = d.ended.is_some() && !d.complete();
        out.log(format!(
            "download {}: {} bytes of {:?}, {}",
            i + 1,
            d.received,
            d.length,
            if ended_short {
                "cut"
            } else if d.complete() {
                "complete: never cut"
            } else {
                "still open"
            }
        ));
        if ended_short {
            cut += 1;
        }
    }
    if cut < STALLED {
        problems.push(format!(
            "{} of {STALLED} downloads not read for {} ms were not cut (write-idle deadline {} ms)",
            STALLED - cut,
            (idle + MARGIN).as_millis(),
            idle.as_millis()
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        format!(
            "{STALLED} stalled downloads cut within {} ms; {calls} calls of other citizens answered, slowest {} ms",
            (idle + MARGIN).as_millis(),
            slowest.as_millis()
        ),
        problems.join("; "),
    ))
}

/// ISO-3: a download in flight is cut within the revocation bound when the citizen revokes the
/// consent at DVV, although the client keeps reading.
pub async fn revocation_mid_download(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let bound = ctx.target.revocation_bound;
    let m = &ctx.fx.revoked_big;
    let code = ctx.fx.revoked_downloading.code.clone();
    let path = format!(
        "/v1/messages/{}/attachments/{}",
        m.id,
        m.attachment.unwrap_or_default()
    );
    let mut d = RawDownload::start(ctx, &code, &path).await?;
    if d.status != 200 {
        return Ok(out.error(format!("the download was not served: {}", d.status)));
    }
    d.read_at_least(1 << 20, Duration::from_secs(20)).await?;
    let size = d.length.unwrap_or(crate::ctx::BIG_ATTACHMENT);
    // Read steadily, slowly enough that the body could not be complete long after the bound.
    let span = bound + MARGIN + Duration::from_secs(20);
    let rate = ((size - d.received.min(size)) as f64 / span.as_secs_f64()).max(64.0 * 1024.0);
    // Bytes already in flight (our buffer, the gateway's socket) drain at this rate after a cut.
    let allowance = MARGIN + Duration::from_secs_f64((4u64 << 20) as f64 / rate);
    let r = ctx
        .backend(
            "POST",
            "/admin/consents/revoke",
            Some(json!({"endUserId": code})),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "revoking: {}", r.summary());
    let revoked = Instant::now();
    let at_revocation = d.received;
    out.log(format!(
        "{at_revocation} bytes read; consent revoked at DVV; reading on at {:.1} MiB/s",
        rate / (1 << 20) as f64
    ));
    let limit = bound + allowance;
    while d.ended.is_none() && !d.complete() && revoked.elapsed() < limit + Duration::from_secs(5) {
        let due = Duration::from_secs_f64((d.received - at_revocation) as f64 / rate);
        if let Some(wait) = due.checked_sub(revoked.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        d.read_at_least(64 * 1024, Duration::from_millis(500))
            .await?;
    }
    let cut_after = d.ended.map(|e| e.saturating_duration_since(revoked));
    out.log(format!(
        "after the revocation: {} more bytes; stream {}",
        d.received - at_revocation,
        match cut_after {
            Some(t) if !d.complete() => format!("cut {} ms after the revocation", t.as_millis()),
            _ if d.complete() => "complete".to_owned(),
            _ => "still open".to_owned(),
        }
    ));
    Ok(match cut_after {
        Some(t) if !d.complete() && t <= limit => out.pass(format!(
            "the download was cut {} ms after the revocation (bound {} s, allowance {} ms for bytes in flight)",
            t.as_millis(),
            bound.as_secs(),
            allowance.as_millis()
        )),
        Some(t) if !d.complete() => out.fail(format!(
            "the download was cut only {} ms after the revocation (bound {} s + {} ms)",
            t.as_millis(),
            bound.as_secs(),
            allowance.as_millis()
        )),
        _ => out.fail(format!(
            "the download went on {} ms after the revocation (bound {} s): {} more bytes released",
            revoked.elapsed().as_millis(),
            bound.as_secs(),
            d.received - at_revocation
        )),
    })
}
