//! One audit record: who (as a pseudonym) did what to which ids, when, and how it ended. Ids and
//! times only: never a title, body, attachment byte, token or identity code.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The kinds of access the trail records; each operator-API route names its own
/// (`api::routes::Route::action`), so no route is served without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `GET /v1/consent`.
    ConsentCheck,
    /// `GET /v1/messages`.
    InboxList,
    /// `GET /v1/messages/{id}`.
    MessageRead,
    /// `GET /v1/messages/{id}/attachments/{id}`.
    Attachment,
    /// `POST /v1/messages/{id}/receipt`.
    ReceiptConfirmation,
    /// `POST /v1/messages/{id}/replies`.
    Reply,
}

/// What the trail keeps of a citizen's reply: its id at DVV and, of each part, its kind, size
/// and SHA-256. Never the text, a file's bytes or a file's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyEvidence {
    /// The reply's id at DVV, once DVV answered with one.
    pub reply_id: Option<i64>,
    /// The parts relayed so far, in order.
    pub parts: Vec<PartEvidence>,
}

/// One part of a reply, described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartEvidence {
    /// `text` or `file`.
    pub kind: String,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// How an access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Served (2xx).
    Ok,
    /// Refused by the gateway or DVV (4xx: no assertion, no consent, rate limit, not found...).
    Refused,
    /// Failed (5xx: DVV down, store or audit unavailable...).
    Failed,
}

impl Outcome {
    /// The outcome of an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=399 => Self::Ok,
            400..=499 => Self::Refused,
            _ => Self::Failed,
        }
    }
}

/// What the operator API knows about one access, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// When the access was answered.
    pub time: DateTime<Utc>,
    /// The request id (also in the `x-request-id` header and the access log).
    pub request_id: String,
    /// What was accessed.
    pub action: Action,
    /// The consent through which DVV was addressed, when known.
    pub consent_id: Option<String>,
    /// The message, for message, attachment and receipt routes.
    pub message_id: Option<i64>,
    /// The attachment, for the attachment route.
    pub attachment_id: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
    /// The error kind (a fixed label), for refusals and failures.
    pub reason: Option<&'static str>,
    /// DVV's trace id of the call, when DVV was called.
    pub trace_id: Option<String>,
    /// The citizen's keyed pseudonym, when the assertion verified.
    pub citizen: Option<String>,
    /// For a reply: its id and what was relayed of each part.
    pub reply: Option<ReplyEvidence>,
}

/// A chained line as written: the access plus its sequence number and the previous line's hash.
/// Field order is fixed; the line's hash is SHA-256 over exactly the bytes written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Line {
    /// Position in the chain, from 0, continuing across rotated files.
    pub seq: u64,
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// Request id.
    pub request_id: String,
    /// Action.
    pub action: Action,
    /// Consent id.
    pub consent_id: Option<String>,
    /// Message id.
    pub message_id: Option<i64>,
    /// Attachment id.
    pub attachment_id: Option<i64>,
    /// Outcome.
    pub outcome: Outcome,
    /// HTTP status.
    pub status: u16,
    /// Error kind.
    pub reason: Option<String>,
    /// DVV trace id.
    pub trace_id: Option<String>,
    /// Keyed pseudonym of the citizen.
    pub citizen: Option<String>,
    /// For a reply: its id and each part's size and SHA-256 (absent on other lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyEvidence>,
    /// Hex SHA-256 of the previous line (64 zeros for the first line of the chain).
    pub prev: String,
}

impl Line {
    /// Chains `access` after the line whose hash is `prev`.
    pub fn chain(access: Access, seq: u64, prev: &str) -> Line {
        Line {
            seq,
            time: access.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            request_id: access.request_id,
            action: access.action,
            consent_id: access.consent_id,
            message_id: access.message_id,
            attachment_id: access.attachment_id,
            outcome: access.outcome,
            status: access.status,
            reason: access.reason.map(str::to_owned),
            trace_id: access.trace_id,
            citizen: access.citizen,
            reply: access.reply,
            prev: prev.to_owned(),
        }
    }
}

/// The `prev` of the chain's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256 of a line's bytes (without its newline).
pub fn hash_line(line: &[u8]) -> String {
    hex::encode(crate::digest::sha256(line))
}
