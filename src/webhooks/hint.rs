//! Notification hints: what the operator may show the citizen *outside* the inbox (a push
//! notification, a lock screen, an e-mail) about a new or unread message, in Finnish, Swedish and
//! English, following the sender's settings.
//!
//! The rules, the same for every message: the sender's name only when the sender allowed it
//! (`senderDetailsInNotifications` = `Organisation and service name`; anything else, unknown or
//! missing, hides it); the sender's customised title and text when it wrote them; otherwise a
//! neutral text. Never the message's title or body: a hint is built from the event's metadata,
//! which has neither.

use serde::Serialize;

use crate::dvv::{EventMetadata, MessageServiceType};

/// One language's notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HintText {
    /// A short heading.
    pub title: String,
    /// One or two sentences.
    pub text: String,
}

/// What the operator may show about one message, in three languages.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NotificationHint {
    /// The sending organisation, present only when the sender allowed being named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// `sender` when the texts are the sender's own customised notification, `neutral` when they
    /// are Ikkuna's.
    pub source: &'static str,
    /// Finnish.
    pub fi: HintText,
    /// Swedish.
    pub sv: HintText,
    /// English.
    pub en: HintText,
}

impl std::fmt::Debug for NotificationHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationHint")
            .field("sender", &self.sender.as_ref().map(|_| "<sender>"))
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The hint for `Electronic message created`.
pub fn for_created(meta: &EventMetadata) -> NotificationHint {
    let sender = meta
        .notifications
        .as_ref()
        .filter(|n| n.sender_shown())
        .and(meta.sender_name.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let customised = meta
        .notifications
        .as_ref()
        .and_then(|n| n.customised_new_message_notification.as_ref());
    if let Some(c) = customised {
        let text = |title: &str, content: &str| HintText {
            title: title.to_owned(),
            text: content.to_owned(),
        };
        return NotificationHint {
            sender,
            source: "sender",
            fi: text(&c.title.fi, &c.content.fi),
            sv: text(&c.title.sv, &c.content.sv),
            en: text(&c.title.en, &c.content.en),
        };
    }
    let receipt = meta.message_service_type == Some(MessageServiceType::Verifiable);
    let (fi_title, sv_title, en_title) = match &sender {
        Some(s) => (
            format!("Uusi viesti lähettäjältä {s}"),
            format!("Nytt meddelande från {s}"),
            format!("New message from {s}"),
        ),
        None => (
            "Uusi viesti".to_owned(),
            "Nytt meddelande".to_owned(),
            "New message".to_owned(),
        ),
    };
    let (fi, sv, en) = if receipt {
        (
            "Sinulle on saapunut viesti, jonka vastaanotto pitää kuitata ennen kuin näet sen.",
            "Du har fått ett meddelande som du ska kvittera som mottaget innan du kan läsa det.",
            "You have received a message; confirm its receipt to read it.",
        )
    } else {
        (
            "Sinulle on saapunut uusi viesti.",
            "Du har fått ett nytt meddelande.",
            "You have received a new message.",
        )
    };
    NotificationHint {
        sender,
        source: "neutral",
        fi: hint(fi_title, fi),
        sv: hint(sv_title, sv),
        en: hint(en_title, en),
    }
}

/// The hint for a reminder: always neutral and never naming the sender (the reminder schedule
/// keeps ids and times only; the `message.created` hint of the same message has what the sender
/// allowed).
pub fn for_reminder(needs_receipt: bool) -> NotificationHint {
    let (fi, sv, en) = if needs_receipt {
        (
            "Sinulla on viesti, jonka vastaanotto odottaa kuittaustasi.",
            "Du har ett meddelande som väntar på att du kvitterar det som mottaget.",
            "A message is waiting for you to confirm its receipt.",
        )
    } else {
        (
            "Sinulla on lukematon viesti.",
            "Du har ett oläst meddelande.",
            "You have an unread message.",
        )
    };
    NotificationHint {
        sender: None,
        source: "neutral",
        fi: hint("Lukematon viesti".to_owned(), fi),
        sv: hint("Oläst meddelande".to_owned(), sv),
        en: hint("Unread message".to_owned(), en),
    }
}

fn hint(title: String, text: &str) -> HintText {
    HintText {
        title,
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvv::{
        CustomisedNotification, Localised, MessageNotifications, ReminderPolicy, SenderDetails,
        UnreadMessageNotification,
    };

    fn meta(details: SenderDetails, customised: bool) -> EventMetadata {
        let text = |s: &str| Localised {
            fi: format!("{s} fi"),
            sv: format!("{s} sv"),
            en: format!("{s} en"),
        };
        EventMetadata {
            consent_id: "c".into(),
            message_id: Some(1),
            sender_name: Some("CANARY-SENDER".into()),
            message_service_type: Some(MessageServiceType::Normal),
            notifications: Some(MessageNotifications {
                sender_details_in_notifications: details,
                customised_new_message_notification: customised.then(|| CustomisedNotification {
                    title: text("Oma otsikko"),
                    content: text("Oma teksti"),
                }),
                unread_message_notification: UnreadMessageNotification {
                    reminder: ReminderPolicy::Default,
                },
            }),
            in_reply_to_message_id: None,
        }
    }

    fn json(h: &NotificationHint) -> String {
        serde_json::to_string(h).unwrap()
    }

    #[test]
    fn the_sender_appears_only_when_allowed() {
        for customised in [false, true] {
            let shown = for_created(&meta(SenderDetails::Shown, customised));
            assert_eq!(shown.sender.as_deref(), Some("CANARY-SENDER"));
            for details in [SenderDetails::Hidden, SenderDetails::Unknown] {
                let hidden = for_created(&meta(details, customised));
                assert!(
                    !json(&hidden).contains("CANARY-SENDER"),
                    "{}",
                    json(&hidden)
                );
            }
        }
        // No settings at all (an older DVV): hidden.
        let mut none = meta(SenderDetails::Shown, false);
        none.notifications = None;
        assert!(!json(&for_created(&none)).contains("CANARY-SENDER"));
        // A debug print never shows it either.
        let shown = for_created(&meta(SenderDetails::Shown, false));
        assert!(!format!("{shown:?}").contains("CANARY"));
        assert!(!format!("{:?}", meta(SenderDetails::Shown, true)).contains("CANARY"));
        assert!(!format!("{:?}", meta(SenderDetails::Shown, true)).contains("Oma"));
    }

    #[test]
    fn customised_texts_win_and_neutral_texts_otherwise() {
        let c = for_created(&meta(SenderDetails::Hidden, true));
        assert_eq!(c.source, "sender");
        assert_eq!(c.fi.title, "Oma otsikko fi");
        assert_eq!(c.sv.text, "Oma teksti sv");
        assert_eq!(c.en.title, "Oma otsikko en");
        let n = for_created(&meta(SenderDetails::Hidden, false));
        assert_eq!(n.source, "neutral");
        assert_eq!(n.fi.title, "Uusi viesti");
        assert_eq!(n.en.text, "You have received a new message.");
        let s = for_created(&meta(SenderDetails::Shown, false));
        assert_eq!(s.en.title, "New message from CANARY-SENDER");
        let mut v = meta(SenderDetails::Hidden, false);
        v.message_service_type = Some(MessageServiceType::Verifiable);
        assert!(for_created(&v).en.text.contains("confirm its receipt"));
        assert_ne!(for_reminder(true).en.text, for_reminder(false).en.text);
        assert!(for_reminder(false).sender.is_none());
    }
}
