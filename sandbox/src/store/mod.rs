//! The sandbox's state in memory: providers, citizens, consents, messages, openings and each
//! provider's events feed.
//!
//! The state is built from the seed and then changed only by [`Store::apply`] with a journal
//! [`Record`], both live and when the journal is replayed on start, so that replay reproduces
//! exactly what was served (first-open decisions and event fan-out included).

mod feed;

use std::collections::{BTreeSet, HashMap};

use ikkuna_hetu::IdentityCode;

pub use feed::{CreatedDetails, FeedEvent};

use crate::journal::{NewMessage, NewReply, Record, ReplyFile};
use crate::keys::StateKey;
use crate::model::{BodyFormat, ConsentState, EventType, MessageServiceType, ReplyAllowedBy};
use crate::notifications::Notifications;
use crate::seed::Seed;
use crate::time::Timestamp;

/// First message id handed out.
const FIRST_MESSAGE_ID: i64 = 4_100_001;
/// First attachment id handed out.
const FIRST_ATTACHMENT_ID: i64 = 7_100_001;

/// A registered provider.
#[derive(Clone, Debug)]
pub struct Provider {
    /// Provider id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A citizen the sandbox knows (seeded, or created by an admin call).
#[derive(Clone, Debug, Default)]
pub struct Citizen {
    /// Display name, if seeded.
    pub name: Option<String>,
    /// Inbox ordered by (createdAt in ms, messageId); read in reverse for newest first.
    pub inbox: BTreeSet<(i64, i64)>,
}

/// A (citizen, provider) pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentKey {
    /// Identity code.
    pub citizen: String,
    /// Provider id.
    pub provider: String,
}

/// A consent between one citizen and one provider.
#[derive(Clone, Debug)]
pub struct Consent {
    /// Opaque id, stable per citizen and provider.
    pub id: String,
    /// Active or Revoked.
    pub state: ConsentState,
    /// When last granted.
    pub granted_at: Timestamp,
    /// When revoked, while revoked.
    pub revoked_at: Option<Timestamp>,
    /// Every period in which the consent was active, oldest first (the last one open while
    /// active): an opening counts when its time falls in one of them.
    pub periods: Vec<ConsentPeriod>,
}

/// One stretch of time in which a consent was active: `[from, until)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentPeriod {
    /// Granted.
    pub from: Timestamp,
    /// Revoked; `None` while still active.
    pub until: Option<Timestamp>,
}

impl Consent {
    /// Whether the consent was active at `t` (in any of its periods).
    pub fn active_at(&self, t: Timestamp) -> bool {
        self.periods
            .iter()
            .any(|p| p.from <= t && p.until.is_none_or(|u| t < u))
    }
}

/// A message and what happened to it.
#[derive(Clone, Debug)]
pub struct Message {
    /// Message id.
    pub id: i64,
    /// Recipient identity code.
    pub citizen: String,
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
    /// Delivery time.
    pub created_at: Timestamp,
    /// First opening, in any window: the earliest corroborated `openedAt` of the openings
    /// that compete for first open (or DVV's own, seeded, reading).
    pub read_at: Option<Timestamp>,
    /// When the citizen read it in DVV's own service (seeded), which competes like any opening.
    pub own_read_at: Option<Timestamp>,
    /// `(provider, openingId)` of the opening that is first, if a provider's is.
    pub first_opening: Option<(String, String)>,
    /// Receipt confirmation, for verifiable messages.
    pub receipt: Option<Receipt>,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
    /// The sender's notification settings.
    pub notifications: Notifications,
    /// Who may reply.
    pub reply_allowed_by: ReplyAllowedBy,
    /// The citizen's reply this message answers, for an authority's answer.
    pub in_reply_to: Option<i64>,
    /// The citizen's replies to this message, oldest first.
    pub replies: Vec<Reply>,
}

/// A citizen's reply as DVV holds it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The reply's id.
    pub id: i64,
    /// The message replied to.
    pub message_id: i64,
    /// The provider that relayed it.
    pub provider: String,
    /// The text.
    pub body: String,
    /// The files' descriptions.
    pub files: Vec<ReplyFile>,
    /// When it arrived.
    pub sent_at: Timestamp,
}

/// A receipt confirmation.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// The provider that relayed it; `None` when confirmed in DVV's own service (seed).
    pub provider: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// An attachment's metadata.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// Attachment id.
    pub id: i64,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A reported opening, as answered to the provider.
#[derive(Clone, Debug)]
pub struct Opening {
    /// Reporting provider.
    pub provider: String,
    /// The provider's idempotency key.
    pub opening_id: String,
    /// Message opened.
    pub message_id: i64,
    /// As reported.
    pub opened_at: Timestamp,
    /// `openedAt` as DVV corroborated it: the reported time held within DVV's first release of
    /// the content to this provider and the report's arrival. Arbitration uses this.
    pub corroborated_at: Timestamp,
    /// When the report arrived.
    pub received_at: Timestamp,
    /// Whether the report arrived before the message's first-open verdict settled, so that it
    /// took part in the arbitration (a later one is recorded but never changes the verdict).
    pub competes: bool,
}

/// A message's first-open verdict as it stands, for one opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether this opening is the message's first open.
    pub first_open: bool,
    /// The message's `readAt` (earliest corroborated opening anywhere).
    pub read_at: Timestamp,
    /// When the verdict can no longer change: `readAt` plus the settlement window.
    pub settles_at: Timestamp,
}

impl Verdict {
    /// The contract's `firstOpenStatus` as of `now`: `Settled` once the window has passed,
    /// `Provisional` before.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if now >= self.settles_at {
            "Settled"
        } else {
            "Provisional"
        }
    }
}

/// What applying a record changed.
#[derive(Clone, Debug)]
pub enum Applied {
    /// A consent's new state.
    Consent(Consent),
    /// A message was stored.
    Message(i64),
    /// An opening was recorded.
    Opening(Opening),
    /// A receipt was recorded.
    Receipt(Timestamp),
    /// A reply was recorded.
    Reply(Reply),
    /// A release of content to a provider was recorded (or had been before).
    Released,
    /// An opening was deleted (admin, to plant a discrepancy).
    OpeningDeleted,
}

/// Why a record could not be applied (only seen when replaying an inconsistent journal).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The record names a provider the seed does not have.
    #[error("unknown provider")]
    UnknownProvider,
    /// The record names a message that does not exist.
    #[error("unknown message")]
    UnknownMessage,
    /// The record would revoke a consent that is not active.
    #[error("no active consent to revoke")]
    NotActive,
    /// The message id is already taken.
    #[error("duplicate message id")]
    DuplicateMessage,
    /// The opening id was already used by this provider.
    #[error("duplicate opening")]
    DuplicateOpening,
    /// No such opening to delete.
    #[error("unknown opening")]
    UnknownOpening,
    /// The receipt cannot be recorded.
    #[error("receipt not applicable")]
    Receipt,
    /// A change answered something other than what its kind produces.
    #[error("unexpected outcome")]
    UnexpectedOutcome,
    /// The reply's id or idempotency key is already taken.
    #[error("duplicate reply")]
    DuplicateReply,
}

/// The whole state.
#[derive(Debug)]
pub struct Store {
    providers: Vec<Provider>,
    citizens: HashMap<String, Citizen>,
    consents: HashMap<ConsentKey, Consent>,
    consent_ids: HashMap<String, ConsentKey>,
    messages: HashMap<i64, Message>,
    openings: HashMap<(String, String), Opening>,
    opening_order: Vec<(String, String)>,
    feeds: HashMap<String, Vec<FeedEvent>>,
    event_seq: u64,
    next_message_id: i64,
    next_attachment_id: i64,
    releases: HashMap<(String, i64), Timestamp>,
    settlement_window: chrono::Duration,
    key: StateKey,
    /// Replies by id: the message replied to.
    replies: HashMap<i64, i64>,
    /// Replies by (provider, consent, idempotency key).
    reply_keys: HashMap<(String, String, String), i64>,
}

impl Store {
    /// The state described by the seed, before any journal record.
    pub fn from_seed(seed: &Seed, key: StateKey, settlement_window: chrono::Duration) -> Self {
        let mut store = Self {
            providers: seed
                .providers
                .iter()
                .map(|p| Provider {
                    id: p.id.clone(),
                    name: p.name.clone(),
                })
                .collect(),
            citizens: HashMap::new(),
            consents: HashMap::new(),
            consent_ids: HashMap::new(),
            messages: HashMap::new(),
            openings: HashMap::new(),
            opening_order: Vec::new(),
            feeds: seed
                .providers
                .iter()
                .map(|p| (p.id.clone(), Vec::new()))
                .collect(),
            event_seq: 0,
            next_message_id: FIRST_MESSAGE_ID,
            next_attachment_id: FIRST_ATTACHMENT_ID,
            releases: HashMap::new(),
            settlement_window,
            key,
            replies: HashMap::new(),
            reply_keys: HashMap::new(),
        };
        for c in &seed.citizens {
            let code = c.id.reveal().to_owned();
            store.citizens.entry(code.clone()).or_default().name = Some(c.name.clone());
            for k in &c.consents {
                let key = ConsentKey {
                    citizen: code.clone(),
                    provider: k.provider.clone(),
                };
                let consent = Consent {
                    id: store.consent_id(&key),
                    state: k.state,
                    granted_at: k.granted_at,
                    revoked_at: k.revoked_at,
                    periods: vec![ConsentPeriod {
                        from: k.granted_at,
                        until: match k.state {
                            ConsentState::Active => None,
                            ConsentState::Revoked => Some(k.revoked_at.unwrap_or(k.granted_at)),
                        },
                    }],
                };
                store.consent_ids.insert(consent.id.clone(), key.clone());
                store.consents.insert(key, consent);
            }
        }
        for m in &seed.messages {
            let id = store.next_message_id;
            store.next_message_id += 1;
            let attachments = m
                .attachments
                .iter()
                .map(|a| {
                    let id = store.next_attachment_id;
                    store.next_attachment_id += 1;
                    Attachment {
                        id,
                        name: a.name.clone(),
                        media_type: a.media_type.clone(),
                        size: a.size,
                    }
                })
                .collect();
            let message = Message {
                id,
                citizen: m.to.reveal().to_owned(),
                sender_name: m.sender_name.clone(),
                title: m.title.clone(),
                body: m.body.clone(),
                body_format: m.body_format,
                service_type: m.service_type,
                created_at: m.created_at,
                read_at: m.read_at,
                own_read_at: m.read_at,
                first_opening: None,
                receipt: m
                    .receipt_confirmed_at
                    .map(|at| Receipt { provider: None, at }),
                attachments,
                notifications: m.notifications.clone(),
                reply_allowed_by: m.reply_allowed_by,
                in_reply_to: None,
                replies: Vec::new(),
            };
            store.insert_message(message);
        }
        store
    }

    /// Applies one mutation. Live callers check preconditions first, so an error here means a
    /// journal that does not fit the seed (replay skips such records with a warning).
    pub fn apply(&mut self, record: &Record) -> Result<Applied, ApplyError> {
        match record {
            Record::ConsentGranted {
                citizen,
                provider,
                at,
            } => self.apply_grant(citizen, provider, *at),
            Record::ConsentRevoked {
                citizen,
                provider,
                at,
            } => self.apply_revoke(citizen, provider, *at),
            Record::MessageCreated { message, at } => self.apply_message(message, *at),
            Record::OpeningReported {
                provider,
                message_id,
                opening_id,
                opened_at,
                at,
            } => self.apply_opening(provider, *message_id, opening_id, *opened_at, *at),
            Record::ReceiptConfirmed {
                provider,
                message_id,
                at,
            } => self.apply_receipt(provider, *message_id, *at),
            Record::ReplyReceived {
                provider,
                consent_id,
                idempotency_key,
                reply,
                at,
            } => self.apply_reply(provider, consent_id, idempotency_key, reply, *at),
            Record::ContentReleased {
                provider,
                message_id,
                at,
            } => self.apply_release(provider, *message_id, *at),
            Record::OpeningDeleted {
                provider,
                opening_id,
                ..
            } => self.apply_delete_opening(provider, opening_id),
        }
    }

    fn apply_reply(
        &mut self,
        provider: &str,
        consent_id: &str,
        key: &str,
        reply: &NewReply,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        let scoped = (provider.to_owned(), consent_id.to_owned(), key.to_owned());
        if self.replies.contains_key(&reply.id)
            || self.messages.contains_key(&reply.id)
            || self.reply_keys.contains_key(&scoped)
        {
            return Err(ApplyError::DuplicateReply);
        }
        let message = self
            .messages
            .get_mut(&reply.message_id)
            .ok_or(ApplyError::UnknownMessage)?;
        let stored = Reply {
            id: reply.id,
            message_id: reply.message_id,
            provider: provider.to_owned(),
            body: reply.body.clone(),
            files: reply.files.clone(),
            sent_at: at,
        };
        message.replies.push(stored.clone());
        let citizen = message.citizen.clone();
        self.replies.insert(reply.id, reply.message_id);
        self.reply_keys.insert(scoped, reply.id);
        self.next_message_id = self.next_message_id.max(reply.id + 1);
        for (p, consent) in self.consents_of(&citizen, true) {
            self.emit_in_reply(
                &p,
                EventType::MessageFromEndUser,
                at,
                &consent,
                reply.id,
                reply.message_id,
            );
        }
        Ok(Applied::Reply(stored))
    }

    /// A reply by id.
    pub fn reply(&self, reply_id: i64) -> Option<&Reply> {
        let message = self.messages.get(self.replies.get(&reply_id)?)?;
        message.replies.iter().find(|r| r.id == reply_id)
    }

    /// A reply by its scoped idempotency key.
    pub fn reply_by_key(&self, provider: &str, consent_id: &str, key: &str) -> Option<&Reply> {
        let id =
            self.reply_keys
                .get(&(provider.to_owned(), consent_id.to_owned(), key.to_owned()))?;
        self.reply(*id)
    }

    /// Every reply, in id order.
    pub fn replies(&self) -> Vec<&Reply> {
        let mut ids: Vec<&i64> = self.replies.keys().collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.reply(*id)).collect()
    }

    fn apply_grant(
        &mut self,
        citizen: &str,
        provider: &str,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        if self.provider(provider).is_none() {
            return Err(ApplyError::UnknownProvider);
        }
        self.citizens.entry(citizen.to_owned()).or_default();
        let key = ConsentKey {
            citizen: citizen.to_owned(),
            provider: provider.to_owned(),
        };
        let id = self.consent_id(&key);
        let consent = self.consents.entry(key.clone()).or_insert(Consent {
            id: id.clone(),
            state: ConsentState::Revoked,
            granted_at: at,
            revoked_at: None,
            periods: Vec::new(),
        });
        consent.state = ConsentState::Active;
        consent.granted_at = at;
        consent.revoked_at = None;
        consent.periods.push(ConsentPeriod {
            from: at,
            until: None,
        });
        let consent = consent.clone();
        self.consent_ids.insert(id.clone(), key);
        self.emit(provider, EventType::ConsentGranted, at, &id, None);
        Ok(Applied::Consent(consent))
    }

    fn apply_revoke(
        &mut self,
        citizen: &str,
        provider: &str,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        let key = ConsentKey {
            citizen: citizen.to_owned(),
            provider: provider.to_owned(),
        };
        let consent = match self.consents.get_mut(&key) {
            Some(c) if c.state == ConsentState::Active => c,
            _ => return Err(ApplyError::NotActive),
        };
        consent.state = ConsentState::Revoked;
        consent.revoked_at = Some(at);
        if let Some(last) = consent.periods.last_mut() {
            last.until.get_or_insert(at);
        }
        let consent = consent.clone();
        self.emit(provider, EventType::ConsentRevoked, at, &consent.id, None);
        Ok(Applied::Consent(consent))
    }

    fn apply_message(&mut self, m: &NewMessage, at: Timestamp) -> Result<Applied, ApplyError> {
        if self.messages.contains_key(&m.id) {
            return Err(ApplyError::DuplicateMessage);
        }
        let message = Message {
            id: m.id,
            citizen: m.citizen.clone(),
            sender_name: m.sender_name.clone(),
            title: m.title.clone(),
            body: m.body.clone(),
            body_format: m.body_format,
            service_type: m.message_service_type,
            created_at: at,
            read_at: None,
            own_read_at: None,
            first_opening: None,
            receipt: None,
            attachments: m
                .attachments
                .iter()
                .map(|a| Attachment {
                    id: a.id,
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                })
                .collect(),
            notifications: m.notifications.clone(),
            reply_allowed_by: m.reply_allowed_by,
            in_reply_to: m.in_reply_to_message_id,
            replies: Vec::new(),
        };
        self.next_message_id = self.next_message_id.max(m.id + 1);
        if let Some(max) = m.attachments.iter().map(|a| a.id).max() {
            self.next_attachment_id = self.next_attachment_id.max(max + 1);
        }
        self.insert_message(message);
        let details = CreatedDetails {
            sender_name: m.sender_name.clone(),
            service_type: m.message_service_type,
            notifications: m.notifications.clone(),
        };
        for (provider, consent_id) in self.consents_of(&m.citizen, true) {
            match m.in_reply_to_message_id {
                Some(reply) => self.emit_in_reply(
                    &provider,
                    EventType::MessageCreated,
                    at,
                    &consent_id,
                    m.id,
                    reply,
                ),
                None => self.emit(
                    &provider,
                    EventType::MessageCreated,
                    at,
                    &consent_id,
                    Some(m.id),
                ),
            }
            if let Some(event) = self.feeds.get_mut(&provider).and_then(|f| f.last_mut()) {
                event.created = Some(Box::new(details.clone()));
            }
        }
        Ok(Applied::Message(m.id))
    }

    fn apply_opening(
        &mut self,
        provider: &str,
        message_id: i64,
        opening_id: &str,
        opened_at: Timestamp,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        let key = (provider.to_owned(), opening_id.to_owned());
        if self.openings.contains_key(&key) {
            return Err(ApplyError::DuplicateOpening);
        }
        let window = self.settlement_window;
        let release = self
            .releases
            .get(&(provider.to_owned(), message_id))
            .copied();
        let message = self
            .messages
            .get_mut(&message_id)
            .ok_or(ApplyError::UnknownMessage)?;
        // Held within what DVV saw: not before its first release of the content to this
        // provider (the delivery time when none is known, as in journals from before releases
        // were recorded), not after the report arrived.
        let floor = release.unwrap_or(message.created_at);
        let corroborated_at = opened_at.max(floor).min(at);
        let was_unread = message.read_at.is_none();
        let competes = message.read_at.is_none_or(|r| at < r + window);
        if competes && message.read_at.is_none_or(|r| corroborated_at < r) {
            message.read_at = Some(corroborated_at);
            message.first_opening = Some(key.clone());
        }
        let citizen = message.citizen.clone();
        let opening = Opening {
            provider: provider.to_owned(),
            opening_id: opening_id.to_owned(),
            message_id,
            opened_at,
            corroborated_at,
            received_at: at,
            competes,
        };
        self.openings.insert(key.clone(), opening.clone());
        self.opening_order.push(key);
        if was_unread {
            for (p, consent_id) in self.consents_of(&citizen, false) {
                self.emit(
                    &p,
                    EventType::MessageRead,
                    at,
                    &consent_id,
                    Some(message_id),
                );
            }
        }
        Ok(Applied::Opening(opening))
    }

    fn apply_release(
        &mut self,
        provider: &str,
        message_id: i64,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        if self.provider(provider).is_none() {
            return Err(ApplyError::UnknownProvider);
        }
        if !self.messages.contains_key(&message_id) {
            return Err(ApplyError::UnknownMessage);
        }
        self.releases
            .entry((provider.to_owned(), message_id))
            .or_insert(at);
        Ok(Applied::Released)
    }

    /// Removes an opening and arbitrates its message again from the openings that remain.
    fn apply_delete_opening(
        &mut self,
        provider: &str,
        opening_id: &str,
    ) -> Result<Applied, ApplyError> {
        let key = (provider.to_owned(), opening_id.to_owned());
        let removed = self
            .openings
            .remove(&key)
            .ok_or(ApplyError::UnknownOpening)?;
        self.opening_order.retain(|k| k != &key);
        let mut best: Option<(Timestamp, Timestamp, (String, String))> = None;
        for k in &self.opening_order {
            if let Some(o) = self.openings.get(k) {
                if o.message_id == removed.message_id
                    && o.competes
                    && best
                        .as_ref()
                        .is_none_or(|b| (o.corroborated_at, o.received_at) < (b.0, b.1))
                {
                    best = Some((o.corroborated_at, o.received_at, k.clone()));
                }
            }
        }
        if let Some(message) = self.messages.get_mut(&removed.message_id) {
            match (best, message.own_read_at) {
                (Some((t, _, k)), own) if own.is_none_or(|own| t < own) => {
                    message.read_at = Some(t);
                    message.first_opening = Some(k);
                }
                (_, own) => {
                    message.read_at = own;
                    message.first_opening = None;
                }
            }
        }
        Ok(Applied::OpeningDeleted)
    }

    fn apply_receipt(
        &mut self,
        provider: &str,
        message_id: i64,
        at: Timestamp,
    ) -> Result<Applied, ApplyError> {
        let message = self
            .messages
            .get_mut(&message_id)
            .ok_or(ApplyError::UnknownMessage)?;
        if message.service_type != MessageServiceType::Verifiable || message.receipt.is_some() {
            return Err(ApplyError::Receipt);
        }
        message.receipt = Some(Receipt {
            provider: Some(provider.to_owned()),
            at,
        });
        let citizen = message.citizen.clone();
        for (p, consent_id) in self.consents_of(&citizen, false) {
            self.emit(
                &p,
                EventType::ReceiptConfirmed,
                at,
                &consent_id,
                Some(message_id),
            );
        }
        Ok(Applied::Receipt(at))
    }

    fn insert_message(&mut self, message: Message) {
        let citizen = self.citizens.entry(message.citizen.clone()).or_default();
        citizen
            .inbox
            .insert((message.created_at.timestamp_millis(), message.id));
        self.messages.insert(message.id, message);
    }

    /// `(provider, consentId)` of every consent the citizen has, only active ones if asked.
    fn consents_of(&self, citizen: &str, active_only: bool) -> Vec<(String, String)> {
        self.providers
            .iter()
            .filter_map(|p| {
                let key = ConsentKey {
                    citizen: citizen.to_owned(),
                    provider: p.id.clone(),
                };
                self.consents.get(&key).and_then(|c| {
                    (!active_only || c.state == ConsentState::Active)
                        .then(|| (p.id.clone(), c.id.clone()))
                })
            })
            .collect()
    }

    /// An event about message `message_id`, which is in reply to `in_reply_to`.
    fn emit_in_reply(
        &mut self,
        provider: &str,
        event_type: EventType,
        at: Timestamp,
        consent_id: &str,
        message_id: i64,
        in_reply_to: i64,
    ) {
        self.emit(provider, event_type, at, consent_id, Some(message_id));
        if let Some(last) = self.feeds.get_mut(provider).and_then(|f| f.last_mut()) {
            last.in_reply_to_message_id = Some(in_reply_to);
        }
    }

    fn emit(
        &mut self,
        provider: &str,
        event_type: EventType,
        at: Timestamp,
        consent_id: &str,
        message_id: Option<i64>,
    ) {
        self.event_seq += 1;
        let mac = self
            .key
            .mac(&[b"event", &self.event_seq.to_be_bytes(), provider.as_bytes()]);
        let event = FeedEvent {
            id: format!("ev-{}", hex::encode(&mac[..12])),
            event_type,
            time: at,
            consent_id: consent_id.to_owned(),
            message_id,
            created: None,
            in_reply_to_message_id: None,
        };
        self.feeds
            .entry(provider.to_owned())
            .or_default()
            .push(event);
    }

    fn consent_id(&self, key: &ConsentKey) -> String {
        let mac = self
            .key
            .mac(&[b"consent", key.citizen.as_bytes(), key.provider.as_bytes()]);
        format!("cns-{}", hex::encode(&mac[..12]))
    }

    /// The next message id to hand out, and the next `n` attachment ids.
    pub fn next_ids(&self, attachments: usize) -> (i64, Vec<i64>) {
        let first = self.next_attachment_id;
        (
            self.next_message_id,
            (0..attachments as i64).map(|i| first + i).collect(),
        )
    }

    /// Providers in seed order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// One provider.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Every known citizen.
    pub fn citizens(&self) -> impl Iterator<Item = (&String, &Citizen)> {
        self.citizens.iter()
    }

    /// The consent between a citizen and a provider.
    pub fn consent(&self, citizen: &IdentityCode, provider: &str) -> Option<&Consent> {
        self.consents.get(&ConsentKey {
            citizen: citizen.reveal().to_owned(),
            provider: provider.to_owned(),
        })
    }

    /// Resolves a consent id, but only for the provider it belongs to.
    pub fn consent_by_id(&self, consent_id: &str, provider: &str) -> Option<(&str, &Consent)> {
        let key = self.consent_ids.get(consent_id)?;
        if key.provider != provider {
            return None;
        }
        self.consents.get(key).map(|c| (key.citizen.as_str(), c))
    }

    /// A message.
    pub fn message(&self, id: i64) -> Option<&Message> {
        self.messages.get(&id)
    }

    /// Every message, in no particular order.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    /// A citizen's inbox, newest first, strictly older than `before` when given.
    pub fn inbox(
        &self,
        citizen: &str,
        before: Option<(i64, i64)>,
    ) -> impl Iterator<Item = &Message> + '_ {
        let citizen = self.citizens.get(citizen);
        citizen
            .into_iter()
            .flat_map(move |c| {
                let range: Box<dyn DoubleEndedIterator<Item = &(i64, i64)>> = match before {
                    Some(b) => Box::new(c.inbox.range(..b)),
                    None => Box::new(c.inbox.iter()),
                };
                range.rev()
            })
            .filter_map(|(_, id)| self.messages.get(id))
    }

    /// A previous opening by `(provider, openingId)`.
    pub fn opening(&self, provider: &str, opening_id: &str) -> Option<&Opening> {
        self.openings
            .get(&(provider.to_owned(), opening_id.to_owned()))
    }

    /// When DVV first released the message's content to the provider, if it has.
    pub fn release(&self, provider: &str, message_id: i64) -> Option<Timestamp> {
        self.releases
            .get(&(provider.to_owned(), message_id))
            .copied()
    }

    /// The first-open verdict for an opening as it stands now.
    pub fn verdict(&self, opening: &Opening) -> Verdict {
        let message = self.messages.get(&opening.message_id);
        let read_at = message
            .and_then(|m| m.read_at)
            .unwrap_or(opening.corroborated_at);
        let first_open = message.is_some_and(|m| {
            m.first_opening
                .as_ref()
                .is_some_and(|(p, id)| p == &opening.provider && id == &opening.opening_id)
        });
        Verdict {
            first_open,
            read_at,
            settles_at: read_at + self.settlement_window,
        }
    }

    /// Every opening in arrival order.
    pub fn openings(&self) -> impl Iterator<Item = &Opening> {
        self.opening_order
            .iter()
            .filter_map(|k| self.openings.get(k))
    }

    /// A provider's events feed, oldest first.
    pub fn feed(&self, provider: &str) -> &[FeedEvent] {
        self.feeds.get(provider).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Counts for the admin summary.
    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            citizens: self.citizens.len(),
            consents_active: self
                .consents
                .values()
                .filter(|c| c.state == ConsentState::Active)
                .count(),
            consents_revoked: self
                .consents
                .values()
                .filter(|c| c.state == ConsentState::Revoked)
                .count(),
            messages: self.messages.len(),
            messages_read: self
                .messages
                .values()
                .filter(|m| m.read_at.is_some())
                .count(),
            openings: self.openings.len(),
            events: self.feeds.values().map(Vec::len).sum(),
        }
    }
}

/// Sizes of the state, for humans.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCounts {
    /// Known citizens.
    pub citizens: usize,
    /// Active consents.
    pub consents_active: usize,
    /// Revoked consents.
    pub consents_revoked: usize,
    /// Messages.
    pub messages: usize,
    /// Messages opened at least once.
    pub messages_read: usize,
    /// Openings reported.
    pub openings: usize,
    /// Events in all feeds.
    pub events: usize,
}
