//! The durable webhook queue: one row per (event, endpoint) in the store, enqueued in the same
//! transaction that advances the feed position, delivered at least once, parked after the
//! configured number of failures, listed and replayed from the CLI. The rows live in the store
//! ([`crate::store`]); this is the webhook-shaped view of them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::payload::WebhookEvent;
use crate::store::{NewDelivery, Store, StoreError};
pub use crate::store::{ParkedDelivery, PendingDelivery};

/// Delivered rows are kept this long (for support questions), then pruned.
pub const DELIVERED_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Queue figures for metrics (the telemetry module reads these; no labels with content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Deliveries waiting (due now or retrying later).
    pub pending: u64,
    /// Deliveries parked after too many failures.
    pub parked: u64,
    /// Delivered rows still kept (see [`DELIVERED_RETENTION`]).
    pub delivered: u64,
    /// Age of the oldest pending delivery.
    pub oldest_pending_age: Option<Duration>,
    /// Deliveries that succeeded since this process started.
    pub delivered_total: u64,
    /// Attempts that failed since this process started.
    pub failed_total: u64,
    /// Deliveries parked since this process started.
    pub parked_total: u64,
}

/// Handle to the webhook queue in the store. Cheap to clone; clones (and every handle on the
/// same store) share the wake-up signal and the counters.
#[derive(Clone)]
pub struct WebhookQueue {
    store: Store,
}

/// The rows to queue for a page's webhook events.
pub(crate) fn deliveries(events: &[WebhookEvent]) -> Vec<NewDelivery> {
    events.iter().map(delivery).collect()
}

/// The row to queue for one webhook event.
pub(crate) fn delivery(event: &WebhookEvent) -> NewDelivery {
    NewDelivery {
        event_id: event.id.clone(),
        event_type: event.event_type.to_owned(),
        body: event.body(),
    }
}

impl WebhookQueue {
    /// The queue in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store the queue lives in (the feed commits its pages there).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// True when [`Self::due`] claims the rows it returns (a shared store), so they are not
    /// returned again while in flight.
    pub(crate) fn claims(&self) -> bool {
        self.store.claims()
    }

    /// Resolves when deliveries were queued or replayed (a permit is kept if nobody was waiting).
    pub(crate) async fn woken(&self) {
        self.store.webhooks_woken().await;
    }

    /// Enqueues events for `endpoints` in a transaction of its own (the feed queues its pages'
    /// events inside its page transaction instead). Returns how many rows were new.
    pub async fn enqueue(
        &self,
        endpoints: &[String],
        events: &[WebhookEvent],
    ) -> Result<usize, StoreError> {
        self.store
            .enqueue_webhooks(endpoints, &deliveries(events))
            .await
    }

    /// Up to `limit` pending deliveries due at `now`, oldest due first.
    pub(crate) async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.store.due_webhooks(now, limit).await
    }

    /// When the earliest pending delivery not yet due at `now` falls due.
    pub(crate) async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store.next_webhook_due_after(now).await
    }

    /// Records a successful delivery.
    pub(crate) async fn mark_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        self.store.webhook_delivered(id, status).await
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or parked when `park` is set.
    pub(crate) async fn mark_failed(
        &self,
        id: i64,
        kind: &'static str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError> {
        self.store
            .webhook_failed(id, kind, status, next_attempt_at, park)
            .await
    }

    /// Up to `limit` parked deliveries, oldest first.
    pub async fn parked(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError> {
        self.store.parked_webhooks(limit).await
    }

    /// Puts parked deliveries back in line, due now with a fresh attempt count: the ones in
    /// `ids`, or all of them when `ids` is empty. Returns how many. A running gateway picks them
    /// up at its next poll.
    pub async fn replay(&self, ids: &[i64]) -> Result<usize, StoreError> {
        self.store.replay_webhooks(ids).await
    }

    /// Removes delivered rows older than `older_than`; returns how many.
    pub(crate) async fn prune_delivered(&self, older_than: Duration) -> Result<usize, StoreError> {
        self.store.prune_webhooks(older_than).await
    }

    /// Queue figures from the store plus this process's counters.
    pub async fn stats(&self) -> Result<WebhookStats, StoreError> {
        let counts = self.store.webhook_counts().await?;
        let totals = self.store.webhook_totals();
        Ok(WebhookStats {
            pending: counts.pending,
            parked: counts.parked,
            delivered: counts.delivered,
            oldest_pending_age: counts.oldest_pending_age,
            delivered_total: totals.delivered,
            failed_total: totals.failed,
            parked_total: totals.parked,
        })
    }
}
