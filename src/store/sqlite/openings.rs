//! The openings outbox on SQLite: recorded through the group committer (durable before the body
//! leaves), read on the blocking pool.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension as _};

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::{
    age, count, from_millis, now_millis, rfc3339, DvvVerdict, LedgerOpening, OpeningState,
    OutboxStats, ParkedOpening, PendingOpening, RecordedOpening,
};

pub(super) async fn record(
    store: &SqliteStore,
    consent_id: &str,
    message_id: i64,
) -> Result<RecordedOpening, StoreError> {
    let consent_id = consent_id.to_owned();
    store
        .write(move |tx| {
            let existing = tx
                .prepare_cached(
                    "SELECT opening_id, opened_at FROM openings
                     WHERE consent_id = ?1 AND message_id = ?2",
                )?
                .query_row(params![consent_id, message_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?;
            if let Some((opening_id, opened_at)) = existing {
                return Ok(RecordedOpening {
                    opening_id,
                    opened_at: from_millis(opened_at),
                    newly_recorded: false,
                });
            }
            let opening_id = uuid::Uuid::new_v4().to_string();
            let opened_at = now_millis();
            tx.prepare_cached(
                "INSERT INTO openings
                   (opening_id, consent_id, message_id, opened_at, state, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?4)",
            )?
            .execute(params![opening_id, consent_id, message_id, opened_at])?;
            Ok(RecordedOpening {
                opening_id,
                opened_at: from_millis(opened_at),
                newly_recorded: true,
            })
        })
        .await
}

pub(super) async fn due(
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<PendingOpening>, StoreError> {
    let now = now.timestamp_millis();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
        .run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT opening_id, consent_id, message_id, opened_at, attempts FROM openings
                 WHERE state = 'pending' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, opened_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit], |r| {
                Ok(PendingOpening {
                    opening_id: r.get(0)?,
                    consent_id: r.get(1)?,
                    message_id: r.get(2)?,
                    opened_at: from_millis(r.get(3)?),
                    attempts: r.get(4)?,
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
                "SELECT MIN(next_attempt_at) FROM openings
                 WHERE state = 'pending' AND next_attempt_at > ?1",
                params![now],
                |r| r.get(0),
            )?;
            Ok(at.map(from_millis))
        })
        .await
}

pub(super) async fn delivered(
    store: &SqliteStore,
    opening_id: &str,
    verdict: &DvvVerdict,
) -> Result<(), StoreError> {
    let opening_id = opening_id.to_owned();
    let first_open = verdict.first_open;
    let read_at = verdict.read_at.timestamp_millis();
    let settles_at = verdict.settles_at.map(|t| t.timestamp_millis());
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE openings SET state = 'delivered', first_open = ?2, dvv_read_at = ?3,
                        delivered_at = ?4, attempts = attempts + 1, last_error_kind = NULL,
                        verdict_settles_at = ?5
                 WHERE opening_id = ?1 AND state <> 'delivered'",
                params![opening_id, first_open, read_at, now_millis(), settles_at],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn failed(
    store: &SqliteStore,
    opening_id: &str,
    error_kind: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (opening_id, kind) = (opening_id.to_owned(), error_kind.to_owned());
    let next = next_attempt_at.timestamp_millis();
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE openings SET attempts = attempts + 1, last_error_kind = ?2,
                        next_attempt_at = ?3
                 WHERE opening_id = ?1 AND state = 'pending'",
                params![opening_id, kind, next],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn park(
    store: &SqliteStore,
    opening_id: &str,
    error_kind: &str,
) -> Result<(), StoreError> {
    let (opening_id, kind) = (opening_id.to_owned(), error_kind.to_owned());
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE openings SET state = 'parked', attempts = attempts + 1,
                        last_error_kind = ?2
                 WHERE opening_id = ?1 AND state = 'pending'",
                params![opening_id, kind],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn replay(store: &SqliteStore, ids: &[String]) -> Result<usize, StoreError> {
    let ids = ids.to_vec();
    store
        .write(move |conn| {
            let now = now_millis();
            if ids.is_empty() {
                return Ok(conn.execute(
                    "UPDATE openings SET state = 'pending', next_attempt_at = ?1
                     WHERE state = 'parked'",
                    params![now],
                )?);
            }
            let mut stmt = conn.prepare_cached(
                "UPDATE openings SET state = 'pending', next_attempt_at = ?1
                 WHERE state = 'parked' AND opening_id = ?2",
            )?;
            let mut n = 0;
            for id in &ids {
                n += stmt.execute(params![now, id])?;
            }
            Ok(n)
        })
        .await
}

pub(super) async fn parked(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<ParkedOpening>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
        .run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT opening_id, message_id, opened_at, attempts, last_error_kind
                 FROM openings WHERE state = 'parked' ORDER BY opened_at, opening_id LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok(ParkedOpening {
                    opening_id: r.get(0)?,
                    message_id: r.get(1)?,
                    opened_at: rfc3339(r.get(2)?),
                    attempts: r.get(3)?,
                    reason: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

pub(super) async fn ledger_openings(
    store: &SqliteStore,
    start: i64,
    end: i64,
) -> Result<Vec<LedgerOpening>, StoreError> {
    store
        .run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT opening_id, message_id, opened_at, state, first_open,
                        verdict_settles_at, last_error_kind
                 FROM openings WHERE opened_at >= ?1 AND opened_at < ?2
                 ORDER BY opened_at, opening_id",
            )?;
            let rows = stmt.query_map(params![start, end], |r| {
                Ok(LedgerOpening {
                    opening_id: r.get(0)?,
                    message_id: r.get(1)?,
                    opened_at: from_millis(r.get(2)?),
                    state: OpeningState::parse(&r.get::<_, String>(3)?),
                    first_open: r.get(4)?,
                    settles_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
                    last_error: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

pub(super) async fn adopt_settled(
    store: &SqliteStore,
    verdicts: &[(String, bool, DateTime<Utc>)],
) -> Result<usize, StoreError> {
    let verdicts = verdicts.to_vec();
    store
        .write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE openings SET first_open = ?2, dvv_read_at = ?3, verdict_settles_at = NULL
                 WHERE opening_id = ?1 AND state = 'delivered'
                   AND verdict_settles_at IS NOT NULL",
            )?;
            let mut n = 0;
            for (id, first_open, read_at) in &verdicts {
                n += stmt.execute(params![id, first_open, read_at.timestamp_millis()])?;
            }
            Ok(n)
        })
        .await
}

pub(super) async fn stats(store: &SqliteStore) -> Result<OutboxStats, StoreError> {
    store
        .run(|conn| {
            let (pending, parked, delivered, first_opens, oldest): (
                i64,
                i64,
                i64,
                i64,
                Option<i64>,
            ) = conn.query_row(
                "SELECT
                    COALESCE(SUM(state = 'pending'), 0),
                    COALESCE(SUM(state = 'parked'), 0),
                    COALESCE(SUM(state = 'delivered'), 0),
                    COALESCE(SUM(state = 'delivered' AND first_open = 1), 0),
                    MIN(CASE WHEN state = 'pending' THEN opened_at END)
                 FROM openings",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            Ok(OutboxStats {
                pending: count(pending),
                parked: count(parked),
                delivered: count(delivered),
                first_opens: count(first_opens),
                oldest_pending_age: age(oldest),
            })
        })
        .await
}

pub(super) async fn check_writable(store: &SqliteStore) -> Result<(), StoreError> {
    store
        .write(|conn| {
            conn.execute(
                "INSERT INTO store_health (id, checked_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                params![now_millis()],
            )?;
            Ok(())
        })
        .await
}
