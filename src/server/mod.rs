//! Listeners: TLS for the operator API, plain loopback HTTP for the admin endpoints.
//!
//! Every connection state has a deadline (see [`activity`]): the TLS handshake, the first
//! request head whatever the protocol, idleness between requests, and writes the client does
//! not accept. A cap bounds open connections, and shutdown lets bodies in flight finish within
//! the drain bound.

pub mod activity;
pub mod answers;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use activity::{Activity, CloseReason, Deadlines};

/// Largest request head (request line and headers) accepted: the operator API needs a few
/// kilobytes (an assertion is the largest header).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Per-connection limits of a listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// The listener's name in metrics (`api`, `admin`).
    pub name: &'static str,
    /// Longest a client may take to finish the TLS handshake (from accept).
    pub handshake_timeout: Duration,
    /// Longest from accept (or the handshake) to the first complete request head, on every
    /// protocol (slowloris, silent sockets, unfinished HTTP/2 prefaces and header blocks).
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Longest a write to the client may stay blocked (the client stopped reading).
    pub write_idle_timeout: Duration,
    /// Open connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl ConnectionLimits {
    fn deadlines(&self) -> Deadlines {
        Deadlines {
            first_request: self.header_read_timeout,
            idle: self.idle_timeout,
            write_idle: self.write_idle_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains.
///
/// With `tls` set every connection is TLS (the operator API); without it the listener is plain
/// HTTP, which the admin endpoints use on loopback only.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Request heads larger than this are refused (431) before they use more memory.
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        // A peer that stops answering pings is gone (a phone out of coverage, a dead NAT path).
        .keep_alive_interval(Some(limits.idle_timeout.min(Duration::from_secs(20))))
        .keep_alive_timeout(limits.write_idle_timeout.min(Duration::from_secs(20)));
    let max_connections = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let stream = activity::Watched::new(stream, Arc::clone(&activity));
        let (router, builder, limits) = (router.clone(), builder.clone(), limits.clone());
        let (acceptor, shutdown) = (acceptor.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    let tls =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let stream = match tls.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return log_handshake_failure(peer, &e.to_string()),
                        Err(_) => return log_handshake_failure(peer, "timed out"),
                    };
                    let client = client_key(peer, stream.get_ref().1.peer_certificates());
                    serve_connection(
                        &builder, stream, router, client, activity, &limits, shutdown,
                    )
                    .await;
                }
                None => {
                    let client = client_key(peer, None);
                    serve_connection(
                        &builder, stream, router, client, activity, &limits, shutdown,
                    )
                    .await;
                }
            }
        });
    }
    drop(listener);
    // Every connection task holds a slot: all slots back means every connection has ended.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown drain timed out; closing remaining connections");
    }
}

/// Serves one connection under its watchdog: closed when a deadline of [`Activity`] passes,
/// drained (GOAWAY) when a stream on it got stuck or the gateway stops.
async fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    stream: S,
    router: Router,
    client: crate::limits::ClientKey,
    activity: Arc<Activity>,
    limits: &ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Tracked {
        router,
        client,
        activity: Arc::clone(&activity),
    };
    // hyper's own answers (431, 400 on a malformed head) get the house headers on their way out.
    let io = TokioIo::new(answers::StampAnswers::new(stream));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let deadlines = limits.deadlines();
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    // Set once a stuck stream started a drain: the connection closes then, whatever else.
    let mut stuck_until: Option<tokio::time::Instant> = None;
    loop {
        let next = activity.next_deadline(&deadlines);
        let (wake, reason) = match (next, stuck_until) {
            (Some((at, _)), Some(stuck)) if stuck < at => (stuck, CloseReason::StreamStuck),
            (Some((at, reason)), _) => (at, reason),
            (None, Some(stuck)) => (stuck, CloseReason::StreamStuck),
            // Busy and flowing: look again within the shortest deadline.
            (None, None) => (
                tokio::time::Instant::now() + deadlines.write_idle.min(deadlines.idle),
                CloseReason::Idle,
            ),
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(wake) => {
                let still = activity.next_deadline(&deadlines);
                let expired = match still {
                    Some((at, r)) if at <= tokio::time::Instant::now() => Some(r),
                    _ if reason == CloseReason::StreamStuck => Some(reason),
                    _ => None,
                };
                if let Some(reason) = expired {
                    crate::telemetry::metrics::with(|m| {
                        m.connections_closed
                            .with_label_values(&[limits.name, reason.label()])
                            .inc();
                    });
                    tracing::debug!(listener = limits.name, reason = reason.label(), "connection closed by its deadline");
                    return; // dropping the connection closes the socket
                }
            }
            _ = activity.stuck(), if stuck_until.is_none() => {
                if !draining {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                stuck_until = Some(tokio::time::Instant::now() + deadlines.write_idle);
            }
            _ = shutdown.changed(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// The connection's service: the router, with the client's key and the connection's
/// [`Activity`] attached to every request, and each request counted in flight until its
/// response body has ended.
#[derive(Clone)]
struct Tracked {
    router: Router,
    client: crate::limits::ClientKey,
    activity: Arc<Activity>,
}

/// The handle a request carries to its connection: a content stream that had to be cut and
/// does not end tells the connection, which is then drained and closed.
#[derive(Clone, Debug)]
pub struct ConnectionHandle(Arc<Activity>);

impl ConnectionHandle {
    /// A stream of this connection was cut and has not ended within the write-idle deadline.
    pub fn stream_stuck(&self) {
        self.0.stream_stuck();
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Tracked {
    type Response = http::Response<TrackedBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let in_flight = self
            .activity
            .request_started(request.version() == http::Version::HTTP_2);
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(self.client);
        request
            .extensions_mut()
            .insert(ConnectionHandle(Arc::clone(&self.activity)));
        let router = self.router.clone();
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(router, request).await?;
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request counted in flight until the body ends or is dropped.
pub struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: activity::InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Who the operator client on a connection is, for its rate limit: the SHA-256 of its
/// certificate under mutual TLS, else its address.
fn client_key(
    peer: SocketAddr,
    certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> crate::limits::ClientKey {
    match certificates.and_then(|chain| chain.first()) {
        Some(leaf) => crate::limits::ClientKey::Certificate(crate::digest::sha256(leaf)),
        None => crate::limits::ClientKey::Address(peer.ip()),
    }
}

fn log_handshake_failure(peer: SocketAddr, why: &str) {
    tracing::debug!(%peer, why, "TLS handshake failed");
}
