//! The rows the store hands out and takes in: ids, times and counts only, never content. Both
//! backends produce exactly these, so the layers above never see a database type.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An opening as recorded: the id DVV will see and the time it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOpening {
    /// The opening's UUID v4: DVV's idempotency key for the report.
    pub opening_id: String,
    /// When the citizen opened the message (millisecond precision, as reported to DVV).
    pub opened_at: DateTime<Utc>,
    /// False when this (consent, message) already had an opening, which was returned instead.
    pub newly_recorded: bool,
}

/// An opening waiting to be reported to DVV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOpening {
    /// The opening's id (idempotency key).
    pub opening_id: String,
    /// The consent under which the message was read.
    pub consent_id: String,
    /// The message read.
    pub message_id: i64,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// DVV's first-open verdict on a delivered opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DvvVerdict {
    /// Whether this operator's opening is the message's first open.
    pub first_open: bool,
    /// The message's `readAt` at DVV.
    pub read_at: DateTime<Utc>,
    /// While the verdict is provisional: when it settles. `None` once settled.
    pub settles_at: Option<DateTime<Utc>>,
}

/// Where an opening stands in this gateway's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OpeningState {
    /// Not yet accepted by DVV (retrying).
    Pending,
    /// Accepted by DVV.
    Delivered,
    /// Refused by DVV for a reason the contract names permanent.
    Parked,
}

impl OpeningState {
    /// From the stored text.
    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "delivered" => Self::Delivered,
            "parked" => Self::Parked,
            _ => Self::Pending,
        }
    }
}

/// One opening as the ledger holds it (ids and times only), for reconciliation with DVV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOpening {
    /// The opening's id (DVV's idempotency key).
    pub opening_id: String,
    /// The message.
    pub message_id: i64,
    /// When it was opened, as reported.
    pub opened_at: DateTime<Utc>,
    /// Pending, delivered or parked.
    pub state: OpeningState,
    /// DVV's `firstOpen` answer, once delivered.
    pub first_open: Option<bool>,
    /// When the stored verdict settles, while it is provisional.
    pub settles_at: Option<DateTime<Utc>>,
    /// The last failure's kind (the parking reason for a parked opening).
    pub last_error: Option<String>,
}

/// A parked opening as `ikkuna openings parked` lists it: ids, times and the reason, never a
/// consent or an identity code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedOpening {
    /// The opening's id (what `ikkuna openings replay --id` takes).
    pub opening_id: String,
    /// The message.
    pub message_id: i64,
    /// When the citizen opened it (RFC 3339).
    pub opened_at: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The permanent reason DVV named (`opened_outside_consent`, ...).
    pub reason: Option<String>,
}

/// A stored time as RFC 3339 with milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    from_millis(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Counts for metrics and readiness: ids and times only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Openings not yet settled with DVV.
    pub pending: u64,
    /// Openings DVV refused for good (need an operator's look).
    pub parked: u64,
    /// Openings DVV acknowledged.
    pub delivered: u64,
    /// Delivered openings DVV answered `firstOpen: true` — the operator's compensation basis.
    pub first_opens: u64,
    /// Age of the oldest pending opening.
    pub oldest_pending_age: Option<Duration>,
}

/// A webhook delivery to queue: one event's id, type and signed body (for every endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The webhook event id (stable across attempts and replicas).
    pub event_id: String,
    /// The webhook type.
    pub event_type: String,
    /// The JSON body, exactly as it will be signed and sent.
    pub body: String,
}

/// A delivery due to be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The queue row.
    pub id: i64,
    /// The webhook event id (stable across attempts).
    pub event_id: String,
    /// The webhook type.
    pub event_type: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The JSON body, exactly as it will be signed and sent.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A parked delivery, as `ikkuna webhooks parked` lists it: ids, times and the last failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedDelivery {
    /// The queue row (what `ikkuna webhooks replay --id` takes).
    pub id: i64,
    /// The webhook event id.
    pub event_id: String,
    /// The webhook type.
    pub event_type: String,
    /// The endpoint that kept failing.
    pub endpoint: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// The last failure's kind (`timeout`, `connect`, `status`, ...).
    pub last_error: Option<String>,
    /// The last HTTP status the endpoint answered, if it answered.
    pub last_status: Option<u16>,
}

/// The webhook queue's rows by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Rows waiting (due now or retrying later).
    pub pending: u64,
    /// Rows parked after too many failures.
    pub parked: u64,
    /// Delivered rows still kept.
    pub delivered: u64,
    /// Age of the oldest pending row.
    pub oldest_pending_age: Option<Duration>,
}

/// The result of committing a page of the events feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The position moved; this many deliveries were newly queued.
    Advanced {
        /// New rows in the webhook queue.
        queued: usize,
    },
    /// The stored position was not the one the page was read from (another writer moved it):
    /// nothing was written; read the position again.
    Stale,
}

/// One month's figures of the compensation ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthFigures {
    /// `YYYY-MM` (UTC), or `total`.
    pub month: String,
    /// Openings recorded by this gateway.
    pub recorded: u64,
    /// Of those, settled with DVV.
    pub delivered: u64,
    /// Not yet settled (retrying).
    pub pending: u64,
    /// Refused by DVV for good and set aside for an operator's look.
    pub parked: u64,
    /// Delivered openings DVV answered `firstOpen: true`: the basis of compensation.
    pub first_opens: u64,
}

/// A consent change the feed's owner published for the other replicas: DVV's opaque consent id,
/// never an identity code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The change's place in the shared log (replicas catch up from the last one they applied).
    pub seq: i64,
    /// True for a revocation (the cache must refuse at once), false for any other change.
    pub revoked: bool,
    /// The consent.
    pub consent_id: String,
}

/// Unix milliseconds now.
pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// `now + d` in unix milliseconds, saturating.
pub(crate) fn millis_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `now - d` in unix milliseconds, saturating.
pub(crate) fn millis_before(now: i64, d: Duration) -> i64 {
    now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time back to a `DateTime`.
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A count from the database (never negative) as `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// How long ago a stored time was, if there is one.
pub(crate) fn age(at: Option<i64>) -> Option<Duration> {
    at.map(|at| Duration::from_millis(count(now_millis().saturating_sub(at))))
}

/// A change to the reminder schedule, taken from one page of the events feed and applied in the
/// page's transaction, in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReminderChange {
    /// A new unread message whose sender allows reminders: remind at `first_due_at`.
    Schedule(NewReminder),
    /// The message was read or its receipt confirmed, in any window: no more reminders.
    CancelMessage(i64),
    /// The consent ended: no more reminders under it.
    CancelConsent(String),
}

/// A reminder to schedule: ids and times only, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReminder {
    /// The consent the message was announced under.
    pub consent_id: String,
    /// The message.
    pub message_id: i64,
    /// When the first reminder falls due.
    pub first_due_at: DateTime<Utc>,
    /// The wait before each further reminder.
    pub interval: Duration,
    /// The message waits for a receipt confirmation (the reminder says so).
    pub needs_receipt: bool,
}

/// A reminder that fell due and was turned into webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredReminder {
    /// The consent.
    pub consent_id: String,
    /// The message.
    pub message_id: i64,
    /// When it fell due.
    pub due_at: DateTime<Utc>,
    /// 1 for the first reminder of this message, 2 for the second, ...
    pub number: u32,
    /// The message waits for a receipt confirmation.
    pub needs_receipt: bool,
}

/// Builds the webhook delivery of a reminder that fell due; called inside the store transaction
/// that advances the schedule, so the delivery and the schedule commit together.
pub type ReminderDelivery = std::sync::Arc<dyn Fn(&FiredReminder) -> NewDelivery + Send + Sync>;
