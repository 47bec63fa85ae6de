//! The contract's vocabulary: the enumerations that appear in JSON exactly as spelled here.

use serde::{Deserialize, Serialize};

/// A consent's state as DVV reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentState {
    /// The citizen lets the provider show their mail.
    Active,
    /// The citizen withdrew the permission.
    Revoked,
}

/// How a message body is to be rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BodyFormat {
    /// Plain text.
    #[default]
    Text,
    /// CommonMark.
    Markdown,
}

/// Whether reading a message needs a receipt confirmation first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MessageServiceType {
    /// Readable at once.
    #[default]
    Normal,
    /// Body and attachments are withheld until the citizen confirms receipt.
    Verifiable,
}

/// The event types of the events feed, with their contract spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A message arrived for a citizen with an active consent.
    #[serde(rename = "Electronic message created")]
    MessageCreated,
    /// A message was opened for the first time, in any window.
    #[serde(rename = "Electronic message read")]
    MessageRead,
    /// The citizen confirmed receipt of a verifiable message.
    #[serde(rename = "Receipt confirmed")]
    ReceiptConfirmed,
    /// The citizen granted this provider a consent.
    #[serde(rename = "Consent granted")]
    ConsentGranted,
    /// The citizen revoked this provider's consent.
    #[serde(rename = "Consent revoked")]
    ConsentRevoked,
    /// The citizen replied to a message (through any window).
    #[serde(rename = "Electronic message from end user")]
    MessageFromEndUser,
}

/// Who may reply to a message, as its sender set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReplyAllowedBy {
    /// The recipient may reply.
    Anyone,
    /// No reply is accepted.
    #[default]
    #[serde(rename = "No one")]
    NoOne,
}

/// Whether `s` is a usable provider id: 1–64 of `[a-z0-9-]`, so it is safe in paths and URLs.
pub fn is_valid_provider_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
