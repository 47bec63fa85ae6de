//! The JSON shapes of the contract, built from the store's records.

use serde::Serialize;

use crate::domain::withheld;
use crate::journal::ReplyFile;
use crate::model::{BodyFormat, ConsentState, EventType, MessageServiceType, ReplyAllowedBy};
use crate::notifications::Notifications;
use crate::store::{Attachment, Consent, FeedEvent, Message, Opening, Reply, Verdict};
use crate::time::{self, Timestamp};

/// Answer of the consent lookup.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    consent_id: String,
    state: ConsentState,
    #[serde(with = "time::as_string")]
    granted_at: Timestamp,
    #[serde(with = "time::as_optional_string")]
    revoked_at: Option<Timestamp>,
}

impl From<&Consent> for ConsentView {
    fn from(c: &Consent) -> Self {
        Self {
            consent_id: c.id.clone(),
            state: c.state,
            granted_at: c.granted_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// One inbox entry.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSummary {
    message_id: i64,
    sender_name: String,
    title: String,
    #[serde(with = "time::as_string")]
    created_at: Timestamp,
    #[serde(with = "time::as_optional_string")]
    read_at: Option<Timestamp>,
    message_service_type: MessageServiceType,
    #[serde(with = "time::as_optional_string")]
    receipt_confirmed_at: Option<Timestamp>,
    attachment_count: usize,
    notifications: Notifications,
    reply_allowed_by: ReplyAllowedBy,
    in_reply_to_message_id: Option<i64>,
    replies: Vec<ReplyView>,
}

impl MessageSummary {
    /// The summary with the replies' texts (the message detail), or without (the inbox).
    fn of(m: &Message, texts: bool) -> Self {
        let mut summary = Self::from(m);
        summary.replies = m.replies.iter().map(|r| ReplyView::of(r, texts)).collect();
        summary
    }
}

/// A citizen's reply: in the inbox without its text, in the message detail and the answer to
/// the upload with it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyView {
    reply_id: i64,
    message_id: i64,
    #[serde(with = "time::as_string")]
    sent_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    body_length: usize,
    attachments: Vec<ReplyFileView>,
}

impl ReplyView {
    /// The view of a reply, with its text or without.
    pub fn of(r: &Reply, text: bool) -> Self {
        Self {
            reply_id: r.id,
            message_id: r.message_id,
            sent_at: r.sent_at,
            body: text.then(|| r.body.clone()),
            body_length: r.body.chars().count(),
            attachments: r.files.iter().map(ReplyFileView::from).collect(),
        }
    }
}

/// One file of a reply.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyFileView {
    name: String,
    media_type: String,
    size: u64,
    sha256: String,
}

impl From<&ReplyFile> for ReplyFileView {
    fn from(f: &ReplyFile) -> Self {
        Self {
            name: f.name.clone(),
            media_type: f.media_type.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
        }
    }
}

impl From<&Message> for MessageSummary {
    fn from(m: &Message) -> Self {
        Self {
            message_id: m.id,
            sender_name: m.sender_name.clone(),
            title: m.title.clone(),
            created_at: m.created_at,
            read_at: m.read_at,
            message_service_type: m.service_type,
            receipt_confirmed_at: m.receipt.as_ref().map(|r| r.at),
            attachment_count: m.attachments.len(),
            notifications: m.notifications.clone(),
            reply_allowed_by: m.reply_allowed_by,
            in_reply_to_message_id: m.in_reply_to,
            replies: m.replies.iter().map(|r| ReplyView::of(r, false)).collect(),
        }
    }
}

/// An inbox page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxPage {
    /// Messages, newest first.
    pub messages: Vec<MessageSummary>,
    /// Where to continue; `null` after the last page.
    pub continuation_token: Option<String>,
}

/// One message with body and attachments (withheld for unconfirmed verifiable messages).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDetail {
    #[serde(flatten)]
    summary: MessageSummary,
    body_format: BodyFormat,
    body: Option<String>,
    attachments: Vec<AttachmentView>,
}

impl From<&Message> for MessageDetail {
    fn from(m: &Message) -> Self {
        let hidden = withheld(m);
        Self {
            summary: MessageSummary::of(m, !hidden),
            body_format: m.body_format,
            body: (!hidden).then(|| m.body.clone()),
            attachments: if hidden {
                Vec::new()
            } else {
                m.attachments.iter().map(AttachmentView::from).collect()
            },
        }
    }
}

/// Attachment metadata.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentView {
    attachment_id: i64,
    name: String,
    media_type: String,
    size: u64,
}

impl From<&Attachment> for AttachmentView {
    fn from(a: &Attachment) -> Self {
        Self {
            attachment_id: a.id,
            name: a.name.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
        }
    }
}

/// An opening with DVV's first-open verdict as it stands: the answer to a report (201 and
/// 409) and one line of the statement.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpeningView {
    opening_id: String,
    message_id: i64,
    #[serde(with = "time::as_string")]
    opened_at: Timestamp,
    #[serde(with = "time::as_string")]
    corroborated_opened_at: Timestamp,
    #[serde(with = "time::as_string")]
    received_at: Timestamp,
    first_open: bool,
    first_open_status: &'static str,
    #[serde(with = "time::as_string")]
    settles_at: Timestamp,
    #[serde(with = "time::as_string")]
    read_at: Timestamp,
}

impl OpeningView {
    /// The view of `opening` under `verdict`, settled or not as of `now`.
    pub fn new(opening: &Opening, verdict: &Verdict, now: Timestamp) -> Self {
        Self {
            opening_id: opening.opening_id.clone(),
            message_id: opening.message_id,
            opened_at: opening.opened_at,
            corroborated_opened_at: opening.corroborated_at,
            received_at: opening.received_at,
            first_open: verdict.first_open,
            first_open_status: verdict.status(now),
            settles_at: verdict.settles_at,
            read_at: verdict.read_at,
        }
    }
}

/// A statement page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementPage {
    /// Openings, by `openedAt` then `openingId`.
    pub openings: Vec<OpeningView>,
    /// Token for the next page; `null` on the last.
    pub continuation_token: Option<String>,
}

/// Answer to a receipt confirmation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// The message.
    pub message_id: i64,
    /// When receipt was confirmed.
    #[serde(with = "time::as_string")]
    pub receipt_confirmed_at: Timestamp,
}

/// An events page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    /// Events, oldest first.
    pub events: Vec<EventView>,
    /// Pass back to continue.
    pub continuation_token: String,
}

/// One event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    event_id: String,
    event_type: EventType,
    #[serde(with = "time::as_string")]
    event_time: Timestamp,
    metadata: EventMetadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata {
    consent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to_message_id: Option<i64>,
    /// On `Electronic message created` only: what the window needs to notify the citizen.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    created: Option<CreatedView>,
}

/// The notification part of a created event: sender, service type and the sender's settings.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedView {
    sender_name: String,
    message_service_type: MessageServiceType,
    notifications: Notifications,
}

impl From<&FeedEvent> for EventView {
    fn from(e: &FeedEvent) -> Self {
        Self {
            event_id: e.id.clone(),
            event_type: e.event_type,
            event_time: e.time,
            metadata: EventMetadata {
                consent_id: e.consent_id.clone(),
                message_id: e.message_id,
                created: e.created.as_deref().map(|c| CreatedView {
                    sender_name: c.sender_name.clone(),
                    message_service_type: c.service_type,
                    notifications: c.notifications.clone(),
                }),
                in_reply_to_message_id: e.in_reply_to_message_id,
            },
        }
    }
}
