//! [`Store`]: the handle to the durable state. Every operation calls the backend and then does
//! the side effects of storage here, once for both backends: each write's outcome updates the
//! store's health (the basis of failing closed), new work wakes its worker, and delivery outcomes
//! are counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::backend::{Backend, ConsentSink};
use super::error::StoreError;
use super::health::{StoreHealth, StoreStatus};
use super::ownership::Ownership;
use super::sqlite::{SqliteStore, DATABASE_FILE};
use super::types::{
    millis_before, now_millis, Committed, DeliveryCounts, DvvVerdict, FiredReminder, LedgerOpening,
    MonthFigures, NewDelivery, OutboxStats, ParkedDelivery, ParkedOpening, PendingDelivery,
    PendingOpening, RecordedOpening, ReminderChange, ReminderDelivery,
};

/// Handle to the store. Cheap to clone; clones share the backend, the health, the wake-up
/// signals and the counters.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    /// Whether writes commit right now.
    health: StoreHealth,
    /// An opening was recorded or requeued: the deliverer should look.
    openings_wake: Notify,
    /// Deliveries were queued or replayed: the dispatcher should look.
    webhooks_wake: Notify,
    totals: Counters,
    /// The SQLite backend again, for tests that reach into the file.
    #[cfg(test)]
    sqlite: Option<Arc<SqliteStore>>,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    parked: AtomicU64,
}

/// Webhook delivery outcomes since this process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookTotals {
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Deliveries parked.
    pub parked: u64,
}

impl Store {
    /// The handle over a backend.
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                health: StoreHealth::default(),
                openings_wake: Notify::new(),
                webhooks_wake: Notify::new(),
                totals: Counters::default(),
                #[cfg(test)]
                sqlite: None,
            }),
        }
    }

    /// Opens (creating and migrating if needed) the embedded SQLite store at `path` (the file;
    /// the gateway uses [`super::open`], tools and tests name a file).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let backend = Arc::new(SqliteStore::open(path.into()).await?);
        #[cfg(test)]
        {
            let mut store = Self::new(backend.clone());
            if let Some(inner) = Arc::get_mut(&mut store.inner) {
                inner.sqlite = Some(backend);
            }
            Ok(store)
        }
        #[cfg(not(test))]
        Ok(Self::new(backend))
    }

    /// Opens the embedded store at `<data_dir>/ikkuna.db`.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(data_dir.join(DATABASE_FILE)).await
    }

    /// The database file (empty for PostgreSQL).
    pub fn path(&self) -> &Path {
        self.inner.backend.path()
    }

    /// True when due rows are claimed (hidden from every caller for the claim period) rather
    /// than returned again while in flight: the store is shared by several replicas.
    pub fn claims(&self) -> bool {
        self.inner.backend.claims()
    }

    /// Whether the store took its last write, and why not if it did not: the basis of failing
    /// closed (no body is released while openings cannot be recorded) and of `/readyz`.
    pub fn store_status(&self) -> StoreStatus {
        self.inner.health.status()
    }

    /// Notes a write's outcome in the store's health and passes it on.
    fn observed<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        self.inner.health.observe(&outcome);
        outcome
    }

    // --- openings ---

    /// Records that a citizen opened a message, once per (consent, message): returns the existing
    /// opening if there is one, otherwise inserts a new one and commits it durably before
    /// returning. A new opening wakes the deliverer.
    pub async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError> {
        let recorded = self
            .inner
            .backend
            .record_opening(consent_id, message_id)
            .await;
        // Finding an existing opening writes nothing, so it proves nothing about the disk.
        if !matches!(&recorded, Ok(r) if !r.newly_recorded) {
            self.inner.health.observe(&recorded);
        }
        let recorded = recorded?;
        if recorded.newly_recorded {
            self.inner.openings_wake.notify_one();
        }
        Ok(recorded)
    }

    /// Up to `limit` pending openings whose next attempt is due at `now`, oldest due first;
    /// claimed where [`Store::claims`].
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        self.inner.backend.due_openings(now, limit).await
    }

    /// When the earliest pending opening not yet due at `now` falls due, if there is one.
    pub async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.backend.next_opening_due_after(now).await
    }

    /// Settles an opening with DVV's answer, a settled verdict (tests; see
    /// [`Store::mark_delivered_with`]).
    pub async fn mark_delivered(
        &self,
        opening_id: &str,
        first_open: bool,
        read_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let verdict = DvvVerdict {
            first_open,
            read_at,
            settles_at: None,
        };
        self.mark_delivered_with(opening_id, &verdict).await
    }

    /// Settles an opening with DVV's answer (a 201, or a 409 repeating it) and its verdict,
    /// provisional or settled. An opening already delivered keeps its first answer.
    pub async fn mark_delivered_with(
        &self,
        opening_id: &str,
        verdict: &DvvVerdict,
    ) -> Result<(), StoreError> {
        let outcome = self
            .inner
            .backend
            .opening_delivered(opening_id, verdict)
            .await;
        self.observed(outcome)
    }

    /// Records a failed attempt that may succeed later, and when to try again.
    pub async fn mark_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let outcome = self
            .inner
            .backend
            .opening_failed(opening_id, error_kind, next_attempt_at)
            .await;
        self.observed(outcome)
    }

    /// Parks an opening DVV refused for good: it stays recorded (it is still money) but is not
    /// retried until [`Store::requeue_parked`].
    pub async fn park(&self, opening_id: &str, error_kind: &str) -> Result<(), StoreError> {
        let outcome = self
            .inner
            .backend
            .park_opening(opening_id, error_kind)
            .await;
        self.observed(outcome)
    }

    /// Puts every parked opening back in line for delivery now (after an operator fixed the
    /// cause); returns how many. Wakes the deliverer.
    pub async fn requeue_parked(&self) -> Result<usize, StoreError> {
        self.replay_openings(&[]).await
    }

    /// Puts parked openings (those in `ids`, or all when empty) back in line for delivery now;
    /// returns how many. Wakes the deliverer (`ikkuna openings replay`).
    pub async fn replay_openings(&self, ids: &[String]) -> Result<usize, StoreError> {
        let outcome = self.inner.backend.replay_openings(ids).await;
        let count = self.observed(outcome)?;
        if count > 0 {
            self.inner.openings_wake.notify_one();
        }
        Ok(count)
    }

    /// Up to `limit` parked openings, oldest opened first (`ikkuna openings parked`).
    pub async fn parked_openings(&self, limit: usize) -> Result<Vec<ParkedOpening>, StoreError> {
        self.inner.backend.parked_openings(limit).await
    }

    /// Counts by state, first opens, and the age of the oldest pending opening.
    pub async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.inner.backend.opening_stats().await
    }

    /// Proves the store takes a durable write right now (for `/readyz` and the probe): commits a
    /// one-row heartbeat, so a full disk, a read-only mount or a lost database shows up.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let outcome = self.inner.backend.check_writable().await;
        self.observed(outcome)
    }

    /// Resolves when an opening is newly recorded or requeued (a permit is kept if nobody was
    /// waiting), so the deliverer starts at once rather than at its next poll.
    pub(crate) async fn recorded(&self) {
        self.inner.openings_wake.notified().await;
    }

    // --- webhooks ---

    /// Queues each delivery for every endpoint; returns how many rows were new. Wakes the
    /// dispatcher.
    pub async fn enqueue_webhooks(
        &self,
        endpoints: &[String],
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        let outcome = self
            .inner
            .backend
            .enqueue_webhooks(endpoints, deliveries)
            .await;
        let added = self.observed(outcome)?;
        if added > 0 {
            self.wake_webhooks();
        }
        Ok(added)
    }

    /// Up to `limit` pending deliveries due at `now`, oldest due first; claimed where
    /// [`Store::claims`].
    pub async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.inner.backend.due_webhooks(now, limit).await
    }

    /// When the earliest pending delivery not yet due at `now` falls due.
    pub async fn next_webhook_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.backend.next_webhook_due_after(now).await
    }

    /// Records a successful delivery.
    pub async fn webhook_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        self.inner.totals.delivered.fetch_add(1, Ordering::Relaxed);
        let outcome = self.inner.backend.webhook_delivered(id, status).await;
        self.observed(outcome)
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or parked when `park` is set.
    pub async fn webhook_failed(
        &self,
        id: i64,
        kind: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError> {
        self.inner.totals.failed.fetch_add(1, Ordering::Relaxed);
        if park {
            self.inner.totals.parked.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = self
            .inner
            .backend
            .webhook_failed(id, kind, status, next_attempt_at, park)
            .await;
        self.observed(outcome)
    }

    /// Up to `limit` parked deliveries, oldest first.
    pub async fn parked_webhooks(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError> {
        self.inner.backend.parked_webhooks(limit).await
    }

    /// Puts parked deliveries back in line (those in `ids`, or all when empty); returns how
    /// many. Wakes the dispatcher.
    pub async fn replay_webhooks(&self, ids: &[i64]) -> Result<usize, StoreError> {
        let outcome = self.inner.backend.replay_webhooks(ids).await;
        let count = self.observed(outcome)?;
        if count > 0 {
            self.wake_webhooks();
        }
        Ok(count)
    }

    /// Removes delivered rows older than `older_than`; returns how many.
    pub async fn prune_webhooks(&self, older_than: Duration) -> Result<usize, StoreError> {
        let cutoff = millis_before(now_millis(), older_than);
        let outcome = self.inner.backend.prune_webhooks(cutoff).await;
        self.observed(outcome)
    }

    /// The queue's rows by state.
    pub async fn webhook_counts(&self) -> Result<DeliveryCounts, StoreError> {
        self.inner.backend.webhook_counts().await
    }

    /// Delivery outcomes since this process started.
    pub fn webhook_totals(&self) -> WebhookTotals {
        let t = &self.inner.totals;
        WebhookTotals {
            delivered: t.delivered.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
            parked: t.parked.load(Ordering::Relaxed),
        }
    }

    /// Tells the dispatcher that deliveries are waiting.
    pub(crate) fn wake_webhooks(&self) {
        self.inner.webhooks_wake.notify_one();
    }

    /// Resolves when deliveries were queued or replayed (a permit is kept if nobody waited).
    pub(crate) async fn webhooks_woken(&self) {
        self.inner.webhooks_wake.notified().await;
    }

    // --- the events feed ---

    /// The stored continuation token; `None` before the first page was ever committed.
    pub async fn load_position(&self) -> Result<Option<String>, StoreError> {
        self.inner.backend.load_position().await
    }

    /// In one transaction: checks the stored token is still `from`, queues `deliveries` for
    /// every endpoint, applies the page's reminder changes, and stores `next`. Wakes the
    /// dispatcher when something was queued.
    pub async fn commit_page(
        &self,
        from: Option<String>,
        next: &str,
        endpoints: &[String],
        deliveries: &[NewDelivery],
        reminders: &[ReminderChange],
        events: i64,
    ) -> Result<Committed, StoreError> {
        let outcome = self
            .inner
            .backend
            .commit_page(from, next, endpoints, deliveries, reminders, events)
            .await;
        let committed = self.observed(outcome)?;
        if matches!(committed, Committed::Advanced { queued } if queued > 0) {
            self.wake_webhooks();
        }
        Ok(committed)
    }

    /// Tells the other replicas about consent changes (`(revoked, consent id)` pairs) so their
    /// caches drop them at once; with one process per store there is nobody to tell.
    pub async fn publish_consent_changes(
        &self,
        changes: &[(bool, String)],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.inner.backend.publish_consent_changes(changes).await
    }

    // --- the reminder schedule ---

    /// In one transaction: turns up to `limit` reminders due at `now` into webhook deliveries
    /// (built by `build`, for every endpoint) and advances or ends their rows; see
    /// [`super::backend::Backend::fire_reminders`]. Wakes the dispatcher when any fired.
    pub async fn fire_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        max_count: u32,
        endpoints: &[String],
        build: ReminderDelivery,
    ) -> Result<Vec<FiredReminder>, StoreError> {
        let outcome = self
            .inner
            .backend
            .fire_reminders(now, limit, max_count, endpoints, build)
            .await;
        let fired = self.observed(outcome)?;
        if !fired.is_empty() {
            self.wake_webhooks();
        }
        Ok(fired)
    }

    /// How many reminders are scheduled.
    pub async fn scheduled_reminders(&self) -> Result<u64, StoreError> {
        self.inner.backend.scheduled_reminders().await
    }

    // --- the ledger ---

    /// The months in `[start, end)` (unix ms of `opened_at`) and the retention cut-off.
    pub async fn ledger_months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError> {
        self.inner.backend.ledger_months(start, end).await
    }

    /// Deletes delivered openings opened before `cutoff` (unix ms); returns how many.
    pub async fn prune_ledger(&self, cutoff: i64) -> Result<usize, StoreError> {
        let outcome = self.inner.backend.prune_ledger(cutoff).await;
        self.observed(outcome)
    }

    /// Every opening opened in `[start, end)` (unix ms), for reconciliation with DVV.
    pub async fn ledger_openings(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<LedgerOpening>, StoreError> {
        self.inner.backend.ledger_openings(start, end).await
    }

    /// Records DVV's settled verdicts on openings whose stored verdict is provisional; returns
    /// how many changed.
    pub async fn adopt_settled_verdicts(
        &self,
        verdicts: &[(String, bool, DateTime<Utc>)],
    ) -> Result<usize, StoreError> {
        if verdicts.is_empty() {
            return Ok(0);
        }
        let outcome = self.inner.backend.adopt_settled_verdicts(verdicts).await;
        self.observed(outcome)
    }

    // --- coordination ---

    /// Starts the election of the replica that runs the singleton work; see [`Ownership`].
    pub fn spawn_owner_election(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> (Ownership, JoinHandle<()>) {
        Arc::clone(&self.inner.backend).spawn_owner_election(shutdown)
    }

    /// Starts applying the consent changes other replicas publish; `None` when there are none.
    pub fn spawn_consent_listener(
        &self,
        apply: ConsentSink,
        shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        Arc::clone(&self.inner.backend).spawn_consent_listener(apply, shutdown)
    }

    /// The backend itself (tests of operations the gateway reaches only through a worker).
    #[cfg(test)]
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// Runs `work` on the SQLite connection (tests that reach into the file).
    #[cfg(test)]
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.inner.sqlite {
            Some(sqlite) => sqlite.run(work).await,
            None => Err(StoreError::Worker),
        }
    }
}
