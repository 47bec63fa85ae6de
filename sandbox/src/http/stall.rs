//! The "stall" fault: a body that sends part of itself and then never continues.
//!
//! It stands in for a backend that hangs mid-response, which a client must survive with its
//! own read timeout. The connection stays open until the client gives up.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::Body as ResponseBody;

/// Passes through about half of the inner body (at least one byte, at most 64 KiB), then
/// stays pending forever.
pub struct StallBody {
    inner: ResponseBody,
    remaining: u64,
    declared: SizeHint,
}

impl StallBody {
    /// Wraps a body.
    pub fn new(inner: ResponseBody) -> Self {
        let declared = inner.size_hint();
        let total = declared.exact().unwrap_or(declared.lower());
        let remaining = (total / 2).clamp(1, 64 * 1024);
        Self {
            inner,
            remaining,
            declared,
        }
    }
}

impl Body for StallBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            // Deliberately never woken: the stall.
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > this.remaining {
                        data.truncate(this.remaining as usize);
                    }
                    this.remaining -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(None) => {
                this.remaining = 0;
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.declared
    }
}
