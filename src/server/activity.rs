//! What one connection is doing, as seen by its watchdog: requests in flight, when it last went
//! idle, whether its writes are blocked, and whether a stream on it got stuck.
//!
//! hyper's own timers cover only part of a connection's life (the HTTP/1 header timeout starts
//! after protocol detection; HTTP/2 has no idle timeout at all), so every state gets its deadline
//! here instead, from facts that do not depend on the protocol: a socket that is not read from,
//! a connection that carries no request, a client that does not accept what is written.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// "Not set" for the millisecond stamps below.
const NEVER: u64 = u64::MAX;

/// The deadlines a connection's watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept (TLS done) to the first complete request head, whatever the protocol:
    /// covers silent sockets, protocol detection, the HTTP/2 preface and SETTINGS, and a
    /// header block that is never finished.
    pub first_request: Duration,
    /// With no request in flight, after the last one ended (HTTP/1 keep-alive, HTTP/2 idle).
    pub idle: Duration,
    /// A write to the client that has not completed (the client stopped reading).
    pub write_idle: Duration,
}

/// Why a watchdog closed a connection (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete request within [`Deadlines::first_request`].
    NoRequest,
    /// No request in flight for [`Deadlines::idle`].
    Idle,
    /// The client accepted no byte for [`Deadlines::write_idle`].
    WriteStalled,
    /// A stream on it was cut and did not end; the connection was drained and then closed.
    StreamStuck,
}

impl CloseReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoRequest => "no_request",
            Self::Idle => "idle",
            Self::WriteStalled => "write_stalled",
            Self::StreamStuck => "stream_stuck",
        }
    }
}

/// Shared between a connection's IO, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    served_any: AtomicBool,
    http2: AtomicBool,
    /// Milliseconds since `opened` when the last request ended (0 before any).
    idle_since: AtomicU64,
    /// Milliseconds since `opened` when a write first stayed pending, or [`NEVER`].
    write_blocked_since: AtomicU64,
    stuck: Notify,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served_any: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(NEVER),
            stuck: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// A request head arrived; the returned guard ends the request when dropped (with its
    /// response body, so a stream counts as in flight until it ends).
    pub fn request_started(self: &Arc<Self>, http2: bool) -> InFlight {
        self.served_any.store(true, Ordering::Relaxed);
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Whether the connection speaks HTTP/2 (known from its first request).
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// A stream on this connection was cut and has not ended: the watchdog drains the
    /// connection (GOAWAY on HTTP/2) and closes it after the write-idle deadline.
    pub fn stream_stuck(&self) {
        self.stuck.notify_one();
    }

    /// Resolves when [`Self::stream_stuck`] was called.
    pub async fn stuck(&self) {
        self.stuck.notified().await;
    }

    /// The deadline that applies now, and what passing it means. `None` while requests are in
    /// flight and writes flow (those are bounded by the request timeout and the streams' own
    /// write-idle cut).
    pub fn next_deadline(&self, deadlines: &Deadlines) -> Option<(Instant, CloseReason)> {
        let blocked = self.write_blocked_since.load(Ordering::Acquire);
        if blocked != NEVER {
            return Some((
                self.at(blocked) + deadlines.write_idle,
                CloseReason::WriteStalled,
            ));
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.at(self.idle_since.load(Ordering::Acquire));
        Some(if self.served_any.load(Ordering::Acquire) {
            (since + deadlines.idle, CloseReason::Idle)
        } else {
            (since + deadlines.first_request, CloseReason::NoRequest)
        })
    }

    fn write_result<T>(&self, result: &Poll<T>) {
        match result {
            Poll::Pending => {
                let now = self.now_ms();
                let _ = self.write_blocked_since.compare_exchange(
                    NEVER,
                    now,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => self.write_blocked_since.store(NEVER, Ordering::Release),
        }
    }
}

/// One request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity
                .idle_since
                .store(activity.now_ms(), Ordering::Release);
        }
    }
}

/// The connection's socket, reporting to its [`Activity`] whether writes are getting through.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Wraps an accepted socket.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.activity.write_result(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.activity.write_result(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.activity.write_result(&result);
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        first_request: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        write_idle: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_state() {
        let activity = Activity::new();
        let opened = Instant::now();
        assert_eq!(
            activity.next_deadline(&DEADLINES),
            Some((opened + DEADLINES.first_request, CloseReason::NoRequest))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        let request = activity.request_started(true);
        assert!(activity.is_http2());
        assert_eq!(
            activity.next_deadline(&DEADLINES),
            None,
            "busy: no deadline"
        );
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(request);
        assert_eq!(
            activity.next_deadline(&DEADLINES),
            Some((
                opened + Duration::from_secs(103) + DEADLINES.idle,
                CloseReason::Idle
            ))
        );
        // A blocked write is bounded even with a request in flight.
        let _busy = activity.request_started(true);
        activity.write_result::<()>(&Poll::Pending);
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.write_result::<()>(&Poll::Pending);
        assert_eq!(
            activity.next_deadline(&DEADLINES),
            Some((
                opened + Duration::from_secs(103) + DEADLINES.write_idle,
                CloseReason::WriteStalled
            )),
            "the first pending write starts the clock; later ones do not reset it"
        );
        activity.write_result(&Poll::Ready(()));
        assert_eq!(activity.next_deadline(&DEADLINES), None);
    }
}
