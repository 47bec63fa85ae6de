//! hyper answers some malformed HTTP/1 requests itself (400 for a bad request line or header,
//! 414, 431 for a head over the size limit) before any service runs, so those answers carry none
//! of the headers the operator API puts on every answer. [`StampAnswers`] wraps a connection and
//! stamps `Cache-Control: no-store` and a fresh `x-request-id` into such an answer as it is
//! written, and logs the id, so that every 4xx/5xx the gateway produces carries both.
//!
//! It follows the HTTP/1 responses written on the connection (heads and `Content-Length` bodies)
//! and only ever edits a response *head* that starts while no body is in flight, is a 4xx/5xx and
//! has no `x-request-id` (the service stamps one on every answer it makes). Whenever it cannot be
//! sure where it is (chunked bodies, a head split across writes, HTTP/2, anything unexpected) it
//! stops looking and passes bytes through unchanged for the rest of the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the wrapper knows of the response stream so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Track {
    /// Nothing written yet: HTTP/1 or not is decided by the first write.
    Start,
    /// Between responses: the next write starts a head.
    Idle,
    /// This many body bytes of the current response are still to come.
    Body(u64),
    /// Not HTTP/1, or lost track: pass everything through.
    Off,
}

/// A connection whose HTTP/1 automatic error answers get the gateway's headers.
#[derive(Debug)]
pub struct StampAnswers<IO> {
    io: IO,
    track: Track,
    /// A rewritten head still to be written, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<IO> StampAnswers<IO> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: IO) -> Self {
        Self {
            io,
            track: Track::Start,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// A parsed response head: where it ends, its status, whether the service named it, and how
/// long its body is (`None`: not known from the head).
struct Head {
    len: usize,
    status: u16,
    has_request_id: bool,
    body: Option<u64>,
}

fn parse_head(buf: &[u8]) -> Option<Head> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let (mut has_request_id, mut length, mut chunked) = (false, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "x-request-id" => has_request_id = true,
            "content-length" => length = value.trim().parse::<u64>().ok(),
            "transfer-encoding" => chunked = true,
            _ => {}
        }
    }
    let body = match status {
        100..=199 | 204 | 304 => Some(0),
        _ if chunked => None,
        _ => length,
    };
    Some(Head {
        len: end,
        status,
        has_request_id,
        body,
    })
}

/// The head with `Cache-Control: no-store` and `x-request-id` added before its blank line.
fn stamped(head: &[u8], request_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 80);
    out.extend_from_slice(&head[..head.len() - 2]);
    out.extend_from_slice(b"cache-control: no-store\r\nx-request-id: ");
    out.extend_from_slice(request_id.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

impl<IO: AsyncWrite + Unpin> StampAnswers<IO> {
    /// Writes what is left of a rewritten head; ready when nothing is pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn write_tracked(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if self.track == Track::Start {
            self.track = if buf.starts_with(b"HTTP/1.") {
                Track::Idle
            } else {
                Track::Off
            };
        }
        match self.track {
            Track::Start | Track::Off => Pin::new(&mut self.io).poll_write(cx, buf),
            Track::Body(left) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &buf[..take]))?;
                let left = left - n as u64;
                self.track = if left == 0 {
                    Track::Idle
                } else {
                    Track::Body(left)
                };
                Poll::Ready(Ok(n))
            }
            Track::Idle => {
                let Some(head) = parse_head(buf) else {
                    self.track = Track::Off;
                    return Pin::new(&mut self.io).poll_write(cx, buf);
                };
                self.track = match head.body {
                    Some(0) => Track::Idle,
                    Some(n) => Track::Body(n),
                    None => Track::Off,
                };
                if head.status < 400 || head.has_request_id {
                    // The service's own answer: the head goes out as it is.
                    let n = ready!(Pin::new(&mut self.io).poll_write(cx, &buf[..head.len]));
                    return match n {
                        Ok(n) if n < head.len => {
                            // Only part of the head went: what follows is no longer a head.
                            self.track = Track::Off;
                            Poll::Ready(Ok(n))
                        }
                        other => Poll::Ready(other),
                    };
                }
                let request_id = uuid::Uuid::new_v4().to_string();
                tracing::info!(
                    request_id,
                    status = head.status,
                    "request refused by the HTTP layer before the operator API saw it"
                );
                self.pending = stamped(&buf[..head.len], &request_id);
                self.written = 0;
                // The head counts as written; its rewritten bytes go out now or at the next
                // write, flush or shutdown.
                let _ = self.poll_pending(cx)?;
                Poll::Ready(Ok(head.len))
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StampAnswers<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StampAnswers<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_tracked(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.track == Track::Off && self.pending.is_empty() {
            return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        }
        // While tracking, one slice at a time (hyper puts a whole head in one slice).
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) => self.write_tracked(cx, first),
            None => Poll::Ready(Ok(0)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn through(writes: &[&[u8]]) -> String {
        let mut out = StampAnswers::new(Vec::new());
        for w in writes {
            out.write_all(w).await.unwrap();
        }
        out.flush().await.unwrap();
        String::from_utf8(out.io).unwrap()
    }

    #[tokio::test]
    async fn an_automatic_error_answer_is_stamped() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 08:00:00 GMT\r\n\r\n";
        let out = through(&[hyper_431]).await;
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("\r\ncache-control: no-store\r\n"), "{out}");
        assert!(out.contains("\r\nx-request-id: "), "{out}");
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[tokio::test]
    async fn the_services_answers_and_bodies_pass_unchanged() {
        let ours = b"HTTP/1.1 404 Not Found\r\nx-request-id: abc\r\ncontent-length: 20\r\n\r\n";
        // A body that looks like an unstamped error head must never be edited.
        let body = b"HTTP/1.1 400 Bad\r\n\r\n";
        let ok = b"HTTP/1.1 200 OK\r\nx-request-id: def\r\ncontent-length: 0\r\n\r\n";
        let out = through(&[ours, body, ok]).await;
        let want = [&ours[..], body, ok].concat();
        assert_eq!(out.as_bytes(), &want[..]);

        // HTTP/2 (or anything not starting as HTTP/1) passes through untouched.
        let h2 = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00HTTP/1.1 400 Bad\r\n\r\n";
        assert_eq!(through(&[h2]).await.as_bytes(), &h2[..]);
    }

    #[tokio::test]
    async fn a_chunked_body_turns_tracking_off() {
        let chunked = b"HTTP/1.1 200 OK\r\nx-request-id: a\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = b"HTTP/1.1 431 X\r\n\r\n";
        let out = through(&[chunked, chunk]).await;
        assert_eq!(out.as_bytes(), &[&chunked[..], chunk].concat()[..]);
    }
}
