//! The reminder schedule on PostgreSQL: rows changed in the feed page's transaction, and due rows
//! taken with `FOR UPDATE SKIP LOCKED` in the transaction that queues their webhooks and advances
//! them. Two replicas firing at once take disjoint rows; a replica killed mid-way rolls back and
//! leaves its rows due; a reminder's webhook has a stable event id, so even a repeated one is
//! queued once per endpoint.

use chrono::{DateTime, Utc};

use super::webhooks::enqueue_in;
use super::{pg_error, PgStore};
use crate::store::error::StoreError;
use crate::store::types::{
    count, from_millis, now_millis, FiredReminder, ReminderChange, ReminderDelivery,
};

/// Applies a page's reminder changes, in order, inside its transaction.
pub(super) async fn apply_in(
    tx: &deadpool_postgres::Transaction<'_>,
    changes: &[ReminderChange],
) -> Result<(), StoreError> {
    for change in changes {
        match change {
            ReminderChange::Schedule(r) => {
                let interval = i64::try_from(r.interval.as_millis()).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO reminders
                        (consent_id, message_id, due_at, interval_ms, sent, needs_receipt)
                     VALUES ($1, $2, $3, $4, 0, $5)
                     ON CONFLICT (consent_id, message_id) DO NOTHING",
                    &[
                        &r.consent_id,
                        &r.message_id,
                        &r.first_due_at.timestamp_millis(),
                        &interval,
                        &r.needs_receipt,
                    ],
                )
                .await
                .map_err(pg_error)?;
            }
            ReminderChange::CancelMessage(message_id) => {
                tx.execute("DELETE FROM reminders WHERE message_id = $1", &[message_id])
                    .await
                    .map_err(pg_error)?;
            }
            ReminderChange::CancelConsent(consent_id) => {
                tx.execute("DELETE FROM reminders WHERE consent_id = $1", &[consent_id])
                    .await
                    .map_err(pg_error)?;
            }
        }
    }
    Ok(())
}

impl PgStore {
    /// See [`crate::store::Store::fire_reminders`].
    pub(crate) async fn fire_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        max_count: u32,
        endpoints: &[String],
        build: ReminderDelivery,
    ) -> Result<Vec<FiredReminder>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                "SELECT consent_id, message_id, due_at, sent, needs_receipt FROM reminders
                 WHERE due_at <= $1 ORDER BY due_at, message_id LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&now.timestamp_millis(), &limit],
            )
            .await
            .map_err(pg_error)?;
        let queued_at = now_millis();
        let mut fired = Vec::with_capacity(rows.len());
        for row in rows {
            let consent_id: String = row.get(0);
            let message_id: i64 = row.get(1);
            let sent = u32::try_from(row.get::<_, i32>(3)).unwrap_or(0);
            if sent >= max_count {
                tx.execute(
                    "DELETE FROM reminders WHERE consent_id = $1 AND message_id = $2",
                    &[&consent_id, &message_id],
                )
                .await
                .map_err(pg_error)?;
                continue;
            }
            let reminder = FiredReminder {
                consent_id,
                message_id,
                due_at: from_millis(row.get(2)),
                number: sent + 1,
                needs_receipt: row.get(4),
            };
            enqueue_in(&tx, endpoints, &[build(&reminder)], queued_at).await?;
            if reminder.number >= max_count {
                tx.execute(
                    "DELETE FROM reminders WHERE consent_id = $1 AND message_id = $2",
                    &[&reminder.consent_id, &reminder.message_id],
                )
                .await
                .map_err(pg_error)?;
            } else {
                let number = i32::try_from(reminder.number).unwrap_or(i32::MAX);
                tx.execute(
                    "UPDATE reminders SET sent = $3, due_at = due_at + interval_ms
                     WHERE consent_id = $1 AND message_id = $2",
                    &[&reminder.consent_id, &reminder.message_id, &number],
                )
                .await
                .map_err(pg_error)?;
            }
            fired.push(reminder);
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(fired)
    }

    /// See [`crate::store::Store::scheduled_reminders`].
    pub(crate) async fn scheduled_reminders(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client()
            .await?
            .query_one("SELECT COUNT(*) FROM reminders", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(count(n))
    }
}
