//! The feed position in the embedded store, advanced only together with the page's webhooks:
//! one transaction enqueues them and moves the continuation token, so a crash before it repeats
//! the page (its deliveries are keyed by event id, so nothing is queued twice) and a crash after
//! it repeats nothing.

use chrono::Utc;
use rusqlite::{params, OptionalExtension as _, TransactionBehavior};

use crate::openings::StoreError;
use crate::webhooks::{enqueue_in, WebhookEvent, WebhookQueue};

/// The result of committing a page.
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

/// Reads and advances the stored continuation token.
#[derive(Clone)]
pub struct FeedPosition {
    queue: WebhookQueue,
}

impl FeedPosition {
    /// The position stored beside `queue` (same database).
    pub fn new(queue: WebhookQueue) -> Self {
        Self { queue }
    }

    /// The stored continuation token; `None` before the first page was ever committed.
    pub async fn load(&self) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.queue.store().postgres() {
            return pg.load_position().await;
        }
        self.queue
            .store()
            .run(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT continuation_token FROM feed_position WHERE id = 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await
    }

    /// In one transaction: checks the stored token is still `from`, queues `webhooks` for every
    /// endpoint, and stores `next`. `events` is the page's size (for the running count).
    pub async fn commit_page(
        &self,
        from: Option<String>,
        next: String,
        endpoints: &[String],
        webhooks: Vec<WebhookEvent>,
        events: usize,
    ) -> Result<Committed, StoreError> {
        let events = i64::try_from(events).unwrap_or(i64::MAX);
        if let Some(pg) = self.queue.store().postgres() {
            let committed = pg
                .commit_page(from, &next, endpoints, &webhooks, events)
                .await?;
            if matches!(committed, Committed::Advanced { queued } if queued > 0) {
                self.queue.wake();
            }
            return Ok(committed);
        }
        let endpoints = endpoints.to_vec();
        let committed = self
            .queue
            .store()
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT continuation_token FROM feed_position WHERE id = 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                if stored != from {
                    return Ok(Committed::Stale);
                }
                let now = Utc::now();
                let queued = enqueue_in(&tx, &endpoints, &webhooks, now)?;
                tx.execute(
                    "INSERT INTO feed_position (id, continuation_token, events_seen, updated_at)
                     VALUES (1, ?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET continuation_token = excluded.continuation_token,
                         events_seen = events_seen + excluded.events_seen,
                         updated_at = excluded.updated_at",
                    params![next, events, now.timestamp_millis()],
                )?;
                tx.commit()?;
                Ok(Committed::Advanced { queued })
            })
            .await?;
        if matches!(committed, Committed::Advanced { queued } if queued > 0) {
            self.queue.wake();
        }
        Ok(committed)
    }

    /// Tells the other replicas about consent changes in a page (`(revoked, consent id)` pairs)
    /// so their caches drop them at once. Only a shared PostgreSQL store has other replicas; with
    /// SQLite this does nothing.
    pub async fn publish_consent_changes(
        &self,
        changes: &[(bool, String)],
    ) -> Result<(), StoreError> {
        match self.queue.store().postgres() {
            Some(pg) => pg.publish_consent_changes(changes).await,
            None => Ok(()),
        }
    }
}
