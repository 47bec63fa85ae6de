//! A request body that the gateway writes to DVV while it reads it from the operator: a channel
//! of at most [`IN_FLIGHT`] pieces, so memory is bounded whatever the upload's size, and an
//! upload that is not explicitly finished ends in an error. That error makes the HTTP client
//! abort the request mid-body (HTTP/1.1 chunked coding without its last chunk), which DVV reads
//! as an incomplete upload and drops whole: a partial reply can never look complete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// Pieces queued between the reader and the connection to DVV.
pub const IN_FLIGHT: usize = 2;

enum Piece {
    Data(Bytes),
    End,
}

/// The upload ended without being finished (a limit was broken, the operator's client went
/// away, the gateway gave up): DVV must drop what it received.
#[derive(Debug, thiserror::Error)]
#[error("upload aborted")]
pub struct UploadAborted;

/// Why a piece could not be handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// DVV took nothing for the idle timeout (slow or stuck).
    #[error("DVV took no data in time")]
    Stalled,
    /// The connection to DVV is gone (it answered or broke).
    #[error("the upload to DVV has ended")]
    Closed,
}

/// The writing end.
#[derive(Debug)]
pub struct UploadSender {
    tx: mpsc::Sender<Piece>,
}

/// The body handed to the HTTP client.
#[derive(Debug)]
pub struct UploadBody {
    rx: mpsc::Receiver<Piece>,
    ended: bool,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Data(b) => write!(f, "Data({} bytes)", b.len()),
            Self::End => f.write_str("End"),
        }
    }
}

/// A connected pair.
pub fn channel() -> (UploadSender, UploadBody) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    (UploadSender { tx }, UploadBody { rx, ended: false })
}

impl UploadSender {
    /// Hands `data` on, waiting at most `idle` for room.
    pub async fn send(&self, data: Bytes, idle: Duration) -> Result<(), SendError> {
        if data.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(idle, self.tx.send(Piece::Data(data))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Stalled),
        }
    }

    /// Marks the upload complete: the body ends cleanly after what was sent.
    pub async fn finish(self, idle: Duration) -> Result<(), SendError> {
        match tokio::time::timeout(idle, self.tx.send(Piece::End)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Stalled),
        }
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = UploadAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadAborted>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Data(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            // The sender was dropped without `finish`: abort.
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(UploadAborted)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_finished_upload_ends_cleanly_and_an_abandoned_one_fails() {
        let idle = Duration::from_secs(5);
        let (tx, body) = channel();
        let reader = tokio::spawn(body.collect());
        tx.send(Bytes::from_static(b"abc"), idle).await.unwrap();
        tx.finish(idle).await.unwrap();
        let collected = reader.await.unwrap().unwrap().to_bytes();
        assert_eq!(&collected[..], b"abc");

        let (tx, body) = channel();
        let reader = tokio::spawn(body.collect());
        tx.send(Bytes::from_static(b"abc"), idle).await.unwrap();
        drop(tx);
        assert!(
            reader.await.unwrap().is_err(),
            "an unfinished upload must fail"
        );
    }

    #[tokio::test]
    async fn a_reader_that_takes_nothing_stalls_the_sender_within_its_bound() {
        let (tx, _body) = channel();
        let idle = Duration::from_millis(50);
        for _ in 0..IN_FLIGHT {
            tx.send(Bytes::from_static(b"x"), idle).await.unwrap();
        }
        assert_eq!(
            tx.send(Bytes::from_static(b"x"), idle).await,
            Err(SendError::Stalled)
        );
    }
}
