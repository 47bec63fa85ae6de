//! Content on its way out: an attachment streamed from DVV to the operator's client, bounded by
//! how the client reads and by the consent it was released under.
//!
//! A pump task reads DVV's body and hands each frame to the client through a one-frame channel.
//! The stream is cut — DVV's body dropped at once, so its connection and bulkhead slot are free
//! again, and the client's stream ends in an error, never as a complete file — when:
//!
//! - the client has not taken a frame for `server.write_idle_timeout_ms` (a phone out of
//!   coverage, a client that stopped reading): it can hold nothing upstream beyond that;
//! - the consent is revoked (events feed, a replica's notice, a DVV refusal), or a periodic
//!   re-check within the revocation bound (the consent cache's expiry) no longer finds it active.
//!
//! A cut stream whose client still does not let go within another write-idle period is reported
//! to its connection, which is then drained and closed (HTTP/2 gives no handle to reset one
//! stream whose window the client keeps shut).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::consent::{RevocationNews, RevocationWatch};
use crate::dvv::DvvError;
use crate::server::ConnectionHandle;

/// Why a stream was cut before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The client accepted nothing for the write-idle deadline.
    WriteIdle,
    /// The consent ended (or could not be confirmed) while the stream ran.
    Revoked,
}

/// States of a stream shared by its pump and its body.
const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const CUT_WRITE_IDLE: u8 = 2;
const CUT_REVOKED: u8 = 3;

impl CutReason {
    fn state(self) -> u8 {
        match self {
            Self::WriteIdle => CUT_WRITE_IDLE,
            Self::Revoked => CUT_REVOKED,
        }
    }

    /// Metric label and audit outcome.
    pub fn label(self) -> &'static str {
        match self {
            Self::WriteIdle => "write_idle",
            Self::Revoked => "revoked",
        }
    }
}

/// Why the outgoing body failed: DVV's stream failed, or the gateway cut it.
#[derive(Debug, thiserror::Error)]
pub enum OutflowError {
    /// DVV's body failed (stalled, connection lost).
    #[error(transparent)]
    Upstream(#[from] DvvError),
    /// The gateway cut the stream.
    #[error("stream cut: {}", .0.label())]
    Cut(CutReason),
}

/// A future answering "is the consent this stream runs under still active?" (`false` also when
/// it cannot be confirmed: fail closed).
pub type ConsentCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Everything a stream needs to know to stop in time.
pub struct Bounds {
    /// `server.write_idle_timeout_ms`.
    pub write_idle: Duration,
    /// How often the consent is confirmed while the stream runs (the revocation bound).
    pub recheck_every: Duration,
    /// Revocations of the stream's consent as they become known.
    pub revocations: RevocationWatch,
    /// The periodic confirmation.
    pub still_active: ConsentCheck,
    /// The client's connection, told when a cut stream does not end.
    pub connection: Option<ConnectionHandle>,
    /// Called once when the stream is cut (metrics, audit).
    pub on_cut: Box<dyn FnOnce(CutReason) + Send>,
}

/// Starts pumping `upstream` to the client under `bounds`; the returned body is what the client
/// reads.
pub fn bounded<B>(upstream: B, bounds: Bounds) -> BoundedBody
where
    B: Body<Data = Bytes, Error = DvvError> + Send + Unpin + 'static,
{
    let (sender, receiver) = mpsc::channel(1);
    let state = Arc::new(AtomicU8::new(RUNNING));
    let size_hint = upstream.size_hint();
    let (alive, client_gone) = tokio::sync::oneshot::channel();
    tokio::spawn(pump(
        upstream,
        sender,
        Arc::clone(&state),
        client_gone,
        bounds,
    ));
    BoundedBody {
        receiver,
        state,
        size_hint,
        _alive: alive,
    }
}

async fn pump<B>(
    mut upstream: B,
    sender: mpsc::Sender<Result<Bytes, DvvError>>,
    state: Arc<AtomicU8>,
    client_gone: tokio::sync::oneshot::Receiver<()>,
    bounds: Bounds,
) where
    B: Body<Data = Bytes, Error = DvvError> + Unpin,
{
    let Bounds {
        write_idle,
        recheck_every,
        revocations,
        still_active,
        connection,
        on_cut,
    } = bounds;
    let mut consent = ConsentWatch::new(revocations, still_active, recheck_every);
    let cut = loop {
        let frame = tokio::select! {
            frame = upstream.frame() => frame,
            reason = consent.next() => {
                if !consent.holds(reason).await {
                    break CutReason::Revoked;
                }
                continue;
            }
        };
        let data = match frame {
            None => {
                state.store(FINISHED, Ordering::Release);
                return;
            }
            Some(Err(error)) => {
                // The client learns DVV's failure if it is still reading; if not, nothing waits.
                let _ = tokio::time::timeout(write_idle, sender.send(Err(error))).await;
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers: attachments have none worth passing on
            },
        };
        let deadline = tokio::time::sleep(write_idle);
        tokio::pin!(deadline);
        let send = sender.send(Ok(data));
        tokio::pin!(send);
        let outcome = loop {
            tokio::select! {
                sent = &mut send => break sent.map_err(|_| None),
                _ = &mut deadline => break Err(Some(CutReason::WriteIdle)),
                reason = consent.next() => {
                    if !consent.holds(reason).await {
                        break Err(Some(CutReason::Revoked));
                    }
                }
            }
        };
        match outcome {
            Ok(()) => {}
            Err(None) => return, // the client went away: nothing to cut
            Err(Some(reason)) => break reason,
        }
    };
    drop(consent);
    // Free DVV's side first: its connection and the bulkhead slot go with the body.
    drop(upstream);
    state.store(cut.state(), Ordering::Release);
    crate::telemetry::metrics::with(|m| m.streams_cut.with_label_values(&[cut.label()]).inc());
    on_cut(cut);
    // The client's side ends with an error when it reads next (the channel closes now); one
    // that does not read for another write-idle period is handed to its connection to drain
    // and close.
    drop(sender);
    if tokio::time::timeout(write_idle, client_gone).await.is_err() {
        if let Some(connection) = &connection {
            connection.stream_stuck();
        }
    }
}

/// Why the stream's consent is looked at again.
enum Recheck {
    /// The revocation watch spoke (this consent revoked, or revocations missed).
    News(RevocationNews),
    /// The periodic re-check within the revocation bound came due.
    Due,
}

/// The stream's consent: revocations as they become known, and the periodic re-check.
struct ConsentWatch {
    revocations: RevocationWatch,
    still_active: ConsentCheck,
    recheck: tokio::time::Interval,
}

impl ConsentWatch {
    fn new(revocations: RevocationWatch, still_active: ConsentCheck, every: Duration) -> Self {
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            revocations,
            still_active,
            recheck,
        }
    }

    /// The next reason to look at the consent again. Cancel-safe, so it can race the stream's
    /// frames; the look itself ([`Self::holds`]) runs outside the race, so a busy stream never
    /// starves a re-check.
    async fn next(&mut self) -> Recheck {
        tokio::select! {
            news = self.revocations.changed() => Recheck::News(news),
            _ = self.recheck.tick() => Recheck::Due,
        }
    }

    /// Whether the consent still holds: never after a revocation of it; otherwise only when the
    /// consent is confirmed active (fail closed).
    async fn holds(&self, reason: Recheck) -> bool {
        match reason {
            Recheck::News(RevocationNews::Revoked) => false,
            Recheck::News(RevocationNews::Missed) | Recheck::Due => (self.still_active)().await,
        }
    }
}

/// The client's side of a bounded stream: DVV's frames as the pump hands them over; an error,
/// never a clean end, when the stream was cut.
pub struct BoundedBody {
    receiver: mpsc::Receiver<Result<Bytes, DvvError>>,
    state: Arc<AtomicU8>,
    size_hint: SizeHint,
    /// Dropped with the body: tells the pump that the client's side has ended.
    _alive: tokio::sync::oneshot::Sender<()>,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = OutflowError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OutflowError>>> {
        let this = self.get_mut();
        match this.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => match this.state.load(Ordering::Acquire) {
                FINISHED => Poll::Ready(None),
                CUT_REVOKED => Poll::Ready(Some(Err(OutflowError::Cut(CutReason::Revoked)))),
                // Cut for the client's own silence, or the pump ended without a word (a panic):
                // either way the file is incomplete and must not look complete.
                _ => Poll::Ready(Some(Err(OutflowError::Cut(CutReason::WriteIdle)))),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}
