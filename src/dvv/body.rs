//! A streamed body from DVV with an idle timeout: if DVV goes silent for longer than
//! `dvv.body_idle_timeout_ms` mid-body, the stream ends with [`DvvError::BodyStalled`] instead of
//! holding the connection (and the operator's client) forever. Frames are passed on as they
//! arrive; nothing is buffered.
//!
//! The clock runs only while this body waits on DVV: time that the consumer (a slow downstream
//! client) spends not asking for the next frame does not count as an upstream stall.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::DvvError;

/// Wraps `B` so that a wait longer than `idle` for its next frame fails the stream.
pub(crate) struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// Whether the timer is armed for the current wait.
    waiting: bool,
    trace_id: Option<String>,
    finished: bool,
}

impl<B> IdleTimeout<B> {
    /// Wraps `inner`; `trace_id` is DVV's trace id of the response, for the errors.
    pub(crate) fn new(inner: B, idle: Duration, trace_id: Option<String>) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            trace_id,
            finished: false,
        }
    }
}

impl<B> fmt::Debug for IdleTimeout<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("idle", &self.idle)
            .field("trace_id", &self.trace_id)
            .finish_non_exhaustive()
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = DvvError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DvvError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.waiting {
            this.timer.as_mut().reset(Instant::now() + this.idle);
            this.waiting = true;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finished = true;
                Poll::Ready(Some(Err(DvvError::Unavailable {
                    cause: format!("connection to DVV failed mid-body: {error}"),
                    trace_id: this.trace_id.clone(),
                })))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                this.finished = true;
                tracing::warn!(
                    idle_ms = u64::try_from(this.idle.as_millis()).unwrap_or(u64::MAX),
                    trace_id = this.trace_id.as_deref(),
                    "dvv body stalled"
                );
                Poll::Ready(Some(Err(DvvError::BodyStalled {
                    trace_id: this.trace_id.clone(),
                })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that keeps something alive (a bulkhead slot) for exactly as long as the body itself:
/// the slot is given back when the stream ends or is dropped, never earlier.
pub(crate) struct Holding<B, T> {
    inner: B,
    _held: T,
}

impl<B, T> Holding<B, T> {
    /// `inner`, keeping `held` until it is dropped.
    pub(crate) fn new(inner: B, held: T) -> Self {
        Self { inner, _held: held }
    }
}

impl<B: Body + Unpin, T: Unpin> Body for Holding<B, T> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::channel::Channel;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn frames_pass_and_a_stall_fails_the_stream() {
        let (mut tx, channel) = Channel::<Bytes, std::io::Error>::new(4);
        let mut body = IdleTimeout::new(channel, Duration::from_secs(15), Some("t-9".into()));
        tx.send_data(Bytes::from_static(b"first")).await.unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "first");

        // A pause shorter than the idle timeout is fine.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(14)).await;
            tx.send_data(Bytes::from_static(b"second")).await.unwrap();
            tx // keep the sender open: DVV is silent, not finished
        });
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "second");
        let _tx = sender.await.unwrap();

        let started = Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            error,
            DvvError::BodyStalled {
                trace_id: Some("t-9".into())
            }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(
            body.frame().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_is_not_an_upstream_stall() {
        let (mut tx, channel) = Channel::<Bytes, std::io::Error>::new(4);
        let mut body = IdleTimeout::new(channel, Duration::from_secs(15), None);
        tx.send_data(Bytes::from_static(b"a")).await.unwrap();
        body.frame().await.unwrap().unwrap();
        tx.send_data(Bytes::from_static(b"b")).await.unwrap();
        // The downstream client does not read for a minute; the frame is waiting.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "b"
        );
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transport_error_is_unavailable() {
        let (tx, channel) = Channel::<Bytes, std::io::Error>::new(1);
        let mut body = IdleTimeout::new(channel, Duration::from_secs(15), None);
        tx.abort(std::io::Error::other("reset"));
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(error, DvvError::Unavailable { .. }), "{error:?}");
    }
}
