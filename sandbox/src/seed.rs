//! The seed: providers, citizens, consents and messages as data.
//!
//! The default seed is `seed/default.toml`, compiled in; `--seed FILE` replaces it. The file is
//! parsed in two stages, as the raw TOML (unknown keys are errors, so a typo never silently
//! drops a field) and then validated into [`Seed`], reporting every problem at once.

use std::collections::HashSet;
use std::path::Path;

use ikkuna_hetu::IdentityCode;
use serde::Deserialize;

use crate::model::{
    is_valid_provider_id, BodyFormat, ConsentState, MessageServiceType, ReplyAllowedBy,
};
use crate::notifications::Notifications;
use crate::time::{self, Timestamp};

/// The seed shipped with the sandbox.
pub const DEFAULT_SEED: &str = include_str!("../seed/default.toml");

/// Largest `count` a message template may expand to.
const MAX_TEMPLATE_COUNT: u32 = 10_000;

/// A validated seed.
#[derive(Clone, Debug)]
pub struct Seed {
    /// Providers in file order; the first acts as the gateway in `ikkuna.toml`.
    pub providers: Vec<SeedProvider>,
    /// Citizens in file order.
    pub citizens: Vec<SeedCitizen>,
    /// Messages with templates expanded, in file order.
    pub messages: Vec<SeedMessage>,
}

/// A digipost operator registered with DVV.
#[derive(Clone, Debug)]
pub struct SeedProvider {
    /// Stable id, also the `iss`/`sub` of its client assertions.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A fictional citizen.
#[derive(Clone, Debug)]
pub struct SeedCitizen {
    /// Test identity code.
    pub id: IdentityCode,
    /// Display name (fictional).
    pub name: String,
    /// Consents as they stand when the sandbox is first started.
    pub consents: Vec<SeedConsent>,
}

/// A consent as seeded.
#[derive(Clone, Debug)]
pub struct SeedConsent {
    /// Provider the consent is for.
    pub provider: String,
    /// Current state.
    pub state: ConsentState,
    /// When it was (last) granted.
    pub granted_at: Timestamp,
    /// When it was revoked, for a revoked consent.
    pub revoked_at: Option<Timestamp>,
}

/// A message as seeded.
#[derive(Clone, Debug)]
pub struct SeedMessage {
    /// Recipient.
    pub to: IdentityCode,
    /// Sending organisation.
    pub sender_name: String,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Text or Markdown.
    pub body_format: BodyFormat,
    /// Normal or Verifiable.
    pub service_type: MessageServiceType,
    /// Delivery time.
    pub created_at: Timestamp,
    /// Already read in DVV's own service before the sandbox started, if so.
    pub read_at: Option<Timestamp>,
    /// Receipt already confirmed in DVV's own service, if so.
    pub receipt_confirmed_at: Option<Timestamp>,
    /// Attachment metadata; content is generated.
    pub attachments: Vec<SeedAttachment>,
    /// The sender's notification settings.
    pub notifications: Notifications,
    /// Who may reply (default: no one).
    pub reply_allowed_by: ReplyAllowedBy,
}

/// An attachment's metadata.
#[derive(Clone, Debug)]
pub struct SeedAttachment {
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    providers: Vec<RawProvider>,
    #[serde(default)]
    citizens: Vec<RawCitizen>,
    #[serde(default)]
    messages: Vec<RawMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCitizen {
    id: String,
    name: String,
    #[serde(default)]
    consents: Vec<RawConsent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConsent {
    provider: String,
    state: ConsentState,
    granted_at: String,
    revoked_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMessage {
    to: String,
    sender_name: String,
    title: String,
    body: String,
    #[serde(default)]
    body_format: BodyFormat,
    #[serde(default)]
    message_service_type: MessageServiceType,
    created_at: String,
    read_at: Option<String>,
    receipt_confirmed_at: Option<String>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    /// The sender's notification settings (Suomi.fi defaults when left out).
    #[serde(default)]
    notifications: Notifications,
    /// Expands the entry into this many messages; `{n}` in title and body becomes 1..=count.
    count: Option<u32>,
    /// Minutes between the expanded messages' `createdAt`, counting back from `createdAt`.
    interval_minutes: Option<u32>,
    /// Who may reply: `Anyone` or `No one` (the default).
    #[serde(default)]
    reply_allowed_by: ReplyAllowedBy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAttachment {
    name: String,
    media_type: String,
    size: u64,
}

impl Seed {
    /// Loads the seed from `path`, or the built-in one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            Some(p) => {
                let text = crate::fsutil::read_string(p)?;
                Self::parse(&text).map_err(|e| anyhow::anyhow!("seed {}: {e}", p.display()))
            }
            None => Self::parse(DEFAULT_SEED).map_err(|e| anyhow::anyhow!("built-in seed: {e}")),
        }
    }

    /// Parses and validates seed TOML, reporting every problem found.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        // The error's message and position only: its rendering quotes the offending line,
        // which may hold an identity code.
        let raw: RawSeed = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => anyhow::anyhow!("{} (at byte {})", e.message().trim(), span.start),
            None => anyhow::anyhow!("{}", e.message().trim()),
        })?;
        let mut errors = Vec::new();
        let seed = validate(raw, &mut errors);
        if errors.is_empty() {
            Ok(seed)
        } else {
            anyhow::bail!("{}", errors.join("; "))
        }
    }
}

fn validate(raw: RawSeed, errors: &mut Vec<String>) -> Seed {
    let mut provider_ids = HashSet::new();
    let mut providers = Vec::new();
    if raw.providers.is_empty() {
        errors.push("at least one provider is required".into());
    }
    for (i, p) in raw.providers.into_iter().enumerate() {
        if !is_valid_provider_id(&p.id) {
            errors.push(format!("providers[{i}].id must be 1-64 of [a-z0-9-]"));
        } else if !provider_ids.insert(p.id.clone()) {
            errors.push(format!("providers[{i}].id is a duplicate"));
        }
        providers.push(SeedProvider {
            id: p.id,
            name: p.name,
        });
    }

    let mut citizen_ids = HashSet::new();
    let mut citizens = Vec::new();
    for (i, c) in raw.citizens.into_iter().enumerate() {
        let id = match IdentityCode::parse(&c.id) {
            Ok(id) => id,
            Err(e) => {
                errors.push(format!("citizens[{i}].id: {e}"));
                continue;
            }
        };
        if !citizen_ids.insert(c.id.clone()) {
            errors.push(format!("citizens[{i}].id is a duplicate"));
        }
        let mut consents = Vec::new();
        let mut consent_providers = HashSet::new();
        for (j, k) in c.consents.into_iter().enumerate() {
            let at = format!("citizens[{i}].consents[{j}]");
            if !provider_ids.contains(&k.provider) {
                errors.push(format!("{at}.provider is not a seeded provider"));
            }
            if !consent_providers.insert(k.provider.clone()) {
                errors.push(format!("{at}.provider appears twice for this citizen"));
            }
            let granted_at = timestamp(&k.granted_at, &format!("{at}.grantedAt"), errors);
            let revoked_at = k
                .revoked_at
                .as_deref()
                .and_then(|r| timestamp(r, &format!("{at}.revokedAt"), errors));
            match (k.state, revoked_at.is_some()) {
                (ConsentState::Revoked, false) => {
                    errors.push(format!("{at}: a Revoked consent needs revokedAt"))
                }
                (ConsentState::Active, true) => {
                    errors.push(format!("{at}: an Active consent has no revokedAt"))
                }
                _ => {}
            }
            if let Some(granted_at) = granted_at {
                consents.push(SeedConsent {
                    provider: k.provider,
                    state: k.state,
                    granted_at,
                    revoked_at,
                });
            }
        }
        citizens.push(SeedCitizen {
            id,
            name: c.name,
            consents,
        });
    }

    let mut messages = Vec::new();
    for (i, m) in raw.messages.into_iter().enumerate() {
        expand_message(i, m, &citizen_ids, &mut messages, errors);
    }
    Seed {
        providers,
        citizens,
        messages,
    }
}

fn expand_message(
    i: usize,
    m: RawMessage,
    citizen_ids: &HashSet<String>,
    out: &mut Vec<SeedMessage>,
    errors: &mut Vec<String>,
) {
    let at = format!("messages[{i}]");
    let to = match IdentityCode::parse(&m.to) {
        Ok(to) if citizen_ids.contains(&m.to) => to,
        Ok(_) => {
            errors.push(format!("{at}.to is not a seeded citizen"));
            return;
        }
        Err(e) => {
            errors.push(format!("{at}.to: {e}"));
            return;
        }
    };
    if m.title.trim().is_empty() {
        errors.push(format!("{at}.title is empty"));
    }
    let created_at = timestamp(&m.created_at, &format!("{at}.createdAt"), errors);
    let read_at = m
        .read_at
        .as_deref()
        .and_then(|r| timestamp(r, &format!("{at}.readAt"), errors));
    let receipt_confirmed_at = m
        .receipt_confirmed_at
        .as_deref()
        .and_then(|r| timestamp(r, &format!("{at}.receiptConfirmedAt"), errors));
    if receipt_confirmed_at.is_some() && m.message_service_type != MessageServiceType::Verifiable {
        errors.push(format!(
            "{at}.receiptConfirmedAt is only for Verifiable messages"
        ));
    }
    for (j, a) in m.attachments.iter().enumerate() {
        if a.name.trim().is_empty() || a.name.contains(['"', '\\', '/', '\r', '\n']) {
            errors.push(format!(
                "{at}.attachments[{j}].name must be a plain file name"
            ));
        }
        if a.media_type.parse::<http::HeaderValue>().is_err() || !a.media_type.contains('/') {
            errors.push(format!(
                "{at}.attachments[{j}].mediaType is not a media type"
            ));
        }
    }
    for (field, reason) in m.notifications.problems() {
        errors.push(format!("{at}.{field} {reason}"));
    }
    let count = m.count.unwrap_or(1);
    if count == 0 || count > MAX_TEMPLATE_COUNT {
        errors.push(format!("{at}.count must be 1..={MAX_TEMPLATE_COUNT}"));
        return;
    }
    let Some(created_at) = created_at else { return };
    let interval = chrono::Duration::minutes(i64::from(m.interval_minutes.unwrap_or(60)));
    let attachments: Vec<SeedAttachment> = m
        .attachments
        .into_iter()
        .map(|a| SeedAttachment {
            name: a.name,
            media_type: a.media_type,
            size: a.size,
        })
        .collect();
    for n in 1..=count {
        let fill = |s: &str| {
            if count > 1 {
                s.replace("{n}", &n.to_string())
            } else {
                s.to_owned()
            }
        };
        out.push(SeedMessage {
            to: to.clone(),
            sender_name: m.sender_name.clone(),
            title: fill(&m.title),
            body: fill(&m.body),
            body_format: m.body_format,
            service_type: m.message_service_type,
            created_at: created_at - interval * (count - n) as i32,
            read_at,
            receipt_confirmed_at,
            attachments: attachments.clone(),
            notifications: m.notifications.clone(),
            reply_allowed_by: m.reply_allowed_by,
        });
    }
}

fn timestamp(raw: &str, at: &str, errors: &mut Vec<String>) -> Option<Timestamp> {
    let parsed = time::parse(raw);
    if parsed.is_none() {
        errors.push(format!("{at} is not an RFC 3339 timestamp"));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_is_valid_and_varied() {
        let seed = Seed::parse(DEFAULT_SEED).unwrap();
        assert!(seed.providers.len() >= 2);
        assert!(seed.citizens.iter().all(|c| c.id.is_temporary()));
        let sizes: Vec<u64> = seed
            .messages
            .iter()
            .flat_map(|m| m.attachments.iter().map(|a| a.size))
            .collect();
        assert!(sizes.iter().any(|s| *s >= 1 << 30));
        assert!(sizes.iter().any(|s| *s >= 2 << 30));
        assert!(seed
            .messages
            .iter()
            .any(|m| m.service_type == MessageServiceType::Verifiable));
        assert!(seed
            .messages
            .iter()
            .any(|m| m.body_format == BodyFormat::Markdown));
    }

    #[test]
    fn default_seed_covers_every_notification_setting_combination() {
        use crate::notifications::{ReminderPolicy, SenderDetails};
        let seed = Seed::parse(DEFAULT_SEED).unwrap();
        let combos: HashSet<(bool, bool, bool)> = seed
            .messages
            .iter()
            .map(|m| {
                let n = &m.notifications;
                (
                    n.sender_details_in_notifications == SenderDetails::Hidden,
                    n.customised_new_message_notification.is_some(),
                    n.unread_message_notification.reminder == ReminderPolicy::None,
                )
            })
            .collect();
        assert_eq!(combos.len(), 8, "{combos:?}");
        assert!(seed.messages.iter().any(|m| {
            m.notifications.sender_details_in_notifications == SenderDetails::Hidden
                && m.service_type == MessageServiceType::Verifiable
        }));
    }

    #[test]
    fn notification_texts_are_checked() {
        let err = Seed::parse(
            r#"
            [[providers]]
            id = "p"
            name = "P"
            [[citizens]]
            id = "010190-936V"
            name = "y"
            [[messages]]
            to = "010190-936V"
            senderName = "s"
            title = "t"
            body = "b"
            createdAt = "2026-11-01T10:00:00Z"
            [messages.notifications.customisedNewMessageNotification]
            title = { fi = "", sv = "x", en = "x" }
            content = { fi = "x", sv = "x", en = "x" }
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("messages[0].notifications.customisedNewMessageNotification.title.fi"),
            "{err}"
        );
    }

    #[test]
    fn reports_every_problem() {
        let err = Seed::parse(
            r#"
            [[providers]]
            id = "Bad Id"
            name = "x"
            [[citizens]]
            id = "131052-308X"
            name = "y"
            [[messages]]
            to = "010190-936V"
            senderName = "s"
            title = ""
            body = ""
            createdAt = "yesterday"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("providers[0].id"), "{err}");
        assert!(err.contains("citizens[0].id"), "{err}");
        assert!(err.contains("messages[0].to"), "{err}");
        assert!(
            !err.contains("131052"),
            "must not echo identity codes: {err}"
        );
    }

    #[test]
    fn syntax_errors_do_not_quote_the_file() {
        let err = Seed::parse("[[citizens]]\nid = \"131052-308T\" x\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("131052"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Seed::parse("[[providers]]\nid = \"a\"\nname = \"b\"\nnmae = \"c\"\n").is_err());
    }

    #[test]
    fn templates_expand() {
        let seed = Seed::parse(
            r#"
            [[providers]]
            id = "p"
            name = "P"
            [[citizens]]
            id = "010190-936V"
            name = "y"
            [[messages]]
            to = "010190-936V"
            senderName = "s"
            title = "Notice {n}"
            body = "b"
            createdAt = "2026-11-01T10:00:00Z"
            count = 3
            intervalMinutes = 10
            "#,
        )
        .unwrap();
        let titles: Vec<_> = seed.messages.iter().map(|m| m.title.as_str()).collect();
        assert_eq!(titles, ["Notice 1", "Notice 2", "Notice 3"]);
        assert_eq!(
            time::format(&seed.messages[0].created_at),
            "2026-11-01T09:40:00.000Z"
        );
    }
}
