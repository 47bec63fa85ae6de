//! The limits DVV puts on a citizen's reply, and the file types it accepts.
//!
//! Where the Suomi.fi Messages REST API states a figure, the defaults are that figure: a message
//! text of at most 40 000 characters, at most 50 files on one message, each upload at most
//! 10 MiB (10 485 760 bytes), and the twelve file types its current upload operation names. The
//! REST API states no total for a message; 100 MiB is the sandbox's own choice. Tests and demos
//! raise the limits through [`crate::SandboxOptions`] (a 100 MiB attachment is the figure the
//! gateway's memory is measured with).

use serde::Serialize;

/// The file types a reply may carry (the media type of each file part, parameters ignored).
pub const ACCEPTED_MEDIA_TYPES: [&str; 12] = [
    "application/msword",
    "application/pdf",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/jpeg",
    "image/png",
    "text/plain",
];

/// What one reply may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyLimits {
    /// Characters of the text.
    pub max_body_chars: u64,
    /// Bytes of one file.
    pub max_file_bytes: u64,
    /// Files on one reply.
    pub max_files: u64,
    /// Bytes of all files together.
    pub max_total_bytes: u64,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_body_chars: 40_000,
            max_file_bytes: 10 * 1024 * 1024,
            max_files: 50,
            max_total_bytes: 100 * 1024 * 1024,
        }
    }
}

/// Room for the multipart framing (boundaries, part headers) on top of the parts themselves.
pub const FRAMING_BYTES_PER_PART: u64 = 1024;

impl ReplyLimits {
    /// The largest request body a reply within these limits can have: the text at four bytes a
    /// character, every file, and the framing of every part. A declared `Content-Length` above
    /// it is refused before the body is read.
    pub fn max_request_bytes(&self) -> u64 {
        self.max_body_chars
            .saturating_mul(4)
            .saturating_add(self.max_total_bytes)
            .saturating_add(FRAMING_BYTES_PER_PART.saturating_mul(self.max_files + 1))
    }
}

/// Whether `media_type` (parameters allowed) is one a reply may carry.
pub fn accepted(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ACCEPTED_MEDIA_TYPES.contains(&essence.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_matched_by_essence() {
        assert!(accepted("application/pdf"));
        assert!(accepted("Text/Plain; charset=utf-8"));
        assert!(!accepted("application/x-msdownload"));
        assert!(!accepted("application/zip"));
        assert!(!accepted(""));
    }

    #[test]
    fn the_request_ceiling_covers_text_files_and_framing() {
        let limits = ReplyLimits::default();
        assert_eq!(
            limits.max_request_bytes(),
            160_000 + 100 * 1024 * 1024 + 51 * 1024
        );
    }
}
