//! The upstream contract's JSON shapes (`docs/dvv-viewing-api.yaml`), camelCase as DVV's house style.
//!
//! This module is the one place that changes when DVV publishes its real API. Response types are
//! tolerant of fields they do not know (DVV may add fields), strict about the ones they need.
//! Types that hold message content (titles, bodies, attachment names) have a `Debug` that leaves
//! the content out, so a stray `{:?}` cannot put it in a log.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// A point in time as DVV writes it: RFC 3339 UTC with milliseconds.
pub type Timestamp = DateTime<Utc>;

/// Writes a timestamp with millisecond precision and `Z`, as the contract requires.
fn millis<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn millis_opt<S: Serializer>(time: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => millis(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// Body of `POST /v1/consents/lookup`. The identity code travels only here, in a POST body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsentLookup<'a> {
    pub end_user_id: &'a str,
}

impl fmt::Debug for ConsentLookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsentLookup { end_user_id: <redacted> }")
    }
}

/// Whether a citizen's consent for this provider is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentState {
    /// The citizen has authorised this provider.
    Active,
    /// The citizen has withdrawn the authorisation.
    Revoked,
}

/// The citizen's consent for this provider, as `POST /v1/consents/lookup` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRecord {
    /// Opaque id addressing the consent (and so the citizen) in every message call.
    pub consent_id: String,
    /// Active or revoked.
    pub state: ConsentState,
    /// When the consent was granted.
    #[serde(serialize_with = "millis")]
    pub granted_at: Timestamp,
    /// When it was revoked, if it was.
    #[serde(default, serialize_with = "millis_opt")]
    pub revoked_at: Option<Timestamp>,
}

/// `Normal` or `Verifiable` (proof of receipt required before the content is shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageServiceType {
    /// An ordinary message.
    Normal,
    /// A message whose content is released only after the citizen confirms receipt.
    Verifiable,
}

/// The format of a message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyFormat {
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
}

/// One message in an inbox page.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSummary {
    /// DVV's message id.
    pub message_id: i64,
    /// The sending organisation.
    pub sender_name: String,
    /// The title (content: never logged).
    pub title: String,
    /// When the message was created.
    #[serde(serialize_with = "millis")]
    pub created_at: Timestamp,
    /// When it was first opened in any window.
    #[serde(default, serialize_with = "millis_opt")]
    pub read_at: Option<Timestamp>,
    /// Normal or Verifiable.
    pub message_service_type: MessageServiceType,
    /// When receipt was confirmed (Verifiable messages).
    #[serde(default, serialize_with = "millis_opt")]
    pub receipt_confirmed_at: Option<Timestamp>,
    /// Number of attachments.
    pub attachment_count: u32,
    /// Whether the sender accepts a reply (absent: no one).
    #[serde(default)]
    pub reply_allowed_by: ReplyAllowedBy,
    /// For the sender's answer to a citizen's reply: the reply's id.
    #[serde(default)]
    pub in_reply_to_message_id: Option<i64>,
    /// The citizen's replies to this message (the thread), oldest first.
    #[serde(default)]
    pub replies: Vec<ReplyReceipt>,
    /// The sender's notification settings: what a notification about this message may show
    /// (`null` when DVV gave none). Passed on so that an app listing the inbox can keep them too.
    #[serde(default)]
    pub notifications: Option<MessageNotifications>,
}

impl fmt::Debug for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSummary")
            .field("message_id", &self.message_id)
            .field("title", &format_args!("<content>"))
            .field("created_at", &self.created_at)
            .field("read_at", &self.read_at)
            .field("message_service_type", &self.message_service_type)
            .field("receipt_confirmed_at", &self.receipt_confirmed_at)
            .field("attachment_count", &self.attachment_count)
            .finish_non_exhaustive()
    }
}

/// One page of a citizen's inbox, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// The messages of this page.
    pub messages: Vec<MessageSummary>,
    /// Pass back to get the next page; `None` when there are no more.
    #[serde(default)]
    pub continuation_token: Option<String>,
}

/// An attachment's metadata (the bytes come from [`super::DvvClient::get_attachment`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentMeta {
    /// DVV's attachment id.
    pub attachment_id: i64,
    /// The file name (content: never logged).
    pub name: String,
    /// The media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

impl fmt::Debug for AttachmentMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachmentMeta")
            .field("attachment_id", &self.attachment_id)
            .field("name", &format_args!("<content>"))
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .finish()
    }
}

/// One message in full. For an unconfirmed `Verifiable` message DVV withholds the content:
/// `body` is `None` and `attachments` is empty.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// Text or Markdown.
    pub body_format: BodyFormat,
    /// The body (content: never logged); `None` while withheld.
    #[serde(default)]
    pub body: Option<String>,
    /// The attachments' metadata; empty while withheld.
    #[serde(default)]
    pub attachments: Vec<AttachmentMeta>,
}

impl MessageDetail {
    /// Whether DVV withheld the content because receipt is not confirmed yet.
    pub fn is_withheld(&self) -> bool {
        self.summary.message_service_type == MessageServiceType::Verifiable
            && self.summary.receipt_confirmed_at.is_none()
    }
}

impl fmt::Debug for MessageDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageDetail")
            .field("summary", &self.summary)
            .field("body_format", &self.body_format)
            .field(
                "body",
                &format_args!(
                    "{}",
                    if self.body.is_some() {
                        "<content>"
                    } else {
                        "None"
                    }
                ),
            )
            .field("attachments", &self.attachments)
            .finish()
    }
}

/// Body of `POST .../openings`: the idempotency key and when the citizen opened the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpeningReport {
    /// 1..=64 characters of `[A-Za-z0-9-]`; the same id reported twice is one opening.
    pub opening_id: String,
    /// When the body left the gateway.
    #[serde(serialize_with = "millis")]
    pub opened_at: Timestamp,
}

impl OpeningReport {
    /// Whether `opening_id` has the contract's shape (checked before sending).
    pub fn has_valid_id(&self) -> bool {
        (1..=64).contains(&self.opening_id.len())
            && self
                .opening_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }
}

/// Whether a first-open verdict can still change (`Provisional`, until `settlesAt`) or is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FirstOpenStatus {
    /// The verdict may change until `settlesAt` (an earlier opening may still be reported).
    Provisional,
    /// The verdict is final.
    Settled,
}

/// DVV's answer to an opening report (201, or 409 carrying the opening as it stands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpeningAnswer {
    /// The reported opening id.
    pub opening_id: String,
    /// The message.
    pub message_id: i64,
    /// Whether this opening has the earliest corroborated `openedAt` of the message (the
    /// compensation decision).
    pub first_open: bool,
    /// Whether that verdict may still change.
    pub first_open_status: FirstOpenStatus,
    /// When the verdict settles (`readAt` plus the contract's settlement window).
    #[serde(serialize_with = "millis")]
    pub settles_at: Timestamp,
    /// The message's read time in every window (its first open's corroborated `openedAt`).
    #[serde(serialize_with = "millis")]
    pub read_at: Timestamp,
    /// True when DVV answered 409: this opening id was reported before. Not part of the JSON.
    #[serde(skip)]
    pub repeated: bool,
}

/// One line of DVV's statement: one of this provider's openings with DVV's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementEntry {
    /// The opening id as reported.
    pub opening_id: String,
    /// The message.
    pub message_id: i64,
    /// `openedAt` as reported.
    #[serde(serialize_with = "millis")]
    pub opened_at: Timestamp,
    /// Whether it is the message's first open.
    pub first_open: bool,
    /// Whether that verdict may still change.
    pub first_open_status: FirstOpenStatus,
    /// When the verdict settles.
    #[serde(serialize_with = "millis")]
    pub settles_at: Timestamp,
    /// The message's read time in every window.
    #[serde(serialize_with = "millis")]
    pub read_at: Timestamp,
}

/// One page of `GET /v1/statement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementPage {
    /// Openings by `openedAt`, then `openingId`.
    pub openings: Vec<StatementEntry>,
    /// Pass back (with the same period) for the next page; `None` on the last.
    #[serde(default)]
    pub continuation_token: Option<String>,
}

/// The refusals of an opening report that the contract names permanent: DVV will answer the
/// same however often the opening is reported again. Every other failure (a future `openedAt`,
/// a pending receipt, 400, 401, 429, 5xx, a lost connection) is not a verdict on the opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpeningRefusal {
    /// 404 `Consent not found`: unknown, or another provider's.
    ConsentNotFound,
    /// 404 `Message not found`: not this citizen's message.
    MessageNotFound,
    /// 403 `Opened outside consent`: the consent was not active at the corroborated `openedAt`.
    OpenedOutsideConsent,
    /// 422 `Opened before content release`: backdated, or never released to this provider.
    OpenedBeforeRelease,
    /// 422 `Opening outside retention`: older than the feed's retention.
    OutsideRetention,
}

impl OpeningRefusal {
    /// Every permanent refusal with its status and DVV's exact `reason`.
    const ALL: [(Self, u16, &'static str); 5] = [
        (Self::ConsentNotFound, 404, "Consent not found"),
        (Self::MessageNotFound, 404, "Message not found"),
        (Self::OpenedOutsideConsent, 403, "Opened outside consent"),
        (
            Self::OpenedBeforeRelease,
            422,
            "Opened before content release",
        ),
        (Self::OutsideRetention, 422, "Opening outside retention"),
    ];

    /// The permanent refusal a status and reason name, if they name one.
    pub fn from_answer(status: u16, reason: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, s, r)| *s == status && r.eq_ignore_ascii_case(reason.trim()))
            .map(|(refusal, _, _)| *refusal)
    }

    /// A stable snake_case label (the parking reason in the store, logs and metrics).
    pub fn label(self) -> &'static str {
        match self {
            Self::ConsentNotFound => "consent_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::OpenedOutsideConsent => "opened_outside_consent",
            Self::OpenedBeforeRelease => "opened_before_release",
            Self::OutsideRetention => "opening_outside_retention",
        }
    }
}

/// DVV's answer to a receipt confirmation (201, or 409 carrying the original answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptAnswer {
    /// The message.
    pub message_id: i64,
    /// When receipt was confirmed (the legal moment of service).
    #[serde(serialize_with = "millis")]
    pub receipt_confirmed_at: Timestamp,
    /// True when DVV answered 409: receipt was already confirmed. Not part of the JSON.
    #[serde(skip)]
    pub repeated: bool,
}

/// The kinds of events in this provider's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A new message for a citizen with an active consent.
    #[serde(rename = "Electronic message created")]
    MessageCreated,
    /// A message was opened for the first time (in any window).
    #[serde(rename = "Electronic message read")]
    MessageRead,
    /// Receipt of a Verifiable message was confirmed.
    #[serde(rename = "Receipt confirmed")]
    ReceiptConfirmed,
    /// A citizen granted this provider a consent.
    #[serde(rename = "Consent granted")]
    ConsentGranted,
    /// A citizen revoked this provider's consent.
    #[serde(rename = "Consent revoked")]
    ConsentRevoked,
    /// The citizen replied to a message (through any window).
    #[serde(rename = "Electronic message from end user")]
    MessageFromEndUser,
    /// An event type this gateway does not know yet (skipped, not an error).
    #[serde(other)]
    Unknown,
}

/// What an event is about.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The consent (and so the citizen).
    pub consent_id: String,
    /// The message; absent for consent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// `Electronic message created` only: the sending organisation. Shown to the citizen outside
    /// the inbox only when [`MessageNotifications`] allow; never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// `Electronic message created` only: Normal or Verifiable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_service_type: Option<MessageServiceType>,
    /// `Electronic message created` only: the sender's notification settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<MessageNotifications>,
    /// For a citizen's reply the message replied to; for a sender's answer the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to_message_id: Option<i64>,
}

impl fmt::Debug for EventMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMetadata")
            .field("consent_id", &self.consent_id)
            .field("message_id", &self.message_id)
            .field(
                "sender_name",
                &self.sender_name.as_ref().map(|_| format_args!("<sender>")),
            )
            .field("message_service_type", &self.message_service_type)
            .field("notifications", &self.notifications)
            .field("in_reply_to_message_id", &self.in_reply_to_message_id)
            .finish()
    }
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Opaque unique id (deduplication key).
    pub event_id: String,
    /// What happened.
    pub event_type: EventType,
    /// When it happened.
    #[serde(serialize_with = "millis")]
    pub event_time: Timestamp,
    /// What it is about.
    pub metadata: EventMetadata,
}

/// One page of the event feed (at most 1000 events; empty means nothing new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// Pass back next time to continue after these events.
    pub continuation_token: String,
}

/// Whether a message's sender accepts a reply from the citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReplyAllowedBy {
    /// The citizen may reply.
    Anyone,
    /// No reply is accepted (also when DVV does not say).
    #[default]
    #[serde(rename = "No one")]
    NoOne,
}

/// One file of a citizen's reply, as DVV received it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyFile {
    /// File name (content: never logged).
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes DVV received.
    pub sha256: String,
}

impl fmt::Debug for ReplyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyFile")
            .field("name", &format_args!("<content>"))
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A citizen's reply as DVV describes it: the answer to the upload (201, or 409 repeating the
/// original), and each entry of a message's thread.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyReceipt {
    /// The reply's id.
    pub reply_id: i64,
    /// The message replied to.
    pub message_id: i64,
    /// When DVV received it whole.
    #[serde(serialize_with = "millis")]
    pub sent_at: Timestamp,
    /// The text (content), only in a message's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Characters of the text.
    pub body_length: u64,
    /// The files.
    #[serde(default)]
    pub attachments: Vec<ReplyFile>,
    /// True when DVV answered 409: the key was used before and this is the original. Not part
    /// of the JSON.
    #[serde(skip)]
    pub repeated: bool,
}

impl fmt::Debug for ReplyReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyReceipt")
            .field("reply_id", &self.reply_id)
            .field("message_id", &self.message_id)
            .field("sent_at", &self.sent_at)
            .field("body_length", &self.body_length)
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

/// What one reply may hold, as DVV states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// `GET .../reply-policy`: may the citizen reply, within which limits, and was the key used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyPolicy {
    /// Whether the sender accepts a reply.
    pub reply_allowed_by: ReplyAllowedBy,
    /// The limits.
    pub limits: ReplyLimits,
    /// File types a reply may carry.
    pub accepted_media_types: Vec<String>,
    /// The reply already received under the key asked about.
    #[serde(default)]
    pub previous_reply: Option<ReplyReceipt>,
}

/// DVV's error body: `{"reason": ..., "validationErrors": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/token` success. Public (not only crate-wide) so the fuzz target `dvv_json` (fuzz/)
/// can decode arbitrary bytes into it exactly as the client does.
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The bearer token for DVV calls (a secret: redacted in `Debug`).
    pub access_token: String,
    /// Must be `Bearer` (checked by the client).
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &format_args!("<redacted>"))
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_parses_with_flattened_summary_and_unknown_fields() {
        let json = r#"{"messageId": 7, "senderName": "Vero", "title": "T", "createdAt": "2026-11-21T10:00:00.000Z",
            "readAt": null, "messageServiceType": "Verifiable", "receiptConfirmedAt": null, "attachmentCount": 1,
            "bodyFormat": "Markdown", "body": null, "attachments": [], "somethingNew": 1}"#;
        let detail: MessageDetail = serde_json::from_str(json).unwrap();
        assert_eq!(detail.summary.message_id, 7);
        assert!(detail.is_withheld());
        let debug = format!("{detail:?}");
        assert!(
            !debug.contains("Vero") && !debug.contains("\"T\""),
            "{debug}"
        );
    }

    #[test]
    fn timestamps_serialise_with_millis() {
        let report = OpeningReport {
            opening_id: "a-1".into(),
            opened_at: "2026-11-21T10:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"openingId":"a-1","openedAt":"2026-11-21T10:00:00.000Z"}"#
        );
        assert!(report.has_valid_id());
        let bad = OpeningReport {
            opening_id: "a b".into(),
            ..report
        };
        assert!(!bad.has_valid_id());
    }

    #[test]
    fn unknown_event_types_do_not_break_the_page() {
        let json = r#"{"events": [
            {"eventId": "e1", "eventType": "Electronic message read", "eventTime": "2026-11-21T10:00:00.000Z",
             "metadata": {"consentId": "c1", "messageId": 5}},
            {"eventId": "e2", "eventType": "Something new", "eventTime": "2026-11-21T10:00:00.000Z",
             "metadata": {"consentId": "c1"}}], "continuationToken": "t"}"#;
        let page: EventPage = serde_json::from_str(json).unwrap();
        assert_eq!(page.events[0].event_type, EventType::MessageRead);
        assert_eq!(page.events[0].metadata.message_id, Some(5));
        assert_eq!(page.events[1].event_type, EventType::Unknown);
    }

    #[test]
    fn lookup_body_and_debug() {
        let body = ConsentLookup {
            end_user_id: "131052-308T",
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"endUserId":"131052-308T"}"#
        );
        assert!(!format!("{body:?}").contains("131052"));
    }
}

/// Whether a notification may name the sender (`senderDetailsInNotifications`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SenderDetails {
    /// The organisation and service name may be shown.
    #[serde(rename = "Organisation and service name")]
    Shown,
    /// The sender must not be named outside the opened message.
    #[serde(rename = "None")]
    Hidden,
    /// A value this gateway does not know: treated as [`SenderDetails::Hidden`] (fail closed),
    /// and passed on to the operator as `None`.
    #[serde(other, rename(serialize = "None"))]
    Unknown,
}

/// Whether an unread message is reminded about (`unreadMessageNotification.reminder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReminderPolicy {
    /// Remind while unread.
    #[serde(rename = "Default reminder")]
    Default,
    /// Never remind.
    #[serde(rename = "No reminders")]
    NoReminders,
    /// A value this gateway does not know: no reminders, passed on to the operator as such.
    #[serde(other, rename(serialize = "No reminders"))]
    Unknown,
}

/// One text in Finnish, Swedish and English.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Localised {
    /// Finnish.
    pub fi: String,
    /// Swedish.
    pub sv: String,
    /// English.
    pub en: String,
}

impl fmt::Debug for Localised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Localised(<text>)")
    }
}

/// The sender's own new-message notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomisedNotification {
    /// Title.
    pub title: Localised,
    /// Text.
    pub content: Localised,
}

/// The reminder setting as an object, as the contract has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadMessageNotification {
    /// Remind or not.
    pub reminder: ReminderPolicy,
}

/// A message's notification settings, as its sender set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageNotifications {
    /// Whether the sender may be named (missing: hidden, failing closed).
    #[serde(default = "hidden")]
    pub sender_details_in_notifications: SenderDetails,
    /// The sender's own new-message notification, if any.
    #[serde(default)]
    pub customised_new_message_notification: Option<CustomisedNotification>,
    /// Whether unread reminders are allowed (missing: none).
    #[serde(default = "no_reminders")]
    pub unread_message_notification: UnreadMessageNotification,
}

fn hidden() -> SenderDetails {
    SenderDetails::Hidden
}

fn no_reminders() -> UnreadMessageNotification {
    UnreadMessageNotification {
        reminder: ReminderPolicy::NoReminders,
    }
}

impl MessageNotifications {
    /// True only when the sender explicitly allowed being named.
    pub fn sender_shown(&self) -> bool {
        self.sender_details_in_notifications == SenderDetails::Shown
    }

    /// True only when the sender explicitly allowed reminders.
    pub fn reminders_allowed(&self) -> bool {
        self.unread_message_notification.reminder == ReminderPolicy::Default
    }
}
