//! A citizen's reply on its way to DVV: the operator's `multipart/form-data` upload read part by
//! part and chunk by chunk, checked against DVV's limits as it flows, and written straight into
//! the upload to DVV (a new multipart body with the gateway's own boundary). Nothing is kept:
//! each chunk is counted, hashed and handed on; the text part (at most the text limit) is the
//! only thing held whole, for the moment it takes to check it.
//!
//! The relay knows no HTTP framework: it reads a stream of byte chunks and writes into an
//! [`UploadSender`]. When it fails for any reason it drops the sender unfinished, which aborts
//! the upload to DVV mid-body, so DVV drops the partial reply.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use crate::dvv::upload::{SendError, UploadSender};
use crate::dvv::{ReplyLimits, ReplyReceipt};

/// Room for one part's multipart framing (boundary line and part headers), also in the ceiling
/// on a declared `Content-Length`.
pub const FRAMING_BYTES_PER_PART: u64 = 1024;

/// The file types DVV's contract accepts on a reply (its `acceptedMediaTypes`); DVV's own list
/// from the policy call is what is enforced.
pub fn media_type_accepted(accepted: &[String], media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    !essence.is_empty() && accepted.iter().any(|a| a.eq_ignore_ascii_case(&essence))
}

/// The largest request body a reply within `limits` can have; a declared `Content-Length`
/// above it is refused before a byte is read.
pub fn max_request_bytes(limits: &ReplyLimits) -> u64 {
    limits
        .max_body_chars
        .saturating_mul(4)
        .saturating_add(limits.max_total_bytes)
        .saturating_add(FRAMING_BYTES_PER_PART.saturating_mul(limits.max_files.saturating_add(1)))
}

/// What kind of part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// The text.
    Text,
    /// A file.
    File,
}

/// What the gateway saw of one part: its size and SHA-256, never its content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartTally {
    /// Text or file.
    pub kind: PartKind,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// Why a reply did not make it through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// A limit was broken (which one is the reason).
    #[error("reply too large: {0}")]
    TooLarge(&'static str),
    /// A file's type is not accepted.
    #[error("file type not accepted")]
    TypeNotAccepted,
    /// The upload is not a reply's shape (the reason says how).
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
    /// The operator's upload ended early or broke.
    #[error("the upload from the operator broke off")]
    ClientGone,
    /// The operator's upload sent nothing for the idle timeout.
    #[error("the upload from the operator stalled")]
    ClientStalled,
    /// DVV stopped taking the upload.
    #[error("the upload to DVV failed: {0}")]
    Upstream(SendError),
}

/// The bounds of one relay.
#[derive(Debug, Clone)]
pub struct RelayBounds {
    /// DVV's limits.
    pub limits: ReplyLimits,
    /// DVV's accepted file types.
    pub accepted: Vec<String>,
    /// Longest wait for the operator's next chunk.
    pub read_idle: Duration,
    /// Longest wait for DVV to take a chunk.
    pub write_idle: Duration,
}

/// Relays a reply from `input` (multipart with `boundary`) to `out` (multipart with
/// `out_boundary`) under `bounds`, and answers what it saw of each part. The upload is finished
/// only when every part arrived within the limits; on any error `out` is dropped unfinished.
pub async fn relay<S, E>(
    input: S,
    boundary: String,
    out: UploadSender,
    out_boundary: &str,
    bounds: &RelayBounds,
) -> Result<Vec<PartTally>, RelayError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let limits = bounds.limits;
    let mut multipart = multer::Multipart::new(input, boundary);
    let mut tally: Vec<PartTally> = Vec::new();
    let mut files = 0u64;
    let mut total = 0u64;
    let send = |data: Bytes| out.send(data, bounds.write_idle);
    loop {
        let next = tokio::time::timeout(bounds.read_idle, multipart.next_field())
            .await
            .map_err(|_| RelayError::ClientStalled)?;
        let Some(mut field) = next.map_err(client_error)? else {
            break;
        };
        let name = field.name().unwrap_or("").to_owned();
        let file_name = field.file_name().map(str::to_owned);
        match (name.as_str(), file_name) {
            ("body", None) if tally.is_empty() => {
                let cap = limits.max_body_chars.saturating_mul(4);
                let mut text = Vec::new();
                while let Some(chunk) = next_chunk(&mut field, bounds.read_idle).await? {
                    if (text.len() + chunk.len()) as u64 > cap {
                        return Err(RelayError::TooLarge("text"));
                    }
                    text.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(text)
                    .map_err(|_| RelayError::Malformed("the text is not UTF-8"))?;
                if text.trim().is_empty() {
                    return Err(RelayError::Malformed("the text is empty"));
                }
                if text.chars().count() as u64 > limits.max_body_chars {
                    return Err(RelayError::TooLarge("text"));
                }
                let head = format!(
                    "--{out_boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                );
                send(Bytes::from(head))
                    .await
                    .map_err(RelayError::Upstream)?;
                tally.push(PartTally {
                    kind: PartKind::Text,
                    size: text.len() as u64,
                    sha256: hex::encode(crate::digest::sha256(text.as_bytes())),
                });
                send(Bytes::from(text))
                    .await
                    .map_err(RelayError::Upstream)?;
                send(Bytes::from_static(b"\r\n"))
                    .await
                    .map_err(RelayError::Upstream)?;
            }
            // A browser form whose file input was left empty sends an empty part with an empty
            // file name: nothing to relay.
            ("file", Some(file_name)) if !tally.is_empty() && file_name.is_empty() => {
                while let Some(chunk) = next_chunk(&mut field, bounds.read_idle).await? {
                    if !chunk.is_empty() {
                        return Err(RelayError::Malformed("a file part without a file name"));
                    }
                }
            }
            ("file", Some(file_name)) if !tally.is_empty() => {
                if !plain_file_name(&file_name) {
                    return Err(RelayError::Malformed("a file name is not a plain name"));
                }
                let media_type = field
                    .content_type()
                    .map(|m| m.essence_str().to_owned())
                    .unwrap_or_default();
                if !media_type_accepted(&bounds.accepted, &media_type) {
                    return Err(RelayError::TypeNotAccepted);
                }
                files += 1;
                if files > limits.max_files {
                    return Err(RelayError::TooLarge("file count"));
                }
                let head = format!(
                    "--{out_boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {media_type}\r\n\r\n"
                );
                send(Bytes::from(head))
                    .await
                    .map_err(RelayError::Upstream)?;
                let mut size = 0u64;
                let mut hash = Sha256::new();
                while let Some(chunk) = next_chunk(&mut field, bounds.read_idle).await? {
                    size += chunk.len() as u64;
                    total += chunk.len() as u64;
                    if size > limits.max_file_bytes {
                        return Err(RelayError::TooLarge("file size"));
                    }
                    if total > limits.max_total_bytes {
                        return Err(RelayError::TooLarge("total size"));
                    }
                    hash.update(&chunk);
                    send(chunk).await.map_err(RelayError::Upstream)?;
                }
                send(Bytes::from_static(b"\r\n"))
                    .await
                    .map_err(RelayError::Upstream)?;
                tally.push(PartTally {
                    kind: PartKind::File,
                    size,
                    sha256: hex::encode(hash.finalize()),
                });
            }
            _ => {
                return Err(RelayError::Malformed(
                    "a reply is one body part followed by file parts",
                ))
            }
        }
    }
    if tally.is_empty() {
        return Err(RelayError::Malformed("the body part is missing"));
    }
    send(Bytes::from(format!("--{out_boundary}--\r\n")))
        .await
        .map_err(RelayError::Upstream)?;
    match out.finish(bounds.write_idle).await {
        // DVV has every part, closing boundary included, and has stopped reading (it answered
        // and the HTTP client dropped the rest): the tally stands, and DVV's answer, judged
        // against it, says whether it took the reply.
        Ok(()) | Err(SendError::Closed) => Ok(tally),
        Err(e) => Err(RelayError::Upstream(e)),
    }
}

/// Whether DVV's receipt describes exactly the files the gateway relayed (sizes and SHA-256, in
/// order): anything else means the bytes changed on the way.
pub fn receipt_matches(receipt: &ReplyReceipt, tally: &[PartTally]) -> bool {
    let files: Vec<&PartTally> = tally.iter().filter(|p| p.kind == PartKind::File).collect();
    receipt.attachments.len() == files.len()
        && receipt
            .attachments
            .iter()
            .zip(files)
            .all(|(a, p)| a.size == p.size && a.sha256.eq_ignore_ascii_case(&p.sha256))
}

async fn next_chunk(
    field: &mut multer::Field<'_>,
    idle: Duration,
) -> Result<Option<Bytes>, RelayError> {
    tokio::time::timeout(idle, field.chunk())
        .await
        .map_err(|_| RelayError::ClientStalled)?
        .map_err(client_error)
}

/// multer's errors: limits it enforces itself are not used, so an error is a malformed body or
/// a stream that broke off.
fn client_error(e: multer::Error) -> RelayError {
    match e {
        multer::Error::StreamReadFailed(_) | multer::Error::IncompleteStream => {
            RelayError::ClientGone
        }
        multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteHeaders => {
            RelayError::ClientGone
        }
        _ => RelayError::Malformed("the body is not well-formed multipart/form-data"),
    }
}

/// A file name fit to pass on in a quoted header parameter: no path, quotes or control
/// characters, 1 to 255 characters.
fn plain_file_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | '/'))
}

#[cfg(test)]
mod tests;
