//! The one storage interface. Every durable operation is one method here, which the compiler
//! requires of both backends ([`super::sqlite::SqliteStore`], [`super::postgres::PgStore`]), and
//! one case in the store suite (`src/store/tests.rs`), which runs every case on both. Methods do
//! storage only: waking workers, store health and counters happen once, above, in
//! [`super::Store`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::StoreError;
use super::ownership::Ownership;
use super::types::{
    Committed, ConsentChange, DeliveryCounts, DvvVerdict, FiredReminder, LedgerOpening,
    MonthFigures, NewDelivery, OutboxStats, ParkedDelivery, ParkedOpening, PendingDelivery,
    PendingOpening, RecordedOpening, ReminderChange, ReminderDelivery,
};

/// Applies one consent change published by another replica (the consent cache, in the gateway).
pub type ConsentSink = Arc<dyn Fn(&ConsentChange) + Send + Sync>;

/// What a backend stores and how replicas coordinate on it.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// True when `due_*` *claims* the rows it returns (hidden from every caller, this one
    /// included, for the claim period), as a store shared by several replicas must.
    fn claims(&self) -> bool;

    /// The database file (empty for a server).
    fn path(&self) -> &Path;

    // --- openings (the outbox and the ledger) ---

    /// Records an opening once per (consent, message), durably before it returns; returns the
    /// existing one if there is one.
    async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError>;
    /// Up to `limit` pending openings due at `now`, oldest due first (claimed where
    /// [`Backend::claims`]).
    async fn due_openings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError>;
    /// When the earliest pending opening not yet due at `now` falls due.
    async fn next_opening_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Settles an opening with DVV's verdict; one already delivered keeps its first answer.
    async fn opening_delivered(
        &self,
        opening_id: &str,
        verdict: &DvvVerdict,
    ) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    async fn opening_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Parks an opening DVV refused for good.
    async fn park_opening(&self, opening_id: &str, error_kind: &str) -> Result<(), StoreError>;
    /// Puts parked openings (those in `ids`, or all when empty) back in line, due now; returns
    /// how many.
    async fn replay_openings(&self, ids: &[String]) -> Result<usize, StoreError>;
    /// Up to `limit` parked openings, oldest opened first.
    async fn parked_openings(&self, limit: usize) -> Result<Vec<ParkedOpening>, StoreError>;
    /// Counts by state, first opens, the oldest pending opening's age.
    async fn opening_stats(&self) -> Result<OutboxStats, StoreError>;
    /// Commits a one-row heartbeat: proves a durable write goes through right now.
    async fn check_writable(&self) -> Result<(), StoreError>;

    // --- the webhook queue ---

    /// Queues each delivery for every endpoint in a transaction of its own, leaving existing
    /// (event, endpoint) rows alone; returns how many rows are new.
    async fn enqueue_webhooks(
        &self,
        endpoints: &[String],
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError>;
    /// Up to `limit` pending deliveries due at `now`, oldest due first (claimed where
    /// [`Backend::claims`]).
    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// When the earliest pending delivery not yet due at `now` falls due.
    async fn next_webhook_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Records a successful delivery.
    async fn webhook_delivered(&self, id: i64, status: u16) -> Result<(), StoreError>;
    /// Records a failed attempt: retried at `next_attempt_at`, or parked.
    async fn webhook_failed(
        &self,
        id: i64,
        kind: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError>;
    /// Up to `limit` parked deliveries, oldest first.
    async fn parked_webhooks(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError>;
    /// Puts parked deliveries (those in `ids`, or all when empty) back in line, due now with a
    /// fresh attempt count; returns how many.
    async fn replay_webhooks(&self, ids: &[i64]) -> Result<usize, StoreError>;
    /// Deletes delivered rows delivered at or before `cutoff` (unix ms); returns how many.
    async fn prune_webhooks(&self, cutoff: i64) -> Result<usize, StoreError>;
    /// Rows by state and the oldest pending row's age.
    async fn webhook_counts(&self) -> Result<DeliveryCounts, StoreError>;

    // --- the events feed ---

    /// The stored continuation token.
    async fn load_position(&self) -> Result<Option<String>, StoreError>;
    /// In one transaction: checks the stored token is still `from`, queues `deliveries` for
    /// every endpoint, applies the page's `reminders` changes in order, stores `next` and adds
    /// `events` to the running count.
    async fn commit_page(
        &self,
        from: Option<String>,
        next: &str,
        endpoints: &[String],
        deliveries: &[NewDelivery],
        reminders: &[ReminderChange],
        events: i64,
    ) -> Result<Committed, StoreError>;
    /// Publishes consent changes (`(revoked, consent id)`) to the other replicas: logged, so a
    /// replica that was not listening catches up, and notified at once. Nothing to do where there
    /// are no other replicas.
    async fn publish_consent_changes(&self, changes: &[(bool, String)]) -> Result<(), StoreError>;
    /// Published consent changes after `seq`, oldest first (at most `limit`).
    async fn consent_changes_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<ConsentChange>, StoreError>;

    // --- the reminder schedule ---

    /// In one transaction: takes up to `limit` reminders due at `now` (rows another replica is
    /// taking are skipped), queues `build`'s delivery of each for every endpoint, and advances
    /// each row to its next due time — or deletes it after its `max_count`th reminder (a row
    /// already past `max_count` is deleted without a reminder). Returns the reminders sent.
    async fn fire_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        max_count: u32,
        endpoints: &[String],
        build: ReminderDelivery,
    ) -> Result<Vec<FiredReminder>, StoreError>;
    /// How many reminders are scheduled.
    async fn scheduled_reminders(&self) -> Result<u64, StoreError>;

    // --- the ledger ---

    /// The months in `[start, end)` (unix ms of `opened_at`) and the retention cut-off.
    async fn ledger_months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError>;
    /// Deletes delivered openings opened before `cutoff` and records the cut-off; returns how many.
    async fn prune_ledger(&self, cutoff: i64) -> Result<usize, StoreError>;
    /// Every opening opened in `[start, end)` (unix ms), by `opened_at` then id.
    async fn ledger_openings(&self, start: i64, end: i64)
        -> Result<Vec<LedgerOpening>, StoreError>;
    /// Records DVV's settled verdicts `(opening id, firstOpen, readAt)` on delivered openings whose
    /// stored verdict is still provisional; returns how many changed.
    async fn adopt_settled_verdicts(
        &self,
        verdicts: &[(String, bool, DateTime<Utc>)],
    ) -> Result<usize, StoreError>;

    // --- coordination between replicas ---

    /// Starts the election of the one replica that runs the singleton work (events feed,
    /// webhook dispatch, retention). A store only one process can use makes that process the
    /// owner at once.
    fn spawn_owner_election(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> (Ownership, JoinHandle<()>);
    /// Starts applying the consent changes other replicas publish (with catch-up after a lost
    /// connection); `None` where there are no other replicas.
    fn spawn_consent_listener(
        self: Arc<Self>,
        apply: ConsentSink,
        shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>>;
}
