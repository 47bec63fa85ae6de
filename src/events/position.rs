//! The feed position in the store, advanced only together with the page's webhooks and reminder
//! changes: one transaction enqueues them, changes the schedule and moves the continuation token, so a crash before it repeats the
//! page (its deliveries are keyed by event id, so nothing is queued twice) and a crash after it
//! repeats nothing. With a shared store the commit is a compare-and-set, so a replica that lost
//! the singleton work without knowing it yet cannot queue a page twice.

pub use crate::store::Committed;
use crate::store::{ReminderChange, StoreError};
use crate::webhooks::{deliveries, WebhookEvent, WebhookQueue};

/// Reads and advances the stored continuation token.
#[derive(Clone)]
pub struct FeedPosition {
    queue: WebhookQueue,
}

impl FeedPosition {
    /// The position stored beside `queue` (same store).
    pub fn new(queue: WebhookQueue) -> Self {
        Self { queue }
    }

    /// The stored continuation token; `None` before the first page was ever committed.
    pub async fn load(&self) -> Result<Option<String>, StoreError> {
        self.queue.store().load_position().await
    }

    /// In one transaction: checks the stored token is still `from`, queues `webhooks` for every
    /// endpoint, applies the page's `reminders` changes, and stores `next`. `events` is the page's
    /// size (for the running count).
    pub async fn commit_page(
        &self,
        from: Option<String>,
        next: String,
        endpoints: &[String],
        webhooks: Vec<WebhookEvent>,
        reminders: &[ReminderChange],
        events: usize,
    ) -> Result<Committed, StoreError> {
        let events = i64::try_from(events).unwrap_or(i64::MAX);
        self.queue
            .store()
            .commit_page(
                from,
                &next,
                endpoints,
                &deliveries(&webhooks),
                reminders,
                events,
            )
            .await
    }

    /// Tells the other replicas about consent changes in a page (`(revoked, consent id)` pairs)
    /// so their caches drop them at once. Only a shared store has other replicas; with the
    /// embedded one this does nothing.
    pub async fn publish_consent_changes(
        &self,
        changes: &[(bool, String)],
    ) -> Result<(), StoreError> {
        self.queue.store().publish_consent_changes(changes).await
    }
}
