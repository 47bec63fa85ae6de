//! Accept loops: TLS (mutual for the DVV listener) or plain HTTP, each connection with a
//! handshake deadline, a header-read deadline and a cap on concurrent connections, served by
//! hyper's HTTP/1.1 + HTTP/2 auto builder.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::Body;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections may finish in-flight work after shutdown is signalled.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handler knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Peer address.
    pub peer: SocketAddr,
    /// The provider whose registered client certificate the peer presented, if any.
    pub provider: Option<String>,
}

/// Returned by a handler to close the connection without answering (the "drop" fault).
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// The future a handler returns.
pub type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, DropConnection>> + Send>>;
/// A request handler.
pub type Handler = Arc<dyn Fn(Request<Incoming>, Arc<ConnInfo>) -> HandlerFuture + Send + Sync>;
/// Maps a verified client certificate chain to a provider id.
pub type Identify = Arc<dyn Fn(&[CertificateDer<'static>]) -> Option<String> + Send + Sync>;

/// How a listener speaks.
#[derive(Clone)]
pub enum Transport {
    /// TLS only; the config decides whether client certificates are required.
    Tls {
        /// The rustls configuration.
        config: Arc<ServerConfig>,
        /// Maps the client's certificate to a provider.
        identify: Identify,
    },
    /// Plain HTTP, or TLS when the first byte is a TLS handshake record.
    PlainOrTls {
        /// The rustls configuration used when the client starts TLS.
        config: Arc<ServerConfig>,
    },
}

/// Runs the accept loop until `shutdown` turns true; the listener closes when the task ends.
pub fn spawn(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    max_connections: usize,
    handler: Handler,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(max_connections));
        let mut stop = shutdown.clone();
        loop {
            let accepted = tokio::select! {
                _ = stopped(&mut stop) => break,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(
                    listener = name,
                    "connection limit reached; closing new connection"
                );
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let transport = transport.clone();
            let handler = handler.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                connection(name, tcp, peer, transport, handler, shutdown).await;
            });
        }
        tracing::debug!(listener = name, "stopped accepting");
        // Shutdown returns only once every connection has ended (each holds a permit), so a
        // stopped sandbox really is down: no pooled connection of a client is still served.
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT * 2, permits.acquire_many(all)).await;
    })
}

async fn connection(
    name: &'static str,
    tcp: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    handler: Handler,
    shutdown: watch::Receiver<bool>,
) {
    match transport {
        Transport::Tls { config, identify } => {
            let Some(tls) = handshake(name, config, tcp).await else {
                return;
            };
            let provider = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| identify(chain));
            let info = Arc::new(ConnInfo { peer, provider });
            serve(tls, info, handler, shutdown).await;
        }
        Transport::PlainOrTls { config } => {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await;
            let info = Arc::new(ConnInfo {
                peer,
                provider: None,
            });
            match peeked {
                Ok(Ok(1)) if first[0] == 0x16 => {
                    if let Some(tls) = handshake(name, config, tcp).await {
                        serve(tls, info, handler, shutdown).await;
                    }
                }
                Ok(Ok(1)) => serve(tcp, info, handler, shutdown).await,
                _ => {}
            }
        }
    }
}

async fn handshake(
    name: &'static str,
    config: Arc<ServerConfig>,
    tcp: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(listener = name, error = %e, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::debug!(listener = name, "TLS handshake timed out");
            None
        }
    }
}

async fn serve<I>(io: I, info: Arc<ConnInfo>, handler: Handler, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        let info = info.clone();
        async move { handler(req, info).await }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut()).await;
        }
    }
}

/// Resolves once shutdown is signalled (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
