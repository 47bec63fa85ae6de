//! The openings outbox on PostgreSQL: the same operations as the SQLite outbox, safe with several
//! replicas. The unique (consent, message) key with `ON CONFLICT DO NOTHING` makes two replicas
//! reading one message record one opening; due openings are *claimed* (`FOR UPDATE SKIP LOCKED`,
//! next attempt moved one claim period ahead), so each replica delivers different ones and a
//! replica killed mid-delivery leaves its rows due again after the claim.

use chrono::{DateTime, Utc};

use super::{pg_error, PgStore};
use crate::store::error::StoreError;
use crate::store::types::{
    age, count, from_millis, millis_after, now_millis, rfc3339, DvvVerdict, LedgerOpening,
    OpeningState, OutboxStats, ParkedOpening, PendingOpening, RecordedOpening,
};

impl PgStore {
    /// See [`crate::store::Store::record_opening`]; committed (synchronously, by PostgreSQL's
    /// default `synchronous_commit`) before it returns.
    pub(crate) async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError> {
        let client = self.client().await?;
        let opening_id = uuid::Uuid::new_v4().to_string();
        let opened_at = now_millis();
        let inserted = client
            .execute(
                "INSERT INTO openings
                   (opening_id, consent_id, message_id, opened_at, state, next_attempt_at)
                 VALUES ($1, $2, $3, $4, 'pending', $4)
                 ON CONFLICT (consent_id, message_id) DO NOTHING",
                &[&opening_id, &consent_id, &message_id, &opened_at],
            )
            .await
            .map_err(pg_error)?;
        if inserted == 1 {
            return Ok(RecordedOpening {
                opening_id,
                opened_at: from_millis(opened_at),
                newly_recorded: true,
            });
        }
        // A separate statement: its snapshot sees the row that won the conflict.
        let row = client
            .query_opt(
                "SELECT opening_id, opened_at FROM openings
                 WHERE consent_id = $1 AND message_id = $2",
                &[&consent_id, &message_id],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::Postgres("the conflicting opening vanished".into()))?;
        Ok(RecordedOpening {
            opening_id: row.get(0),
            opened_at: from_millis(row.get(1)),
            newly_recorded: false,
        })
    }

    /// Claims up to `limit` due openings for this replica, oldest first.
    pub(crate) async fn due_openings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        let now = now.timestamp_millis();
        let until = millis_after(now, self.claim());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE openings SET next_attempt_at = $2
                 WHERE opening_id IN (
                     SELECT opening_id FROM openings
                     WHERE state = 'pending' AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, opened_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING opening_id, consent_id, message_id, opened_at, attempts",
                &[&now, &until, &limit],
            )
            .await
            .map_err(pg_error)?;
        let mut due: Vec<PendingOpening> = rows
            .iter()
            .map(|r| PendingOpening {
                opening_id: r.get(0),
                consent_id: r.get(1),
                message_id: r.get(2),
                opened_at: from_millis(r.get(3)),
                attempts: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
            })
            .collect();
        due.sort_by_key(|o| o.opened_at);
        Ok(due)
    }

    /// See [`crate::store::Store::next_due_after`].
    pub(crate) async fn next_opening_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let at: Option<i64> = client
            .query_one(
                "SELECT MIN(next_attempt_at) FROM openings
                 WHERE state = 'pending' AND next_attempt_at > $1",
                &[&now.timestamp_millis()],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(at.map(from_millis))
    }

    /// See [`crate::store::Store::mark_delivered`].
    pub(crate) async fn opening_delivered(
        &self,
        opening_id: &str,
        verdict: &DvvVerdict,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE openings SET state = 'delivered', first_open = $2, dvv_read_at = $3,
                        delivered_at = $4, attempts = attempts + 1, last_error_kind = NULL,
                        verdict_settles_at = $5
                 WHERE opening_id = $1 AND state <> 'delivered'",
                &[
                    &opening_id,
                    &verdict.first_open,
                    &verdict.read_at.timestamp_millis(),
                    &now_millis(),
                    &verdict.settles_at.map(|t| t.timestamp_millis()),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// See [`crate::store::Store::mark_failed`].
    pub(crate) async fn opening_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE openings SET attempts = attempts + 1, last_error_kind = $2,
                        next_attempt_at = $3
                 WHERE opening_id = $1 AND state = 'pending'",
                &[
                    &opening_id,
                    &error_kind,
                    &next_attempt_at.timestamp_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// See [`crate::store::Store::park`].
    pub(crate) async fn park_opening(
        &self,
        opening_id: &str,
        error_kind: &str,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE openings SET state = 'parked', attempts = attempts + 1,
                        last_error_kind = $2
                 WHERE opening_id = $1 AND state = 'pending'",
                &[&opening_id, &error_kind],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// See [`crate::store::Store::replay_openings`].
    pub(crate) async fn replay_openings(&self, ids: &[String]) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = if ids.is_empty() {
            client
                .execute(
                    "UPDATE openings SET state = 'pending', next_attempt_at = $1
                     WHERE state = 'parked'",
                    &[&now_millis()],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE openings SET state = 'pending', next_attempt_at = $1
                     WHERE state = 'parked' AND opening_id = ANY($2)",
                    &[&now_millis(), &ids],
                )
                .await
        }
        .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// See [`crate::store::Store::parked_openings`].
    pub(crate) async fn parked_openings(
        &self,
        limit: usize,
    ) -> Result<Vec<ParkedOpening>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT opening_id, message_id, opened_at, attempts, last_error_kind
                 FROM openings WHERE state = 'parked' ORDER BY opened_at, opening_id LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| ParkedOpening {
                opening_id: r.get(0),
                message_id: r.get(1),
                opened_at: rfc3339(r.get(2)),
                attempts: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
                reason: r.get(4),
            })
            .collect())
    }

    /// See [`crate::store::Store::ledger_openings`].
    pub(crate) async fn ledger_openings(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<LedgerOpening>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT opening_id, message_id, opened_at, state, first_open,
                        verdict_settles_at, last_error_kind
                 FROM openings WHERE opened_at >= $1 AND opened_at < $2
                 ORDER BY opened_at, opening_id",
                &[&start, &end],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| LedgerOpening {
                opening_id: r.get(0),
                message_id: r.get(1),
                opened_at: from_millis(r.get(2)),
                state: OpeningState::parse(r.get::<_, &str>(3)),
                first_open: r.get(4),
                settles_at: r.get::<_, Option<i64>>(5).map(from_millis),
                last_error: r.get(6),
            })
            .collect())
    }

    /// See [`crate::store::Store::adopt_settled_verdicts`].
    pub(crate) async fn adopt_settled_verdicts(
        &self,
        verdicts: &[(String, bool, DateTime<Utc>)],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let mut n = 0u64;
        for (id, first_open, read_at) in verdicts {
            n += tx
                .execute(
                    "UPDATE openings SET first_open = $2, dvv_read_at = $3,
                            verdict_settles_at = NULL
                     WHERE opening_id = $1 AND state = 'delivered'
                       AND verdict_settles_at IS NOT NULL",
                    &[id, first_open, &read_at.timestamp_millis()],
                )
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// See [`crate::store::Store::stats`].
    pub(crate) async fn opening_stats(&self) -> Result<OutboxStats, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'),
                        COUNT(*) FILTER (WHERE state = 'parked'),
                        COUNT(*) FILTER (WHERE state = 'delivered'),
                        COUNT(*) FILTER (WHERE state = 'delivered' AND first_open),
                        MIN(opened_at) FILTER (WHERE state = 'pending')
                 FROM openings",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let oldest: Option<i64> = row.get(4);
        Ok(OutboxStats {
            pending: count(row.get(0)),
            parked: count(row.get(1)),
            delivered: count(row.get(2)),
            first_opens: count(row.get(3)),
            oldest_pending_age: age(oldest),
        })
    }

    /// See [`crate::store::Store::check_writable`]: a committed one-row heartbeat.
    pub(crate) async fn check_writable(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO store_health (id, checked_at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                &[&now_millis()],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
