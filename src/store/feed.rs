//! The feed position and the ledger on PostgreSQL. A page commits under a transaction-scoped
//! advisory lock and a compare-and-set on the stored token, so an owner that lost its ownership
//! without knowing it yet cannot queue a page twice. Consent changes are published with
//! `NOTIFY` ([`super::consent_bus`]) for every replica's cache.

use chrono::Utc;

use super::consent_bus::CONSENT_CHANNEL;
use super::pg::{count, now_millis, pg_error, PgStore};
use super::webhooks::enqueue_in;
use crate::events::Committed;
use crate::ledger::MonthFigures;
use crate::openings::StoreError;
use crate::webhooks::WebhookEvent;

/// Advisory lock key held (per transaction) while a page commits.
const FEED_LOCK: i64 = 0x0069_6b6b_756e_6102;

impl PgStore {
    /// See [`crate::events::FeedPosition::load`].
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

    /// See [`crate::events::FeedPosition::commit_page`].
    pub(crate) async fn commit_page(
        &self,
        from: Option<String>,
        next: &str,
        endpoints: &[String],
        webhooks: &[WebhookEvent],
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
        let now = Utc::now().timestamp_millis();
        let queued = enqueue_in(&tx, endpoints, webhooks, now).await?;
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

    /// Tells every replica (through `NOTIFY`) that consents changed: each payload is
    /// `revoked:<consentId>` or `changed:<consentId>` — DVV's opaque consent id, never an
    /// identity code.
    pub(crate) async fn publish_consent_changes(
        &self,
        changes: &[(bool, String)],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        for (revoked, consent_id) in changes {
            let payload = format!(
                "{}:{consent_id}",
                if *revoked { "revoked" } else { "changed" }
            );
            client
                .execute("SELECT pg_notify($1, $2)", &[&CONSENT_CHANNEL, &payload])
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    /// The ledger's months in `[start, end)` (unix milliseconds of `opened_at`) and the
    /// retention cut-off, as [`crate::ledger::report`] shows them.
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

    /// See [`crate::ledger::prune`]: deletes delivered openings opened before `cutoff`.
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
