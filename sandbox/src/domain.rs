//! The sandbox's operations: every read and change the DVV and admin APIs make, with the
//! contract's rules (consent ownership, revocation, verifiable messages, idempotency).
//!
//! One mutex guards the store and the journal together, so a change is journaled and applied
//! in the same order, and racing openings of one message are arbitrated exactly once. The lock
//! is held only for in-memory work and a single append; never across an `.await`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use ikkuna_hetu::IdentityCode;

use crate::journal::{Journal, NewAttachment, NewMessage, NewReply, Record, ReplyFile};
use crate::keys::StateKey;
use crate::model::{BodyFormat, ConsentState, MessageServiceType, ReplyAllowedBy};
use crate::notifications::Notifications;
use crate::seed::Seed;
use crate::store::{
    Applied, Attachment, Consent, FeedEvent, Message, Opening, Reply, Store, StoreCounts, Verdict,
};
use crate::time::{self, Timestamp};

/// Events older than this are no longer served; openings older than this are no longer taken.
const EVENT_RETENTION: chrono::Duration = chrono::Duration::days(60);

/// The contract's settlement window: a message's first-open verdict is provisional until this
/// long after its `readAt`, and final from then on.
pub const SETTLEMENT_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// The clock skew DVV tolerates on `openedAt`: up to this much before its first release of the
/// content (counted as the release time) and after the report's arrival (counted as arrival).
pub const OPENED_AT_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// Why an operation was refused; the HTTP layers map each to one status.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Unknown consent id, or another provider's.
    #[error("consent not found")]
    ConsentNotFound,
    /// The citizen has no consent with this provider (admin revoke).
    #[error("no consent for this provider")]
    NoConsent,
    /// The consent is revoked.
    #[error("consent revoked")]
    ConsentRevoked,
    /// No such message for this consent's citizen.
    #[error("message not found")]
    MessageNotFound,
    /// No such attachment on the message.
    #[error("attachment not found")]
    AttachmentNotFound,
    /// A verifiable message whose receipt is not confirmed.
    #[error("receipt confirmation required")]
    ReceiptRequired,
    /// Receipt confirmation of a normal message.
    #[error("message is not verifiable")]
    NotVerifiable,
    /// The receipt was already confirmed: the original answer.
    #[error("receipt already confirmed")]
    ReceiptAlreadyConfirmed(i64, Timestamp),
    /// The opening id was used before by this provider: the opening as it stands.
    #[error("opening already reported")]
    OpeningRepeated(Box<(Opening, Verdict)>),
    /// `openedAt` lies outside every period in which the consent was active.
    #[error("opened outside consent")]
    OpenedOutsideConsent,
    /// `openedAt` lies before DVV first released the content to this provider (beyond the
    /// skew), or the content was never released to it: a backdated opening.
    #[error("opened before content release")]
    OpenedBeforeRelease,
    /// `openedAt` lies after the report's arrival (beyond the skew): the reporter's clock runs
    /// ahead; the same report succeeds later.
    #[error("opened in the future")]
    OpenedInFuture,
    /// `openedAt` is older than the feed's retention.
    #[error("opening outside retention")]
    OpeningOutsideRetention,
    /// No such opening (admin delete).
    #[error("opening not found")]
    OpeningNotFound,
    /// Unknown provider id.
    #[error("unknown provider")]
    UnknownProvider,
    /// A continuation position beyond the feed.
    #[error("continuation position out of range")]
    BadPosition,
    /// The message's sender accepts no reply.
    #[error("replies not allowed")]
    RepliesNotAllowed,
    /// The idempotency key was used before by this provider for this consent: the original.
    #[error("reply already received")]
    ReplyRepeated(Box<Reply>),
    /// No such reply.
    #[error("reply not found")]
    ReplyNotFound,
    /// The journal could not be written.
    #[error("journal write failed: {0}")]
    Storage(#[from] std::io::Error),
    /// The store refused a checked change (a bug).
    #[error("inconsistent state: {0}")]
    Inconsistent(#[from] crate::store::ApplyError),
}

/// A new message as the admin API describes it.
#[derive(Clone, Debug)]
pub struct MessageInput {
    /// Recipient.
    pub citizen: IdentityCode,
    /// Sending organisation.
    pub sender_name: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Text or Markdown.
    pub body_format: BodyFormat,
    /// Normal or Verifiable.
    pub service_type: MessageServiceType,
    /// (name, media type, size) of each attachment.
    pub attachments: Vec<(String, String, u64)>,
    /// The sender's notification settings.
    pub notifications: Notifications,
    /// Who may reply.
    pub reply_allowed_by: ReplyAllowedBy,
    /// The citizen's reply this message answers, for an authority's answer.
    pub in_reply_to: Option<i64>,
}

/// What a provider learns before uploading a reply.
#[derive(Clone, Debug)]
pub struct ReplyStanding {
    /// Who may reply to the message.
    pub reply_allowed_by: ReplyAllowedBy,
    /// The reply already received under the same idempotency key, if any.
    pub previous: Option<Reply>,
}

/// A citizen as listed in `sandbox.json`.
#[derive(Clone, Debug)]
pub struct CitizenSummary {
    /// Identity code.
    pub id: String,
    /// Display name, if seeded.
    pub name: Option<String>,
    /// Consent state with the given provider, if any.
    pub consent: Option<ConsentState>,
    /// Messages addressed to the citizen.
    pub messages: usize,
}

/// A position in an inbox: `(createdAt in ms, messageId)` of the last message seen.
pub type InboxCursor = (i64, i64);

/// An inbox page.
#[derive(Clone, Debug)]
pub struct InboxSlice {
    /// Messages, newest first.
    pub messages: Vec<Message>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<InboxCursor>,
}

/// An events page.
#[derive(Clone, Debug)]
pub struct EventsPage {
    /// Events in order.
    pub events: Vec<FeedEvent>,
    /// Position after the last event returned.
    pub next: u64,
}

/// A position in a statement: `(openedAt in ms, openingId)` of the last opening seen.
pub type StatementCursor = (i64, String);

/// A statement page: the provider's openings with DVV's verdicts.
#[derive(Clone, Debug)]
pub struct StatementSlice {
    /// Openings by reported `openedAt`, then `openingId`.
    pub openings: Vec<(Opening, Verdict)>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<StatementCursor>,
}

struct Core {
    store: Store,
    journal: Journal,
}

/// The sandbox state behind its lock.
pub struct Domain {
    core: Mutex<Core>,
}

impl Domain {
    /// Builds the state from the seed and replays the journal at `journal_path`.
    /// `settlement_window` is [`SETTLEMENT_WINDOW`] unless a test shortens it.
    pub fn open(
        journal_path: &Path,
        seed: &Seed,
        key: StateKey,
        settlement_window: chrono::Duration,
    ) -> anyhow::Result<Self> {
        let mut store = Store::from_seed(seed, key, settlement_window);
        let (journal, records) = Journal::open(journal_path)?;
        let mut skipped = 0usize;
        for record in &records {
            if let Err(e) = store.apply(record) {
                skipped += 1;
                tracing::warn!(error = %e, "journal record does not fit the seed; skipped");
            }
        }
        tracing::info!(
            records = records.len(),
            skipped,
            journal = %journal.path().display(),
            "state restored"
        );
        Ok(Self {
            core: Mutex::new(Core { store, journal }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Providers as `(id, name)`, in seed order.
    pub fn providers(&self) -> Vec<(String, String)> {
        self.lock()
            .store
            .providers()
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect()
    }

    /// The citizen's consent for `provider`.
    pub fn lookup_consent(&self, provider: &str, citizen: &IdentityCode) -> Option<Consent> {
        self.lock().store.consent(citizen, provider).cloned()
    }

    /// Grants (or re-grants) a consent; granting an active one changes nothing.
    pub fn grant(&self, citizen: &IdentityCode, provider: &str) -> Result<Consent, DomainError> {
        let mut core = self.lock();
        if core.store.provider(provider).is_none() {
            return Err(DomainError::UnknownProvider);
        }
        if let Some(c) = core.store.consent(citizen, provider) {
            if c.state == ConsentState::Active {
                return Ok(c.clone());
            }
        }
        let record = Record::ConsentGranted {
            citizen: citizen.reveal().to_owned(),
            provider: provider.to_owned(),
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::Consent(c) => Ok(c),
            _ => Err(inconsistent()),
        }
    }

    /// Revokes a consent; revoking a revoked one changes nothing.
    pub fn revoke(&self, citizen: &IdentityCode, provider: &str) -> Result<Consent, DomainError> {
        let mut core = self.lock();
        if core.store.provider(provider).is_none() {
            return Err(DomainError::UnknownProvider);
        }
        match core.store.consent(citizen, provider) {
            None => return Err(DomainError::NoConsent),
            Some(c) if c.state == ConsentState::Revoked => return Ok(c.clone()),
            Some(_) => {}
        }
        let record = Record::ConsentRevoked {
            citizen: citizen.reveal().to_owned(),
            provider: provider.to_owned(),
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::Consent(c) => Ok(c),
            _ => Err(inconsistent()),
        }
    }

    /// Delivers a new message; answers its id and its attachments' ids.
    pub fn create_message(&self, input: MessageInput) -> Result<(i64, Vec<i64>), DomainError> {
        let mut core = self.lock();
        let (id, attachment_ids) = core.store.next_ids(input.attachments.len());
        let record = Record::MessageCreated {
            message: NewMessage {
                id,
                citizen: input.citizen.reveal().to_owned(),
                sender_name: input.sender_name,
                title: input.title,
                body: input.body,
                body_format: input.body_format,
                message_service_type: input.service_type,
                attachments: input
                    .attachments
                    .into_iter()
                    .zip(&attachment_ids)
                    .map(|((name, media_type, size), id)| NewAttachment {
                        id: *id,
                        name,
                        media_type,
                        size,
                    })
                    .collect(),
                notifications: input.notifications,
                reply_allowed_by: input.reply_allowed_by,
                in_reply_to_message_id: input.in_reply_to,
            },
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::Message(created) if created == id => Ok((id, attachment_ids)),
            _ => Err(inconsistent()),
        }
    }

    /// A citizen's whole inbox, newest first, read directly (no provider, no consent check, no
    /// release recorded): for demos that point at interesting messages.
    pub fn inbox_of(&self, citizen: &str) -> Vec<Message> {
        self.lock().store.inbox(citizen, None).cloned().collect()
    }

    /// One inbox page, newest first, after `before` when given.
    pub fn inbox_page(
        &self,
        provider: &str,
        consent_id: &str,
        before: Option<InboxCursor>,
        limit: usize,
    ) -> Result<InboxSlice, DomainError> {
        let core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let mut page: Vec<Message> = core
            .store
            .inbox(citizen, before)
            .take(limit + 1)
            .cloned()
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|m| (m.created_at.timestamp_millis(), m.id))
        } else {
            None
        };
        Ok(InboxSlice {
            messages: page,
            next,
        })
    }

    /// One message of the consent's citizen.
    pub fn message(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
    ) -> Result<Message, DomainError> {
        let mut core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let message = own_message(&core.store, citizen, message_id)?.clone();
        if !withheld(&message) {
            release(&mut core, provider, message_id)?;
        }
        Ok(message)
    }

    /// One attachment's metadata, if its content may be served.
    pub fn attachment(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
        attachment_id: i64,
    ) -> Result<Attachment, DomainError> {
        let mut core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let message = own_message(&core.store, citizen, message_id)?;
        // Withheld first: attachment ids of an unconfirmed message are not even confirmed.
        if withheld(message) {
            return Err(DomainError::ReceiptRequired);
        }
        let attachment = message
            .attachments
            .iter()
            .find(|a| a.id == attachment_id)
            .cloned()
            .ok_or(DomainError::AttachmentNotFound)?;
        release(&mut core, provider, message_id)?;
        Ok(attachment)
    }

    /// Records an opening, arbitrating the first open across providers by the earliest
    /// corroborated `openedAt`.
    ///
    /// The rules, in order: the consent must be this provider's (404) and the message its
    /// citizen's (404); a repeated `openingId` answers the opening as it stands, even after a
    /// revocation, so that a client that lost an answer learns it was recorded; a `Verifiable`
    /// message needs its receipt confirmed (403); `openedAt` may not lie after arrival beyond the
    /// skew (422, temporary), nor before DVV's first release of the content to this provider
    /// beyond the skew (422, permanent), nor beyond retention (422, permanent); and the consent
    /// must have been active at the corroborated `openedAt`, even if revoked since (403,
    /// permanent).
    pub fn report_opening(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
        opening_id: &str,
        opened_at: Timestamp,
    ) -> Result<(Opening, Verdict), DomainError> {
        let mut core = self.lock();
        let now = time::now();
        let (citizen, consent) = core
            .store
            .consent_by_id(consent_id, provider)
            .ok_or(DomainError::ConsentNotFound)?;
        if let Some(previous) = core.store.opening(provider, opening_id) {
            let verdict = core.store.verdict(previous);
            return Err(DomainError::OpeningRepeated(Box::new((
                previous.clone(),
                verdict,
            ))));
        }
        let message = own_message(&core.store, citizen, message_id)?;
        if withheld(message) {
            return Err(DomainError::ReceiptRequired);
        }
        if opened_at > now + OPENED_AT_SKEW {
            return Err(DomainError::OpenedInFuture);
        }
        let release = core
            .store
            .release(provider, message_id)
            .ok_or(DomainError::OpenedBeforeRelease)?;
        if opened_at < release - OPENED_AT_SKEW {
            return Err(DomainError::OpenedBeforeRelease);
        }
        if opened_at < now - EVENT_RETENTION {
            return Err(DomainError::OpeningOutsideRetention);
        }
        let corroborated_at = opened_at.max(release).min(now);
        if !consent.active_at(corroborated_at) {
            return Err(DomainError::OpenedOutsideConsent);
        }
        let record = Record::OpeningReported {
            provider: provider.to_owned(),
            message_id,
            opening_id: opening_id.to_owned(),
            opened_at,
            at: now,
        };
        match commit(&mut core, &record)? {
            Applied::Opening(o) => {
                let verdict = core.store.verdict(&o);
                Ok((o, verdict))
            }
            _ => Err(inconsistent()),
        }
    }

    /// One page of the provider's statement: its openings whose reported `openedAt` lies in
    /// `[from, to)`, ordered by `openedAt` then `openingId`, after `after` when given, each with
    /// DVV's verdict as it stands.
    pub fn statement(
        &self,
        provider: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<&StatementCursor>,
        limit: usize,
    ) -> StatementSlice {
        let core = self.lock();
        let mut list: Vec<&Opening> = core
            .store
            .openings()
            .filter(|o| o.provider == provider && o.opened_at >= from && o.opened_at < to)
            .filter(|o| {
                after.is_none_or(|(ms, id)| {
                    (o.opened_at.timestamp_millis(), &o.opening_id) > (*ms, id)
                })
            })
            .collect();
        list.sort_by(|a, b| (a.opened_at, &a.opening_id).cmp(&(b.opened_at, &b.opening_id)));
        let more = list.len() > limit;
        list.truncate(limit);
        let next = if more {
            list.last()
                .map(|o| (o.opened_at.timestamp_millis(), o.opening_id.clone()))
        } else {
            None
        };
        StatementSlice {
            openings: list
                .into_iter()
                .map(|o| (o.clone(), core.store.verdict(o)))
                .collect(),
            next,
        }
    }

    /// Deletes one opening at DVV's side (admin): the message's first open is arbitrated again
    /// from the openings that remain. For tests that plant a reconciliation discrepancy.
    pub fn delete_opening(&self, provider: &str, opening_id: &str) -> Result<(), DomainError> {
        let mut core = self.lock();
        if core.store.opening(provider, opening_id).is_none() {
            return Err(DomainError::OpeningNotFound);
        }
        let record = Record::OpeningDeleted {
            provider: provider.to_owned(),
            opening_id: opening_id.to_owned(),
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::OpeningDeleted => Ok(()),
            _ => Err(inconsistent()),
        }
    }

    /// Records a receipt confirmation of a verifiable message.
    pub fn confirm_receipt(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
    ) -> Result<Timestamp, DomainError> {
        let mut core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let message = own_message(&core.store, citizen, message_id)?;
        if message.service_type != MessageServiceType::Verifiable {
            return Err(DomainError::NotVerifiable);
        }
        if let Some(r) = &message.receipt {
            return Err(DomainError::ReceiptAlreadyConfirmed(message_id, r.at));
        }
        let record = Record::ReceiptConfirmed {
            provider: provider.to_owned(),
            message_id,
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::Receipt(at) => Ok(at),
            _ => Err(inconsistent()),
        }
    }

    /// Whether the consent's citizen may reply to the message, and the reply already received
    /// under `key` (scoped to this provider and consent), if any. Content is not released.
    pub fn reply_standing(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
        key: Option<&str>,
    ) -> Result<ReplyStanding, DomainError> {
        let core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let message = own_message(&core.store, citizen, message_id)?;
        Ok(ReplyStanding {
            reply_allowed_by: message.reply_allowed_by,
            previous: key
                .and_then(|k| core.store.reply_by_key(provider, consent_id, k))
                .cloned(),
        })
    }

    /// Checks that a reply to the message may be received now (before its upload is read).
    pub fn may_reply(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
        key: &str,
    ) -> Result<(), DomainError> {
        let core = self.lock();
        let citizen = active_consent(&core.store, provider, consent_id)?;
        let message = own_message(&core.store, citizen, message_id)?;
        if let Some(previous) = core.store.reply_by_key(provider, consent_id, key) {
            return Err(DomainError::ReplyRepeated(Box::new(previous.clone())));
        }
        if withheld(message) {
            return Err(DomainError::ReceiptRequired);
        }
        if message.reply_allowed_by != ReplyAllowedBy::Anyone {
            return Err(DomainError::RepliesNotAllowed);
        }
        Ok(())
    }

    /// Records a reply whose upload arrived complete. The idempotency key is checked again under
    /// the lock, so of two racing uploads with one key exactly one is recorded.
    pub fn record_reply(
        &self,
        provider: &str,
        consent_id: &str,
        message_id: i64,
        key: &str,
        body: String,
        files: Vec<ReplyFile>,
    ) -> Result<Reply, DomainError> {
        self.may_reply(provider, consent_id, message_id, key)?;
        let mut core = self.lock();
        if let Some(previous) = core.store.reply_by_key(provider, consent_id, key) {
            return Err(DomainError::ReplyRepeated(Box::new(previous.clone())));
        }
        let (id, _) = core.store.next_ids(0);
        let record = Record::ReplyReceived {
            provider: provider.to_owned(),
            consent_id: consent_id.to_owned(),
            idempotency_key: key.to_owned(),
            reply: NewReply {
                id,
                message_id,
                body,
                files,
            },
            at: time::now(),
        };
        match commit(&mut core, &record)? {
            Applied::Reply(reply) => Ok(reply),
            _ => Err(inconsistent()),
        }
    }

    /// The authority answers a citizen's reply: a new message to the citizen, in the thread,
    /// with `inReplyToMessageId` naming the reply.
    pub fn answer_reply(&self, reply_id: i64, text: Option<String>) -> Result<i64, DomainError> {
        let (citizen, sender_name, title, notifications) = {
            let core = self.lock();
            let reply = core
                .store
                .reply(reply_id)
                .ok_or(DomainError::ReplyNotFound)?;
            let message = core
                .store
                .message(reply.message_id)
                .ok_or(DomainError::ReplyNotFound)?;
            (
                message.citizen.clone(),
                message.sender_name.clone(),
                message.title.clone(),
                // The answer keeps the sender's notification settings (a hidden sender stays hidden).
                message.notifications.clone(),
            )
        };
        let citizen = IdentityCode::parse(&citizen).map_err(|_| inconsistent())?;
        let (id, _) = self.create_message(MessageInput {
            citizen,
            sender_name,
            title: format!("Re: {title}"),
            body: text.unwrap_or_else(|| {
                "Kiitos vastauksestasi. Olemme vastaanottaneet sen liitteineen.".to_owned()
            }),
            body_format: BodyFormat::Text,
            service_type: MessageServiceType::Normal,
            attachments: Vec::new(),
            reply_allowed_by: ReplyAllowedBy::Anyone,
            in_reply_to: Some(reply_id),
            notifications,
        })?;
        Ok(id)
    }

    /// Every reply received, in id order.
    pub fn replies(&self) -> Vec<Reply> {
        self.lock().store.replies().into_iter().cloned().collect()
    }

    /// Up to `max` events of the provider's feed from `position`, within retention.
    pub fn events(
        &self,
        provider: &str,
        position: u64,
        max: usize,
    ) -> Result<EventsPage, DomainError> {
        let core = self.lock();
        let feed = core.store.feed(provider);
        let start = usize::try_from(position).map_err(|_| DomainError::BadPosition)?;
        if start > feed.len() {
            return Err(DomainError::BadPosition);
        }
        let horizon = time::now() - EVENT_RETENTION;
        let mut next = start;
        let mut events = Vec::new();
        for e in &feed[start..] {
            if events.len() == max {
                break;
            }
            next += 1;
            if e.time >= horizon {
                events.push(e.clone());
            }
        }
        Ok(EventsPage {
            events,
            next: next as u64,
        })
    }

    /// Every receipt confirmation as `(messageId, provider, when)`, oldest first; the
    /// provider is `None` for confirmations seeded as made in DVV's own service.
    pub fn receipts(&self) -> Vec<(i64, Option<String>, Timestamp)> {
        let core = self.lock();
        let mut list: Vec<_> = core
            .store
            .messages()
            .filter_map(|m| m.receipt.as_ref().map(|r| (m.id, r.provider.clone(), r.at)))
            .collect();
        list.sort_by_key(|(id, _, at)| (*at, *id));
        list
    }

    /// Every opening in arrival order, with its verdict as it stands.
    pub fn openings(&self) -> Vec<(Opening, Verdict)> {
        let core = self.lock();
        core.store
            .openings()
            .map(|o| (o.clone(), core.store.verdict(o)))
            .collect()
    }

    /// Every known citizen with their consent state towards `provider`, seeded ones first in
    /// identity-code order.
    pub fn citizens(&self, provider: &str) -> Vec<CitizenSummary> {
        let core = self.lock();
        let mut list: Vec<CitizenSummary> = core
            .store
            .citizens()
            .map(|(id, c)| CitizenSummary {
                id: id.clone(),
                name: c.name.clone(),
                consent: IdentityCode::parse(id)
                    .ok()
                    .and_then(|code| core.store.consent(&code, provider))
                    .map(|c| c.state),
                messages: core.store.messages().filter(|m| &m.citizen == id).count(),
            })
            .collect();
        list.sort_by(|a, b| (a.name.is_none(), &a.id).cmp(&(b.name.is_none(), &b.id)));
        list
    }

    /// Sizes of the state.
    pub fn counts(&self) -> StoreCounts {
        self.lock().store.counts()
    }
}

fn commit(core: &mut Core, record: &Record) -> Result<Applied, DomainError> {
    core.journal.append(record)?;
    Ok(core.store.apply(record)?)
}

/// Records DVV's first release of a message's content to a provider (once; later releases
/// change nothing and write nothing).
fn release(core: &mut Core, provider: &str, message_id: i64) -> Result<(), DomainError> {
    if core.store.release(provider, message_id).is_some() {
        return Ok(());
    }
    let record = Record::ContentReleased {
        provider: provider.to_owned(),
        message_id,
        at: time::now(),
    };
    commit(core, &record)?;
    Ok(())
}

fn inconsistent() -> DomainError {
    DomainError::Inconsistent(crate::store::ApplyError::UnexpectedOutcome)
}

/// The citizen behind an active consent of this provider.
fn active_consent<'a>(
    store: &'a Store,
    provider: &str,
    consent_id: &str,
) -> Result<&'a str, DomainError> {
    let (citizen, consent) = store
        .consent_by_id(consent_id, provider)
        .ok_or(DomainError::ConsentNotFound)?;
    if consent.state == ConsentState::Revoked {
        return Err(DomainError::ConsentRevoked);
    }
    Ok(citizen)
}

fn own_message<'a>(
    store: &'a Store,
    citizen: &str,
    message_id: i64,
) -> Result<&'a Message, DomainError> {
    store
        .message(message_id)
        .filter(|m| m.citizen == citizen)
        .ok_or(DomainError::MessageNotFound)
}

/// Whether the message's content must be withheld until receipt is confirmed.
pub fn withheld(message: &Message) -> bool {
    message.service_type == MessageServiceType::Verifiable && message.receipt.is_none()
}
