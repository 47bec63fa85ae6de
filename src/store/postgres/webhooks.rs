//! The webhook queue on PostgreSQL: the same rows and states as the SQLite queue. Due rows are
//! claimed like openings, so a dispatcher that lost its ownership mid-attempt and the new owner
//! never send the same row at the same time; a row may still be sent twice (at least once), always
//! with its one event id.

use chrono::{DateTime, Utc};

use super::{pg_error, PgStore};
use crate::store::error::StoreError;
use crate::store::types::{
    age, count, from_millis, millis_after, now_millis, DeliveryCounts, NewDelivery, ParkedDelivery,
    PendingDelivery,
};

/// Inserts one row per (event, endpoint) inside `tx`, leaving existing ones alone; returns how
/// many were new.
pub(crate) async fn enqueue_in(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoints: &[String],
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<usize, StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO webhook_deliveries
                (event_id, endpoint, event_type, body, state, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $5)
             ON CONFLICT (event_id, endpoint) DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    let mut added = 0;
    for d in deliveries {
        for endpoint in endpoints {
            let n = tx
                .execute(
                    &stmt,
                    &[&d.event_id, endpoint, &d.event_type, &d.body, &now],
                )
                .await
                .map_err(pg_error)?;
            added += usize::try_from(n).unwrap_or(0);
        }
    }
    Ok(added)
}

impl PgStore {
    /// See [`crate::store::Store`].
    pub(crate) async fn enqueue_webhooks(
        &self,
        endpoints: &[String],
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let added = enqueue_in(&tx, endpoints, deliveries, now_millis()).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(added)
    }

    /// Claims up to `limit` due deliveries, oldest due first.
    pub(crate) async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let now = now.timestamp_millis();
        let until = millis_after(now, self.claim());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "UPDATE webhook_deliveries SET next_attempt_at = $2
                 WHERE id IN (
                     SELECT id FROM webhook_deliveries
                     WHERE state = 'pending' AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, id LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, event_id, event_type, endpoint, body, attempts",
                &[&now, &until, &limit],
            )
            .await
            .map_err(pg_error)?;
        let mut due: Vec<PendingDelivery> = rows
            .iter()
            .map(|r| PendingDelivery {
                id: r.get(0),
                event_id: r.get(1),
                event_type: r.get(2),
                endpoint: r.get(3),
                body: r.get(4),
                attempts: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
            })
            .collect();
        due.sort_by_key(|d| d.id);
        Ok(due)
    }

    /// See `WebhookQueue::next_due_after`.
    pub(crate) async fn next_webhook_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = self
            .client()
            .await?
            .query_one(
                "SELECT MIN(next_attempt_at) FROM webhook_deliveries
                 WHERE state = 'pending' AND next_attempt_at > $1",
                &[&now.timestamp_millis()],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(at.map(from_millis))
    }

    /// See `WebhookQueue::mark_delivered`.
    pub(crate) async fn webhook_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                        delivered_at = $2, last_status = $3, last_error_kind = NULL
                 WHERE id = $1 AND state = 'pending'",
                &[&id, &now_millis(), &i32::from(status)],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// See `WebhookQueue::mark_failed`.
    pub(crate) async fn webhook_failed(
        &self,
        id: i64,
        kind: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError> {
        let state = if park { "parked" } else { "pending" };
        self.client()
            .await?
            .execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error_kind = $2,
                        last_status = $3, next_attempt_at = $4, state = $5
                 WHERE id = $1 AND state = 'pending'",
                &[
                    &id,
                    &kind,
                    &status.map(i32::from),
                    &next_attempt_at.timestamp_millis(),
                    &state,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// See [`crate::store::Store`].
    pub(crate) async fn parked_webhooks(
        &self,
        limit: usize,
    ) -> Result<Vec<ParkedDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, event_id, event_type, endpoint, attempts, created_at,
                        last_error_kind, last_status
                 FROM webhook_deliveries WHERE state = 'parked' ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| ParkedDelivery {
                id: r.get(0),
                event_id: r.get(1),
                event_type: r.get(2),
                endpoint: r.get(3),
                attempts: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
                created_at: from_millis(r.get(5))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                last_error: r.get(6),
                last_status: r
                    .get::<_, Option<i32>>(7)
                    .and_then(|s| u16::try_from(s).ok()),
            })
            .collect())
    }

    /// See [`crate::store::Store`].
    pub(crate) async fn replay_webhooks(&self, ids: &[i64]) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let now = now_millis();
        let n = if ids.is_empty() {
            client
                .execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                            next_attempt_at = $1 WHERE state = 'parked'",
                    &[&now],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                            next_attempt_at = $1 WHERE state = 'parked' AND id = ANY($2)",
                    &[&now, &ids],
                )
                .await
        }
        .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// See `WebhookQueue::prune_delivered`: `cutoff` in unix milliseconds.
    pub(crate) async fn prune_webhooks(&self, cutoff: i64) -> Result<usize, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM webhook_deliveries WHERE state = 'delivered' AND delivered_at <= $1",
                &[&cutoff],
            )
            .await
            .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Pending, parked and delivered rows, and the oldest pending row's creation time.
    pub(crate) async fn webhook_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'),
                        COUNT(*) FILTER (WHERE state = 'parked'),
                        COUNT(*) FILTER (WHERE state = 'delivered'),
                        MIN(created_at) FILTER (WHERE state = 'pending')
                 FROM webhook_deliveries",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(DeliveryCounts {
            pending: count(row.get(0)),
            parked: count(row.get(1)),
            delivered: count(row.get(2)),
            oldest_pending_age: age(row.get(3)),
        })
    }
}
