//! Attachment content: generated, never stored.
//!
//! Every byte is a pure function of `(messageId, attachmentId, offset)`, produced 64 KiB chunk
//! by chunk, so an attachment of any size (the seed has 1 GiB and 2.5 GiB ones) streams in
//! constant memory, a `Range` request gets exactly the bytes a full download has at those
//! offsets, and a test can recompute any part to check what it received.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

/// Size of one generated chunk; also the largest frame the body yields.
pub const CHUNK_SIZE: u64 = 64 * 1024;

/// Fills `out` with the content of chunk number `index` of an attachment, starting `skip`
/// bytes into the chunk. `out.len() + skip` must not exceed [`CHUNK_SIZE`].
fn fill_chunk(message_id: i64, attachment_id: i64, index: u64, skip: usize, out: &mut [u8]) {
    let mut state = splitmix(
        (message_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (attachment_id as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ index.wrapping_mul(0x1656_67B1_9E37_79F9),
    );
    let first_word = skip / 8;
    // Advance to the first word needed; the generator is cheap, so skipping is too.
    for _ in 0..first_word {
        state = next(state).0;
    }
    let mut pos = 0;
    let mut offset_in_word = skip % 8;
    while pos < out.len() {
        let (s, word) = next(state);
        state = s;
        let bytes = word.to_le_bytes();
        let take = (8 - offset_in_word).min(out.len() - pos);
        out[pos..pos + take].copy_from_slice(&bytes[offset_in_word..offset_in_word + take]);
        pos += take;
        offset_in_word = 0;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*: one state step and one output word.
fn next(mut x: u64) -> (u64, u64) {
    if x == 0 {
        x = 0x2545_F491_4F6C_DD1D;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    (x, x.wrapping_mul(0x2545_F491_4F6C_DD1D))
}

/// The bytes `[offset, offset + len)` of an attachment. Tests use it to check downloads.
pub fn bytes_at(message_id: i64, attachment_id: i64, offset: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut done = 0usize;
    while done < len {
        let at = offset + done as u64;
        let index = at / CHUNK_SIZE;
        let skip = (at % CHUNK_SIZE) as usize;
        let take = (CHUNK_SIZE as usize - skip).min(len - done);
        fill_chunk(
            message_id,
            attachment_id,
            index,
            skip,
            &mut out[done..done + take],
        );
        done += take;
    }
    out
}

/// A streaming body for the bytes `[start, end)` of an attachment, one chunk per frame.
///
/// Frames are generated only when hyper polls for the next one, that is when the client has
/// taken the previous one, so memory stays at one chunk however large the attachment is.
#[derive(Debug)]
pub struct AttachmentBody {
    message_id: i64,
    attachment_id: i64,
    position: u64,
    end: u64,
    canaries: Option<crate::canary::Canaries>,
}

impl AttachmentBody {
    /// The body for `[start, end)`.
    pub fn new(message_id: i64, attachment_id: i64, start: u64, end: u64) -> Self {
        Self {
            message_id,
            attachment_id,
            position: start,
            end: end.max(start),
            canaries: None,
        }
    }

    /// Recording mode: every 64 KiB chunk starts with a canary (see [`crate::canary`]).
    pub fn with_canaries(mut self, canaries: Option<crate::canary::Canaries>) -> Self {
        self.canaries = canaries;
        self
    }
}

/// Overwrites the part of a chunk's canary marker that falls into `out`, which holds the chunk's
/// bytes from `skip` on.
fn overlay(marker: &[u8], skip: usize, out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        match marker.get(skip + i) {
            Some(m) => *byte = *m,
            None => break,
        }
    }
}

impl Body for AttachmentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.position >= this.end {
            return Poll::Ready(None);
        }
        let index = this.position / CHUNK_SIZE;
        let skip = (this.position % CHUNK_SIZE) as usize;
        let take = (CHUNK_SIZE - skip as u64).min(this.end - this.position) as usize;
        let mut buf = BytesMut::zeroed(take);
        fill_chunk(this.message_id, this.attachment_id, index, skip, &mut buf);
        if let Some(c) = &this.canaries {
            overlay(
                &c.chunk_marker(this.message_id, this.attachment_id, index),
                skip,
                &mut buf,
            );
        }
        this.position += take as u64;
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.position >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn any_slice_matches_the_whole() {
        let whole = bytes_at(4100001, 7100001, 0, 3 * CHUNK_SIZE as usize + 17);
        for (start, len) in [
            (0, 1),
            (5, 100),
            (65_530, 20),
            (131_071, 65_537),
            (196_000, 625),
        ] {
            assert_eq!(
                bytes_at(4100001, 7100001, start, len),
                &whole[start as usize..start as usize + len],
                "slice at {start}"
            );
        }
        assert_ne!(bytes_at(4100001, 7100002, 0, 64), &whole[..64]);
    }

    #[tokio::test]
    async fn canaries_start_every_chunk_and_ranges_agree() {
        let c = crate::canary::Canaries {
            prefix: "CNRY0011223344556677".into(),
        };
        let size = 2 * CHUNK_SIZE + 10;
        let whole = AttachmentBody::new(1, 2, 0, size)
            .with_canaries(Some(c.clone()))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let marker = c.chunk_marker(1, 2, 1);
        let at = CHUNK_SIZE as usize;
        assert_eq!(&whole[at..at + marker.len()], &marker[..]);
        let part = AttachmentBody::new(1, 2, CHUNK_SIZE + 3, CHUNK_SIZE + 9)
            .with_canaries(Some(c))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&part[..], &whole[at + 3..at + 9]);
    }

    #[tokio::test]
    async fn body_streams_the_range() {
        let body = AttachmentBody::new(1, 2, 65_000, 200_000);
        assert_eq!(body.size_hint().exact(), Some(135_000));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], &bytes_at(1, 2, 65_000, 135_000)[..]);
    }
}
