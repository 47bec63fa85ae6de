//! The events feed position and the compensation ledger on SQLite. A page's webhooks are queued
//! in the same transaction that advances the position, so a crash before it repeats the page
//! (its deliveries are keyed by event id, so nothing is queued twice) and a crash after it
//! repeats nothing.

use rusqlite::{params, OptionalExtension as _, TransactionBehavior};

use super::reminders;
use super::webhooks::enqueue_in;
use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::{
    count, now_millis, Committed, MonthFigures, NewDelivery, ReminderChange,
};

pub(super) async fn load_position(store: &SqliteStore) -> Result<Option<String>, StoreError> {
    store
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

pub(super) async fn commit_page(
    store: &SqliteStore,
    from: Option<String>,
    next: &str,
    endpoints: &[String],
    deliveries: &[NewDelivery],
    reminders: &[ReminderChange],
    events: i64,
) -> Result<Committed, StoreError> {
    let (next, endpoints, deliveries) = (next.to_owned(), endpoints.to_vec(), deliveries.to_vec());
    let reminders = reminders.to_vec();
    store
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
            let now = now_millis();
            let queued = enqueue_in(&tx, &endpoints, &deliveries, now)?;
            reminders::apply_in(&tx, &reminders)?;
            tx.execute(
                "INSERT INTO feed_position (id, continuation_token, events_seen, updated_at)
                 VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET continuation_token = excluded.continuation_token,
                     events_seen = events_seen + excluded.events_seen,
                     updated_at = excluded.updated_at",
                params![next, events, now],
            )?;
            tx.commit()?;
            Ok(Committed::Advanced { queued })
        })
        .await
}

pub(super) async fn ledger_months(
    store: &SqliteStore,
    start: i64,
    end: i64,
) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError> {
    store
        .run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT strftime('%Y-%m', opened_at / 1000, 'unixepoch') AS month,
                    COUNT(*),
                    COALESCE(SUM(state = 'delivered'), 0),
                    COALESCE(SUM(state = 'pending'), 0),
                    COALESCE(SUM(state = 'parked'), 0),
                    COALESCE(SUM(state = 'delivered' AND first_open = 1), 0)
                 FROM openings WHERE opened_at >= ?1 AND opened_at < ?2
                 GROUP BY month ORDER BY month",
            )?;
            let rows = stmt.query_map(params![start, end], |r| {
                Ok(MonthFigures {
                    month: r.get(0)?,
                    recorded: count(r.get(1)?),
                    delivered: count(r.get(2)?),
                    pending: count(r.get(3)?),
                    parked: count(r.get(4)?),
                    first_opens: count(r.get(5)?),
                })
            })?;
            let months = rows.collect::<Result<Vec<_>, _>>()?;
            let pruned: Option<i64> =
                conn.query_row("SELECT MAX(pruned_before) FROM ledger_retention", [], |r| {
                    r.get(0)
                })?;
            Ok((months, pruned))
        })
        .await
}

pub(super) async fn prune_ledger(store: &SqliteStore, cutoff: i64) -> Result<usize, StoreError> {
    store
        .run(move |conn| {
            let tx = conn.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM openings WHERE state = 'delivered' AND opened_at < ?1",
                params![cutoff],
            )?;
            if deleted > 0 {
                tx.execute(
                    "INSERT INTO ledger_retention (id, pruned_before, pruned_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET pruned_before = excluded.pruned_before,
                         pruned_at = excluded.pruned_at",
                    params![cutoff, now_millis()],
                )?;
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
}
