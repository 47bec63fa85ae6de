//! What a webhook says: the event's type, time and ids, never content or identity codes, under a
//! stable id derived from DVV's `eventId` so receivers can de-duplicate redeliveries. A
//! `message.created` webhook also carries a notification hint ([`super::hint`]): what the
//! operator may show the citizen about the message, as its sender allowed.

use chrono::SecondsFormat;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::hint::{self, NotificationHint};
use crate::dvv::{Event, EventType};
use crate::store::FiredReminder;

/// One webhook event as POSTed to the operator (the JSON body, field for field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Stable id: the same DVV event always gets the same id, on every attempt and replica.
    pub id: String,
    /// `message.created`, `message.read`, `message.receipt_confirmed`, `consent.granted`,
    /// `consent.revoked`, `reply.delivered` or `reply.answered`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// When it happened at DVV (RFC 3339 UTC, milliseconds).
    pub time: String,
    /// The citizen's consent with this operator (an opaque id, not an identity code).
    pub consent_id: String,
    /// The message, for message events (for `reply.delivered`, the citizen's reply; for
    /// `reply.answered`, the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// `message.created` and `message.reminder`: what the operator may show the citizen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationHint>,
    /// `message.reminder` only: 1 for the message's first reminder, 2 for its second, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder: Option<u32>,
    /// For `reply.delivered`, the message replied to; for `reply.answered`, the citizen's reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_reply_to_message_id: Option<i64>,
}

impl WebhookEvent {
    /// The webhook for a feed event, or `None` for event types that are not sent (unknown ones).
    pub fn from_feed(event: &Event) -> Option<Self> {
        // A new message that answers a citizen's reply is announced as the answer.
        let event_type = match (event.event_type, event.metadata.in_reply_to_message_id) {
            (EventType::MessageCreated, Some(_)) => "reply.answered",
            (other, _) => webhook_type(other)?,
        };
        Some(Self {
            id: webhook_id(&event.event_id),
            event_type,
            time: event
                .event_time
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            consent_id: event.metadata.consent_id.clone(),
            message_id: event.metadata.message_id,
            notification: (event.event_type == EventType::MessageCreated)
                .then(|| hint::for_created(&event.metadata)),
            reminder: None,
            in_reply_to_message_id: event.metadata.in_reply_to_message_id,
        })
    }

    /// The `message.reminder` webhook of a reminder that fell due. Its id is derived from
    /// (consent, message, reminder number), so it is the same on every attempt and replica.
    pub fn reminder(fired: &FiredReminder) -> Self {
        let key = format!(
            "reminder\0{}\0{}\0{}",
            fired.consent_id, fired.message_id, fired.number
        );
        Self {
            id: webhook_id(&key),
            event_type: "message.reminder",
            time: fired.due_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            consent_id: fired.consent_id.clone(),
            message_id: Some(fired.message_id),
            notification: Some(hint::for_reminder(fired.needs_receipt)),
            reminder: Some(fired.number),
            in_reply_to_message_id: None,
        }
    }

    /// The JSON body, as stored in the queue and signed at each attempt.
    pub fn body(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The webhook type name of a DVV event type.
pub fn webhook_type(event_type: EventType) -> Option<&'static str> {
    match event_type {
        EventType::MessageCreated => Some("message.created"),
        EventType::MessageRead => Some("message.read"),
        EventType::ReceiptConfirmed => Some("message.receipt_confirmed"),
        EventType::ConsentGranted => Some("consent.granted"),
        EventType::ConsentRevoked => Some("consent.revoked"),
        EventType::MessageFromEndUser => Some("reply.delivered"),
        EventType::Unknown => None,
    }
}

/// `evt_` and 32 hex digits of SHA-256 over DVV's event id: stable, fixed-length, and not
/// DVV's internal id itself.
pub fn webhook_id(dvv_event_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"ikkuna-webhook-event\0")
        .chain_update(dvv_event_id.as_bytes())
        .finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvv::EventMetadata;

    fn event(event_type: EventType, message_id: Option<i64>) -> Event {
        Event {
            event_id: "dvv-e-1".into(),
            event_type,
            event_time: "2026-11-21T10:00:00.123Z".parse().unwrap(),
            metadata: EventMetadata {
                consent_id: "c-1".into(),
                message_id,
                ..EventMetadata::default()
            },
        }
    }

    #[test]
    fn every_known_type_maps_and_unknown_is_skipped() {
        let pairs = [
            (EventType::MessageCreated, "message.created"),
            (EventType::MessageRead, "message.read"),
            (EventType::ReceiptConfirmed, "message.receipt_confirmed"),
            (EventType::ConsentGranted, "consent.granted"),
            (EventType::ConsentRevoked, "consent.revoked"),
            (EventType::MessageFromEndUser, "reply.delivered"),
        ];
        for (dvv, name) in pairs {
            assert_eq!(webhook_type(dvv), Some(name));
        }
        assert!(WebhookEvent::from_feed(&event(EventType::Unknown, None)).is_none());
    }

    #[test]
    fn an_answer_to_a_reply_is_announced_as_the_answer_with_both_ids() {
        let mut answer = event(EventType::MessageCreated, Some(43));
        answer.metadata.in_reply_to_message_id = Some(42);
        let w = WebhookEvent::from_feed(&answer).unwrap();
        assert_eq!(w.event_type, "reply.answered");
        let body: serde_json::Value = serde_json::from_str(&w.body()).unwrap();
        assert_eq!(body["messageId"], 43);
        assert_eq!(body["inReplyToMessageId"], 42);
        let plain = WebhookEvent::from_feed(&event(EventType::MessageCreated, Some(43))).unwrap();
        assert_eq!(plain.event_type, "message.created");
        assert!(!plain.body().contains("inReplyTo"));
    }

    #[test]
    fn body_has_ids_and_times_only_and_a_stable_id() {
        let w = WebhookEvent::from_feed(&event(EventType::MessageRead, Some(42))).unwrap();
        assert_eq!(
            w.body(),
            format!(
                r#"{{"id":"{}","type":"message.read","time":"2026-11-21T10:00:00.123Z","consentId":"c-1","messageId":42}}"#,
                w.id
            )
        );
        assert_eq!(w.id, webhook_id("dvv-e-1"));
        assert_eq!(w.id.len(), 36);
        assert_ne!(webhook_id("dvv-e-1"), webhook_id("dvv-e-2"));
        let consent = WebhookEvent::from_feed(&event(EventType::ConsentRevoked, None)).unwrap();
        assert!(!consent.body().contains("messageId"));
        assert!(!consent.body().contains("notification"));
        let created = WebhookEvent::from_feed(&event(EventType::MessageCreated, Some(42))).unwrap();
        let json: serde_json::Value = serde_json::from_str(&created.body()).unwrap();
        assert_eq!(json["notification"]["source"], "neutral");
        assert_eq!(json["notification"]["fi"]["title"], "Uusi viesti");
        assert!(json["notification"].get("sender").is_none());
    }
}
