//! One entry of a provider's events feed.

use crate::model::EventType;
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
}
