//! A page of DVV's events feed, read into changes of the reminder schedule.

use std::time::Duration;

use chrono::TimeDelta;

use crate::dvv::{Event, EventType, MessageServiceType};
use crate::store::{NewReminder, ReminderChange};

/// When reminders fall due (from `[reminders]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderDelays {
    /// After a message arrived, and between reminders.
    pub normal: Duration,
    /// The same for a `Verifiable` message (its receipt is to be confirmed).
    pub receipt: Duration,
    /// Most reminders per message; 0: none are scheduled.
    pub max_count: u32,
}

/// The schedule changes of a page, in page order. `schedule` is false where new reminders must
/// not be made (no webhook endpoints, or a first start skipping the backlog); cancellations are
/// applied always.
pub fn changes(events: &[Event], delays: &ReminderDelays, schedule: bool) -> Vec<ReminderChange> {
    let mut out = Vec::new();
    for event in events {
        let meta = &event.metadata;
        match (event.event_type, meta.message_id) {
            (EventType::MessageCreated, Some(message_id)) => {
                let allowed = meta
                    .notifications
                    .as_ref()
                    .is_some_and(|n| n.reminders_allowed());
                if !(schedule && allowed && delays.max_count > 0) {
                    continue;
                }
                let needs_receipt =
                    meta.message_service_type == Some(MessageServiceType::Verifiable);
                let interval = if needs_receipt {
                    delays.receipt
                } else {
                    delays.normal
                };
                let Ok(wait) = TimeDelta::from_std(interval) else {
                    continue;
                };
                out.push(ReminderChange::Schedule(NewReminder {
                    consent_id: meta.consent_id.clone(),
                    message_id,
                    first_due_at: event.event_time + wait,
                    interval,
                    needs_receipt,
                }));
            }
            (EventType::MessageRead | EventType::ReceiptConfirmed, Some(message_id)) => {
                out.push(ReminderChange::CancelMessage(message_id));
            }
            (EventType::ConsentRevoked, _) => {
                out.push(ReminderChange::CancelConsent(meta.consent_id.clone()));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvv::{
        EventMetadata, MessageNotifications, ReminderPolicy, SenderDetails,
        UnreadMessageNotification,
    };

    const DELAYS: ReminderDelays = ReminderDelays {
        normal: Duration::from_secs(7 * 86_400),
        receipt: Duration::from_secs(3 * 86_400),
        max_count: 1,
    };

    fn event(kind: EventType, message: Option<i64>, policy: Option<ReminderPolicy>) -> Event {
        Event {
            event_id: "e".into(),
            event_type: kind,
            event_time: "2026-11-20T10:00:00.000Z".parse().unwrap(),
            metadata: EventMetadata {
                consent_id: "c-1".into(),
                message_id: message,
                sender_name: Some("S".into()),
                message_service_type: Some(if message == Some(2) {
                    MessageServiceType::Verifiable
                } else {
                    MessageServiceType::Normal
                }),
                notifications: policy.map(|reminder| MessageNotifications {
                    sender_details_in_notifications: SenderDetails::Shown,
                    customised_new_message_notification: None,
                    unread_message_notification: UnreadMessageNotification { reminder },
                }),
                in_reply_to_message_id: None,
            },
        }
    }

    #[test]
    fn only_messages_whose_sender_allows_reminders_are_scheduled() {
        let page = [
            event(
                EventType::MessageCreated,
                Some(1),
                Some(ReminderPolicy::Default),
            ),
            event(
                EventType::MessageCreated,
                Some(2),
                Some(ReminderPolicy::Default),
            ),
            event(
                EventType::MessageCreated,
                Some(3),
                Some(ReminderPolicy::NoReminders),
            ),
            event(
                EventType::MessageCreated,
                Some(4),
                Some(ReminderPolicy::Unknown),
            ),
            event(EventType::MessageCreated, Some(5), None),
        ];
        let changes = changes(&page, &DELAYS, true);
        let due: Vec<(i64, String, bool)> = changes
            .iter()
            .map(|c| match c {
                ReminderChange::Schedule(r) => {
                    (r.message_id, r.first_due_at.to_rfc3339(), r.needs_receipt)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            due,
            [
                (1, "2026-11-27T10:00:00+00:00".to_owned(), false),
                (2, "2026-11-23T10:00:00+00:00".to_owned(), true),
            ]
        );
        assert!(super::changes(&page, &DELAYS, false).is_empty());
        let off = ReminderDelays {
            max_count: 0,
            ..DELAYS
        };
        assert!(super::changes(&page, &off, true).is_empty());
    }

    #[test]
    fn reads_receipts_and_revocations_cancel_in_page_order() {
        let page = [
            event(
                EventType::MessageCreated,
                Some(1),
                Some(ReminderPolicy::Default),
            ),
            event(EventType::MessageRead, Some(1), None),
            event(EventType::ReceiptConfirmed, Some(2), None),
            event(EventType::ConsentRevoked, None, None),
            event(EventType::ConsentGranted, None, None),
        ];
        let changes = changes(&page, &DELAYS, false);
        assert_eq!(
            changes,
            [
                ReminderChange::CancelMessage(1),
                ReminderChange::CancelMessage(2),
                ReminderChange::CancelConsent("c-1".into()),
            ]
        );
    }
}
