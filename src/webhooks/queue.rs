//! The durable webhook queue: one row per (event, endpoint) in the embedded store, enqueued in
//! the same transaction that advances the feed position, delivered at least once, parked after
//! the configured number of failures, listed and replayed from the CLI.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Transaction};
use serde::Serialize;
use tokio::sync::Notify;

use super::payload::WebhookEvent;
use crate::openings::{Outbox, StoreError};

/// Delivered rows are kept this long (for support questions), then pruned.
pub const DELIVERED_RETENTION: Duration = Duration::from_secs(7 * 86_400);

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

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    parked: AtomicU64,
}

/// Handle to the webhook queue in the embedded store. Cheap to clone; clones share the wake-up
/// signal and the counters.
#[derive(Clone)]
pub struct WebhookQueue {
    store: Outbox,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
}

/// Inserts one row per (event, endpoint) inside the caller's transaction; a row that exists
/// already (the same page read again after a crash) is left alone. Returns how many were new.
pub(crate) fn enqueue_in(
    tx: &Transaction<'_>,
    endpoints: &[String],
    events: &[WebhookEvent],
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let now = now.timestamp_millis();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO webhook_deliveries
            (event_id, endpoint, event_type, body, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)
         ON CONFLICT (event_id, endpoint) DO NOTHING",
    )?;
    let mut added = 0;
    for event in events {
        let body = event.body();
        for endpoint in endpoints {
            added += stmt.execute(params![event.id, endpoint, event.event_type, body, now])?;
        }
    }
    Ok(added)
}

impl WebhookQueue {
    /// The queue in `store`'s database.
    pub fn new(store: Outbox) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
            counters: Arc::default(),
        }
    }

    /// The store the queue lives in (the feed enqueues through its transactions).
    pub(crate) fn store(&self) -> &Outbox {
        &self.store
    }

    /// True when [`Self::due`] claims the rows it returns (the shared PostgreSQL store), so they
    /// are not returned again while in flight.
    pub(crate) fn claims(&self) -> bool {
        self.store.postgres().is_some()
    }

    /// Tells the dispatcher that new deliveries are waiting.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Self::wake`] was called (a permit is kept if nobody was waiting).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Enqueues events for `endpoints` in a transaction of its own (the feed uses
    /// [`enqueue_in`] inside its page transaction instead). Returns how many rows were new.
    pub async fn enqueue(
        &self,
        endpoints: &[String],
        events: &[WebhookEvent],
    ) -> Result<usize, StoreError> {
        if let Some(pg) = self.store.postgres() {
            let added = pg.enqueue_webhooks(endpoints, events).await?;
            if added > 0 {
                self.wake();
            }
            return Ok(added);
        }
        let (endpoints, events) = (endpoints.to_vec(), events.to_vec());
        let added = self
            .store
            .run(move |conn| {
                let tx = conn.transaction()?;
                let added = enqueue_in(&tx, &endpoints, &events, Utc::now())?;
                tx.commit()?;
                Ok(added)
            })
            .await?;
        if added > 0 {
            self.wake();
        }
        Ok(added)
    }

    /// Up to `limit` pending deliveries due at `now`, oldest due first.
    pub(crate) async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        if let Some(pg) = self.store.postgres() {
            return pg.due_webhooks(now, limit).await;
        }
        let now = now.timestamp_millis();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.store
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, event_id, event_type, endpoint, body, attempts
                     FROM webhook_deliveries
                     WHERE state = 'pending' AND next_attempt_at <= ?1
                     ORDER BY next_attempt_at, id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now, limit], |r| {
                    Ok(PendingDelivery {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        event_type: r.get(2)?,
                        endpoint: r.get(3)?,
                        body: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    /// When the earliest pending delivery not yet due at `now` falls due.
    pub(crate) async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if let Some(pg) = self.store.postgres() {
            return pg.next_webhook_due_after(now).await;
        }
        let now = now.timestamp_millis();
        self.store
            .run(move |conn| {
                let at: Option<i64> = conn.query_row(
                    "SELECT MIN(next_attempt_at) FROM webhook_deliveries
                     WHERE state = 'pending' AND next_attempt_at > ?1",
                    params![now],
                    |r| r.get(0),
                )?;
                Ok(at.and_then(DateTime::<Utc>::from_timestamp_millis))
            })
            .await
    }

    /// Records a successful delivery.
    pub(crate) async fn mark_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(pg) = self.store.postgres() {
            return pg.webhook_delivered(id, status).await;
        }
        self.store
            .run(move |conn| {
                conn.execute(
                    "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                            delivered_at = ?2, last_status = ?3, last_error_kind = NULL
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, Utc::now().timestamp_millis(), status],
                )?;
                Ok(())
            })
            .await
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
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        if park {
            self.counters.parked.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(pg) = self.store.postgres() {
            return pg
                .webhook_failed(id, kind, status, next_attempt_at, park)
                .await;
        }
        let next = next_attempt_at.timestamp_millis();
        self.store
            .run(move |conn| {
                conn.execute(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error_kind = ?2,
                            last_status = ?3, next_attempt_at = ?4,
                            state = CASE WHEN ?5 THEN 'parked' ELSE 'pending' END
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, kind, status, next, park],
                )?;
                Ok(())
            })
            .await
    }

    /// Up to `limit` parked deliveries, oldest first.
    pub async fn parked(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError> {
        if let Some(pg) = self.store.postgres() {
            return pg.parked_webhooks(limit).await;
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.store
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, event_id, event_type, endpoint, attempts, created_at,
                            last_error_kind, last_status
                     FROM webhook_deliveries WHERE state = 'parked' ORDER BY id LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], |r| {
                    let created: i64 = r.get(5)?;
                    Ok(ParkedDelivery {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        event_type: r.get(2)?,
                        endpoint: r.get(3)?,
                        attempts: r.get(4)?,
                        created_at: DateTime::<Utc>::from_timestamp_millis(created)
                            .unwrap_or_default()
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        last_error: r.get(6)?,
                        last_status: r.get(7)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    /// Puts parked deliveries back in line, due now with a fresh attempt count: the ones in
    /// `ids`, or all of them when `ids` is empty. Returns how many. A running gateway picks them
    /// up at its next poll.
    pub async fn replay(&self, ids: &[i64]) -> Result<usize, StoreError> {
        if let Some(pg) = self.store.postgres() {
            let count = pg.replay_webhooks(ids).await?;
            if count > 0 {
                self.wake();
            }
            return Ok(count);
        }
        let ids = ids.to_vec();
        let count = self
            .store
            .run(move |conn| {
                let now = Utc::now().timestamp_millis();
                let tx = conn.transaction()?;
                let mut count = 0;
                if ids.is_empty() {
                    count = tx.execute(
                        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                                next_attempt_at = ?1 WHERE state = 'parked'",
                        params![now],
                    )?;
                } else {
                    for id in ids {
                        count += tx.execute(
                            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                                    next_attempt_at = ?1 WHERE state = 'parked' AND id = ?2",
                            params![now, id],
                        )?;
                    }
                }
                tx.commit()?;
                Ok(count)
            })
            .await?;
        if count > 0 {
            self.wake();
        }
        Ok(count)
    }

    /// Removes delivered rows older than `older_than`; returns how many.
    pub(crate) async fn prune_delivered(&self, older_than: Duration) -> Result<usize, StoreError> {
        let cutoff = millis_before(Utc::now(), older_than);
        if let Some(pg) = self.store.postgres() {
            return pg.prune_webhooks(cutoff).await;
        }
        self.store
            .run(move |conn| {
                Ok(conn.execute(
                    "DELETE FROM webhook_deliveries WHERE state = 'delivered' AND delivered_at <= ?1",
                    params![cutoff],
                )?)
            })
            .await
    }

    /// Queue figures from the store plus this process's counters.
    pub async fn stats(&self) -> Result<WebhookStats, StoreError> {
        let counts = match self.store.postgres() {
            Some(pg) => Some(pg.webhook_counts().await?),
            None => None,
        };
        let (pending, parked, delivered, oldest) = if let Some(counts) = counts {
            counts
        } else {
            self.store
                .run(|conn| {
                    Ok(conn.query_row(
                        "SELECT COALESCE(SUM(state = 'pending'), 0),
                            COALESCE(SUM(state = 'parked'), 0),
                            COALESCE(SUM(state = 'delivered'), 0),
                            MIN(CASE WHEN state = 'pending' THEN created_at END)
                     FROM webhook_deliveries",
                        [],
                        |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, Option<i64>>(3)?,
                            ))
                        },
                    )?)
                })
                .await?
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let now = Utc::now().timestamp_millis();
        Ok(WebhookStats {
            pending: count(pending),
            parked: count(parked),
            delivered: count(delivered),
            oldest_pending_age: oldest
                .map(|at| Duration::from_millis(count(now.saturating_sub(at)))),
            delivered_total: self.counters.delivered.load(Ordering::Relaxed),
            failed_total: self.counters.failed.load(Ordering::Relaxed),
            parked_total: self.counters.parked.load(Ordering::Relaxed),
        })
    }
}

/// `now - delay` in unix milliseconds, saturating.
pub(crate) fn millis_before(now: DateTime<Utc>, delay: Duration) -> i64 {
    now.timestamp_millis()
        .saturating_sub(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}
