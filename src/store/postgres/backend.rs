//! [`PgStore`] as the storage interface: each method is the statement (or transaction) in
//! `openings.rs`, `webhooks.rs` or `feed.rs`; coordination is `owner.rs` and `consent_bus.rs`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{consent_bus, owner, PgStore};
use crate::store::backend::{Backend, ConsentSink};
use crate::store::error::StoreError;
use crate::store::ownership::Ownership;
use crate::store::types::{
    Committed, ConsentChange, DeliveryCounts, DvvVerdict, FiredReminder, LedgerOpening,
    MonthFigures, NewDelivery, OutboxStats, ParkedDelivery, ParkedOpening, PendingDelivery,
    PendingOpening, RecordedOpening, ReminderChange, ReminderDelivery,
};

#[async_trait]
impl Backend for PgStore {
    fn claims(&self) -> bool {
        true
    }

    fn path(&self) -> &Path {
        Path::new("")
    }

    async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError> {
        PgStore::record_opening(self, consent_id, message_id).await
    }

    async fn due_openings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        PgStore::due_openings(self, now, limit).await
    }

    async fn next_opening_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        PgStore::next_opening_due_after(self, now).await
    }

    async fn opening_delivered(
        &self,
        opening_id: &str,
        verdict: &DvvVerdict,
    ) -> Result<(), StoreError> {
        PgStore::opening_delivered(self, opening_id, verdict).await
    }

    async fn opening_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        PgStore::opening_failed(self, opening_id, error_kind, next_attempt_at).await
    }

    async fn park_opening(&self, opening_id: &str, error_kind: &str) -> Result<(), StoreError> {
        PgStore::park_opening(self, opening_id, error_kind).await
    }

    async fn replay_openings(&self, ids: &[String]) -> Result<usize, StoreError> {
        PgStore::replay_openings(self, ids).await
    }

    async fn parked_openings(&self, limit: usize) -> Result<Vec<ParkedOpening>, StoreError> {
        PgStore::parked_openings(self, limit).await
    }

    async fn opening_stats(&self) -> Result<OutboxStats, StoreError> {
        PgStore::opening_stats(self).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        PgStore::check_writable(self).await
    }

    async fn enqueue_webhooks(
        &self,
        endpoints: &[String],
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        PgStore::enqueue_webhooks(self, endpoints, deliveries).await
    }

    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        PgStore::due_webhooks(self, now, limit).await
    }

    async fn next_webhook_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        PgStore::next_webhook_due_after(self, now).await
    }

    async fn webhook_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        PgStore::webhook_delivered(self, id, status).await
    }

    async fn webhook_failed(
        &self,
        id: i64,
        kind: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError> {
        PgStore::webhook_failed(self, id, kind, status, next_attempt_at, park).await
    }

    async fn parked_webhooks(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError> {
        PgStore::parked_webhooks(self, limit).await
    }

    async fn replay_webhooks(&self, ids: &[i64]) -> Result<usize, StoreError> {
        PgStore::replay_webhooks(self, ids).await
    }

    async fn prune_webhooks(&self, cutoff: i64) -> Result<usize, StoreError> {
        PgStore::prune_webhooks(self, cutoff).await
    }

    async fn webhook_counts(&self) -> Result<DeliveryCounts, StoreError> {
        PgStore::webhook_counts(self).await
    }

    async fn load_position(&self) -> Result<Option<String>, StoreError> {
        PgStore::load_position(self).await
    }

    async fn commit_page(
        &self,
        from: Option<String>,
        next: &str,
        endpoints: &[String],
        deliveries: &[NewDelivery],
        reminders: &[ReminderChange],
        events: i64,
    ) -> Result<Committed, StoreError> {
        PgStore::commit_page(self, from, next, endpoints, deliveries, reminders, events).await
    }

    async fn fire_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        max_count: u32,
        endpoints: &[String],
        build: ReminderDelivery,
    ) -> Result<Vec<FiredReminder>, StoreError> {
        PgStore::fire_reminders(self, now, limit, max_count, endpoints, build).await
    }

    async fn scheduled_reminders(&self) -> Result<u64, StoreError> {
        PgStore::scheduled_reminders(self).await
    }

    async fn publish_consent_changes(&self, changes: &[(bool, String)]) -> Result<(), StoreError> {
        PgStore::publish_consent_changes(self, changes).await
    }

    async fn consent_changes_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<ConsentChange>, StoreError> {
        PgStore::consent_changes_after(self, seq, limit).await
    }

    async fn ledger_months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError> {
        PgStore::ledger_months(self, start, end).await
    }

    async fn prune_ledger(&self, cutoff: i64) -> Result<usize, StoreError> {
        PgStore::prune_ledger(self, cutoff).await
    }

    fn spawn_owner_election(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> (Ownership, JoinHandle<()>) {
        owner::spawn_owner_election((*self).clone(), shutdown)
    }

    async fn ledger_openings(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<LedgerOpening>, StoreError> {
        PgStore::ledger_openings(self, start, end).await
    }

    async fn adopt_settled_verdicts(
        &self,
        verdicts: &[(String, bool, DateTime<Utc>)],
    ) -> Result<usize, StoreError> {
        PgStore::adopt_settled_verdicts(self, verdicts).await
    }

    fn spawn_consent_listener(
        self: Arc<Self>,
        apply: ConsentSink,
        shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        Some(consent_bus::spawn_consent_listener(
            (*self).clone(),
            apply,
            shutdown,
        ))
    }
}
