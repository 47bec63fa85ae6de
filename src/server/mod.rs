//! Listeners: TLS for the operator API, plain loopback HTTP for the admin endpoints.
//!
//! Every connection has a TLS handshake deadline and a header-read deadline (hyper's only works
//! with a timer: see ENGINEERING.md), a cap on open connections, and graceful shutdown that lets
//! bodies in flight finish.

pub mod answers;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Largest request head (request line and headers) accepted: the operator API needs a few
/// kilobytes (an assertion is the largest header).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Per-connection limits of a listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest a client may take to send a request's headers (slowloris defence).
    pub header_read_timeout: Duration,
    /// Open connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
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
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    let tls = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    let stream = match tls.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return log_handshake_failure(peer, &e.to_string()),
                        Err(_) => return log_handshake_failure(peer, "timed out"),
                    };
                    let client = client_key(peer, stream.get_ref().1.peer_certificates());
                    let service = with_client(router, client);
                    let io = TokioIo::new(answers::StampAnswers::new(stream));
                    let conn = builder.serve_connection(io, service);
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let service = with_client(router, client_key(peer, None));
                    let io = TokioIo::new(answers::StampAnswers::new(stream));
                    let conn = builder.serve_connection(io, service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown drain timed out; closing remaining connections");
    }
}

/// Who the operator client on a connection is, for its rate limit: the SHA-256 of its
/// certificate under mutual TLS, else its address.
fn client_key(
    peer: SocketAddr,
    certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> crate::limits::ClientKey {
    use sha2::Digest;
    match certificates.and_then(|chain| chain.first()) {
        Some(leaf) => crate::limits::ClientKey::Certificate(sha2::Sha256::digest(leaf).into()),
        None => crate::limits::ClientKey::Address(peer.ip()),
    }
}

/// The connection's service: the router with the client's key attached to every request.
fn with_client(
    router: Router,
    client: crate::limits::ClientKey,
) -> TowerToHyperService<axum::middleware::AddExtension<Router, crate::limits::ClientKey>> {
    TowerToHyperService::new(tower::Layer::layer(&axum::Extension(client), router))
}

fn log_handshake_failure(peer: SocketAddr, why: &str) {
    tracing::debug!(%peer, why, "TLS handshake failed");
}
