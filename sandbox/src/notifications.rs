//! A sender's notification settings for one message, in the shape the Suomi.fi Messages REST API
//! gives senders: whether notifications may name the sender, an optional customised new-message
//! notification (title and text in Finnish, Swedish and English), and whether an unread message
//! is reminded about. The sandbox stores them with the message and shows them in the contract;
//! what a window may then display is the window's business (the gateway decides that).

use serde::{Deserialize, Serialize};

/// Longest customised notification title, per language (characters).
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest customised notification text, per language (characters).
pub const MAX_CONTENT_CHARS: usize = 1500;

/// Whether a notification about the message may name the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SenderDetails {
    /// The organisation and service name may be shown (the default).
    #[default]
    #[serde(rename = "Organisation and service name")]
    OrganisationAndServiceName,
    /// Nothing about the sender may be shown outside the opened message.
    #[serde(rename = "None")]
    Hidden,
}

/// Whether an unread message is reminded about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReminderPolicy {
    /// Remind after the usual delay (the default).
    #[default]
    #[serde(rename = "Default reminder")]
    Default,
    /// Never remind.
    #[serde(rename = "No reminders")]
    None,
}

/// One text in the three languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localised {
    /// Finnish.
    pub fi: String,
    /// Swedish.
    pub sv: String,
    /// English.
    pub en: String,
}

/// The sender's own new-message notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomisedNotification {
    /// Title, plain text.
    pub title: Localised,
    /// Text, plain text.
    pub content: Localised,
}

/// The reminder policy as an object (room for more settings, as in the Suomi.fi API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnreadMessageNotification {
    /// Remind or not.
    pub reminder: ReminderPolicy,
}

/// A message's notification settings; every field has the Suomi.fi default when left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notifications {
    /// Whether the sender may be named.
    #[serde(default)]
    pub sender_details_in_notifications: SenderDetails,
    /// The sender's own notification, if any (`null` in the contract when absent).
    #[serde(default)]
    pub customised_new_message_notification: Option<CustomisedNotification>,
    /// Reminder policy.
    #[serde(default)]
    pub unread_message_notification: UnreadMessageNotification,
}

impl Notifications {
    /// Every problem with the customised texts, as `(field, reason)` pairs (empty when valid).
    pub fn problems(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        if let Some(c) = &self.customised_new_message_notification {
            check(&c.title, "title", MAX_TITLE_CHARS, &mut out);
            check(&c.content, "content", MAX_CONTENT_CHARS, &mut out);
        }
        out
    }
}

fn check(text: &Localised, field: &str, max: usize, out: &mut Vec<(String, &'static str)>) {
    for (lang, value) in [("fi", &text.fi), ("sv", &text.sv), ("en", &text.en)] {
        let chars = value.chars().count();
        if value.trim().is_empty() || chars > max || value.chars().any(char::is_control) {
            out.push((
                format!("notifications.customisedNewMessageNotification.{field}.{lang}"),
                if max == MAX_TITLE_CHARS {
                    "must be 1 to 256 characters of plain text"
                } else {
                    "must be 1 to 1500 characters of plain text"
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_suomi_fi_and_spelling_is_the_contracts() {
        let n: Notifications = serde_json::from_str("{}").unwrap();
        assert_eq!(n, Notifications::default());
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "senderDetailsInNotifications": "Organisation and service name",
                "customisedNewMessageNotification": null,
                "unreadMessageNotification": {"reminder": "Default reminder"},
            })
        );
        let hidden: Notifications = serde_json::from_value(serde_json::json!({
            "senderDetailsInNotifications": "None",
            "unreadMessageNotification": {"reminder": "No reminders"},
        }))
        .unwrap();
        assert_eq!(
            hidden.sender_details_in_notifications,
            SenderDetails::Hidden
        );
        assert_eq!(
            hidden.unread_message_notification.reminder,
            ReminderPolicy::None
        );
    }

    #[test]
    fn customised_texts_are_bounded_and_unknown_keys_refused() {
        let text = |s: &str| Localised {
            fi: s.into(),
            sv: "sv".into(),
            en: "en".into(),
        };
        let mut n = Notifications {
            customised_new_message_notification: Some(CustomisedNotification {
                title: text(""),
                content: text(&"x".repeat(1501)),
            }),
            ..Notifications::default()
        };
        let fields: Vec<String> = n.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "notifications.customisedNewMessageNotification.title.fi",
                "notifications.customisedNewMessageNotification.content.fi"
            ]
        );
        n.customised_new_message_notification = Some(CustomisedNotification {
            title: text("Uusi päätös"),
            content: text("Sinulle on uusi päätös."),
        });
        assert!(n.problems().is_empty());
        assert!(serde_json::from_str::<Notifications>(r#"{"senderDetails":"None"}"#).is_err());
    }
}
