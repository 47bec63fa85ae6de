//! One entry of a provider's events feed.

use crate::model::{EventType, MessageServiceType};
use crate::notifications::Notifications;
use crate::time::Timestamp;

/// An event as a provider sees it: already addressed to that provider's consent.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    /// Opaque id, unique across all feeds.
    pub id: String,
    /// What happened.
    pub event_type: EventType,
    /// When it happened (server time, so a feed is in time order).
    pub time: Timestamp,
    /// The provider's consent the event concerns.
    pub consent_id: String,
    /// The message, for message events.
    pub message_id: Option<i64>,
    /// For a citizen's reply, the message replied to; for an authority's answer, the reply.
    pub in_reply_to_message_id: Option<i64>,
    /// What a new message's notification needs, on `Electronic message created` only.
    pub created: Option<Box<CreatedDetails>>,
}

/// The part of a new message a window needs to notify the citizen: who sent it, whether it needs
/// a receipt, and the sender's notification settings. Never the title or the body.
#[derive(Clone, Debug)]
pub struct CreatedDetails {
    /// Sending organisation (the window decides, by the settings, whether to show it).
    pub sender_name: String,
    /// Normal or Verifiable.
    pub service_type: MessageServiceType,
    /// The sender's notification settings.
    pub notifications: Notifications,
}
