//! The feed position and the ledger on PostgreSQL. A page commits under a transaction-scoped
//! advisory lock and a compare-and-set on the stored token, so an owner that lost its ownership
//! without knowing it yet cannot queue a page twice. Consent changes are logged and published
//! with `NOTIFY` in one transaction ([`super::consent_bus`]) for every replica's cache.

use std::time::Duration;

use super::consent_bus::CONSENT_CHANNEL;
use super::reminders;
use super::webhooks::enqueue_in;
use super::{pg_error, PgStore};
use crate::store::error::StoreError;
use crate::store::types::{
    count, millis_before, now_millis, Committed, ConsentChange, MonthFigures, NewDelivery,
    ReminderChange,
};

/// Logged consent changes are kept this long: a replica cut off for longer has long since let
/// its cached consents expire (`consent.revocation_bound_secs` is at most an hour).
const CONSENT_LOG_KEPT: Duration = Duration::from_secs(86_400);

/// Advisory lock key held (per transaction) while a page commits.
const FEED_LOCK: i64 = 0x0069_6b6b_756e_6102;

impl PgStore {
    /// See [`crate::store::Store::load_position`].
    pub(crate) async fn load_position(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT continuation_token FROM feed_position WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?
            .map(|r| r.get(0)))
    }

    /// See [`crate::store::Store::commit_page`].
    pub(crate) async fn commit_page(
        &self,
        from: Option<String>,
        next: &str,
        endpoints: &[String],
        deliveries: &[NewDelivery],
        reminders: &[ReminderChange],
        events: i64,
    ) -> Result<Committed, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
            .await
            .map_err(pg_error)?;
        let stored: Option<String> = tx
            .query_opt(
                "SELECT continuation_token FROM feed_position WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?
            .map(|r| r.get(0));
        if stored != from {
            return Ok(Committed::Stale);
        }
        let now = now_millis();
        let queued = enqueue_in(&tx, endpoints, deliveries, now).await?;
        reminders::apply_in(&tx, reminders).await?;
        tx.execute(
            "INSERT INTO feed_position (id, continuation_token, events_seen, updated_at)
             VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET continuation_token = excluded.continuation_token,
                 events_seen = feed_position.events_seen + excluded.events_seen,
                 updated_at = excluded.updated_at",
            &[&next, &events, &now],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(Committed::Advanced { queued })
    }

    /// Logs consent changes and tells every replica (through `NOTIFY`, sent on commit): each
    /// payload is `<seq>:revoked:<consentId>` or `<seq>:changed:<consentId>` — DVV's opaque
    /// consent id, never an identity code.
    pub(crate) async fn publish_consent_changes(
        &self,
        changes: &[(bool, String)],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let now = now_millis();
        for (revoked, consent_id) in changes {
            let seq: i64 = tx
                .query_one(
                    "INSERT INTO consent_changes (consent_id, revoked, published_at)
                     VALUES ($1, $2, $3) RETURNING seq",
                    &[consent_id, revoked, &now],
                )
                .await
                .map_err(pg_error)?
                .get(0);
            let payload = format!(
                "{seq}:{}:{consent_id}",
                if *revoked { "revoked" } else { "changed" }
            );
            tx.execute("SELECT pg_notify($1, $2)", &[&CONSENT_CHANNEL, &payload])
                .await
                .map_err(pg_error)?;
        }
        tx.execute(
            "DELETE FROM consent_changes WHERE published_at < $1",
            &[&millis_before(now, CONSENT_LOG_KEPT)],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    /// Logged consent changes after `seq`, oldest first.
    pub(crate) async fn consent_changes_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<ConsentChange>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, revoked, consent_id FROM consent_changes
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq, &limit],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| ConsentChange {
                seq: r.get(0),
                revoked: r.get(1),
                consent_id: r.get(2),
            })
            .collect())
    }

    /// The ledger's months in `[start, end)` (unix milliseconds of `opened_at`) and the
    /// retention cut-off, as the ledger report shows them.
    pub(crate) async fn ledger_months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT to_char(to_timestamp(opened_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM')
                            AS month,
                        COUNT(*),
                        COUNT(*) FILTER (WHERE state = 'delivered'),
                        COUNT(*) FILTER (WHERE state = 'pending'),
                        COUNT(*) FILTER (WHERE state = 'parked'),
                        COUNT(*) FILTER (WHERE state = 'delivered' AND first_open)
                 FROM openings WHERE opened_at >= $1 AND opened_at < $2
                 GROUP BY month ORDER BY month",
                &[&start, &end],
            )
            .await
            .map_err(pg_error)?;
        let months = rows
            .iter()
            .map(|r| MonthFigures {
                month: r.get(0),
                recorded: count(r.get(1)),
                delivered: count(r.get(2)),
                pending: count(r.get(3)),
                parked: count(r.get(4)),
                first_opens: count(r.get(5)),
            })
            .collect();
        let pruned: Option<i64> = client
            .query_one("SELECT MAX(pruned_before) FROM ledger_retention", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        Ok((months, pruned))
    }

    /// See [`crate::store::Store::prune_ledger`]: deletes delivered openings opened before `cutoff`.
    pub(crate) async fn prune_ledger(&self, cutoff: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let deleted = tx
            .execute(
                "DELETE FROM openings WHERE state = 'delivered' AND opened_at < $1",
                &[&cutoff],
            )
            .await
            .map_err(pg_error)?;
        if deleted > 0 {
            tx.execute(
                "INSERT INTO ledger_retention (id, pruned_before, pruned_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET pruned_before = excluded.pruned_before,
                     pruned_at = excluded.pruned_at",
                &[&cutoff, &now_millis()],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}
