//! The webhook queue on SQLite: one row per (event, endpoint).

use chrono::{DateTime, Utc};
use rusqlite::{params, Transaction};

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::{
    age, count, from_millis, now_millis, DeliveryCounts, NewDelivery, ParkedDelivery,
    PendingDelivery,
};

/// Inserts one row per (delivery, endpoint) inside `tx`; a row that exists already (the same
/// page read again after a crash) is left alone. Returns how many were new.
pub(super) fn enqueue_in(
    tx: &Transaction<'_>,
    endpoints: &[String],
    deliveries: &[NewDelivery],
    now: i64,
) -> rusqlite::Result<usize> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO webhook_deliveries
            (event_id, endpoint, event_type, body, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)
         ON CONFLICT (event_id, endpoint) DO NOTHING",
    )?;
    let mut added = 0;
    for d in deliveries {
        for endpoint in endpoints {
            added += stmt.execute(params![d.event_id, endpoint, d.event_type, d.body, now])?;
        }
    }
    Ok(added)
}

pub(super) async fn enqueue(
    store: &SqliteStore,
    endpoints: &[String],
    deliveries: &[NewDelivery],
) -> Result<usize, StoreError> {
    let (endpoints, deliveries) = (endpoints.to_vec(), deliveries.to_vec());
    store
        .run(move |conn| {
            let tx = conn.transaction()?;
            let added = enqueue_in(&tx, &endpoints, &deliveries, now_millis())?;
            tx.commit()?;
            Ok(added)
        })
        .await
}

pub(super) async fn due(
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let now = now.timestamp_millis();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
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

pub(super) async fn next_due_after(
    store: &SqliteStore,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let now = now.timestamp_millis();
    store
        .run(move |conn| {
            let at: Option<i64> = conn.query_row(
                "SELECT MIN(next_attempt_at) FROM webhook_deliveries
                 WHERE state = 'pending' AND next_attempt_at > ?1",
                params![now],
                |r| r.get(0),
            )?;
            Ok(at.map(from_millis))
        })
        .await
}

pub(super) async fn delivered(store: &SqliteStore, id: i64, status: u16) -> Result<(), StoreError> {
    store
        .run(move |conn| {
            conn.execute(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                        delivered_at = ?2, last_status = ?3, last_error_kind = NULL
                 WHERE id = ?1 AND state = 'pending'",
                params![id, now_millis(), status],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn failed(
    store: &SqliteStore,
    id: i64,
    kind: &str,
    status: Option<u16>,
    next_attempt_at: DateTime<Utc>,
    park: bool,
) -> Result<(), StoreError> {
    let kind = kind.to_owned();
    let next = next_attempt_at.timestamp_millis();
    store
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

pub(super) async fn parked(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<ParkedDelivery>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
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

pub(super) async fn replay(store: &SqliteStore, ids: &[i64]) -> Result<usize, StoreError> {
    let ids = ids.to_vec();
    store
        .run(move |conn| {
            let now = now_millis();
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
        .await
}

pub(super) async fn prune(store: &SqliteStore, cutoff: i64) -> Result<usize, StoreError> {
    store
        .run(move |conn| {
            Ok(conn.execute(
                "DELETE FROM webhook_deliveries WHERE state = 'delivered' AND delivered_at <= ?1",
                params![cutoff],
            )?)
        })
        .await
}

pub(super) async fn counts(store: &SqliteStore) -> Result<DeliveryCounts, StoreError> {
    store
        .run(|conn| {
            let (pending, parked, delivered, oldest) = conn.query_row(
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
            )?;
            Ok(DeliveryCounts {
                pending: count(pending),
                parked: count(parked),
                delivered: count(delivered),
                oldest_pending_age: age(oldest),
            })
        })
        .await
}
