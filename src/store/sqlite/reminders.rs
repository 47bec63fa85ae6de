//! The reminder schedule on SQLite: rows changed in the feed page's transaction, and due rows
//! turned into webhook deliveries in the same transaction that advances them, so a crash at any
//! point either sends a reminder's webhook once (it is in the queue, keyed by its event id) or not
//! yet (the row is still due).

use chrono::{DateTime, Utc};
use rusqlite::{params, Transaction, TransactionBehavior};

use super::webhooks::enqueue_in;
use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::{
    count, from_millis, now_millis, FiredReminder, ReminderChange, ReminderDelivery,
};

/// Applies a page's reminder changes, in order, inside its transaction.
pub(super) fn apply_in(tx: &Transaction<'_>, changes: &[ReminderChange]) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            ReminderChange::Schedule(r) => {
                let interval = i64::try_from(r.interval.as_millis()).unwrap_or(i64::MAX);
                tx.prepare_cached(
                    "INSERT INTO reminders
                        (consent_id, message_id, due_at, interval_ms, sent, needs_receipt)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (consent_id, message_id) DO NOTHING",
                )?
                .execute(params![
                    r.consent_id,
                    r.message_id,
                    r.first_due_at.timestamp_millis(),
                    interval,
                    r.needs_receipt
                ])?;
            }
            ReminderChange::CancelMessage(message_id) => {
                tx.prepare_cached("DELETE FROM reminders WHERE message_id = ?1")?
                    .execute(params![message_id])?;
            }
            ReminderChange::CancelConsent(consent_id) => {
                tx.prepare_cached("DELETE FROM reminders WHERE consent_id = ?1")?
                    .execute(params![consent_id])?;
            }
        }
    }
    Ok(())
}

pub(super) async fn fire(
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: usize,
    max_count: u32,
    endpoints: &[String],
    build: ReminderDelivery,
) -> Result<Vec<FiredReminder>, StoreError> {
    let endpoints = endpoints.to_vec();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
        .run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due: Vec<(String, i64, i64, u32, bool)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT consent_id, message_id, due_at, sent, needs_receipt
                     FROM reminders WHERE due_at <= ?1 ORDER BY due_at, message_id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now.timestamp_millis(), limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let mut fired = Vec::with_capacity(due.len());
            let queued_at = now_millis();
            for (consent_id, message_id, due_at, sent, needs_receipt) in due {
                if sent >= max_count {
                    tx.prepare_cached(
                        "DELETE FROM reminders WHERE consent_id = ?1 AND message_id = ?2",
                    )?
                    .execute(params![consent_id, message_id])?;
                    continue;
                }
                let reminder = FiredReminder {
                    consent_id,
                    message_id,
                    due_at: from_millis(due_at),
                    number: sent + 1,
                    needs_receipt,
                };
                enqueue_in(&tx, &endpoints, &[build(&reminder)], queued_at)?;
                if reminder.number >= max_count {
                    tx.prepare_cached(
                        "DELETE FROM reminders WHERE consent_id = ?1 AND message_id = ?2",
                    )?
                    .execute(params![reminder.consent_id, reminder.message_id])?;
                } else {
                    tx.prepare_cached(
                        "UPDATE reminders SET sent = ?3, due_at = due_at + interval_ms
                         WHERE consent_id = ?1 AND message_id = ?2",
                    )?
                    .execute(params![
                        reminder.consent_id,
                        reminder.message_id,
                        reminder.number
                    ])?;
                }
                fired.push(reminder);
            }
            tx.commit()?;
            Ok(fired)
        })
        .await
}

pub(super) async fn scheduled(store: &SqliteStore) -> Result<u64, StoreError> {
    store
        .run(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM reminders", [], |r| r.get(0))?;
            Ok(count(n))
        })
        .await
}
