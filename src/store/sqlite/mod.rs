//! The embedded backend: one SQLite file in the data directory (WAL, `synchronous=FULL`), for a
//! single gateway process. Writes of openings go through one committer thread that groups them
//! (see [`commit`]); everything else runs on tokio's blocking pool, so the async runtime never
//! waits for the disk. Migrations ship in `migrations/sqlite/`.

mod commit;
mod feed;
mod openings;
mod reminders;
mod schema;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::backend::{Backend, ConsentSink};
use super::error::StoreError;
use super::ownership::Ownership;
use super::types::{
    Committed, ConsentChange, DeliveryCounts, DvvVerdict, FiredReminder, LedgerOpening,
    MonthFigures, NewDelivery, OutboxStats, ParkedDelivery, ParkedOpening, PendingDelivery,
    PendingOpening, RecordedOpening, ReminderChange, ReminderDelivery,
};
use commit::{commit_loop, lock, Job, Write};

/// The database file's name inside the gateway's data directory.
pub const DATABASE_FILE: &str = "ikkuna.db";

/// The SQLite file and its committer thread.
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Writes go to the committer thread, which groups whatever has queued up while the previous
    /// commit was syncing into one transaction.
    writes: mpsc::Sender<Box<dyn Write>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path` and starts its committer.
    pub(crate) async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let opened = path.clone();
        let conn = tokio::task::spawn_blocking(move || schema::open(&opened))
            .await
            .map_err(|_| StoreError::Worker)??;
        let conn = Arc::new(Mutex::new(conn));
        let (writes, queue) = mpsc::channel();
        let committer = Arc::clone(&conn);
        std::thread::Builder::new()
            .name("ikkuna-outbox".to_owned())
            .spawn(move || commit_loop(&committer, &queue))
            .map_err(|_| StoreError::Worker)?;
        Ok(Self { conn, writes, path })
    }

    /// Runs `work` on the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || work(&mut lock(&conn)))
            .await
            .map_err(|_| StoreError::Worker)?
    }

    /// Runs a write on the committer thread inside a transaction shared with whatever other
    /// writes are queued, and resolves once that transaction is committed (or with the error that
    /// kept this write, or the commit, from happening).
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Job {
            work: Some(work),
            result: None,
            reply,
        });
        self.writes.send(job).map_err(|_| StoreError::Worker)?;
        answer.await.map_err(|_| StoreError::Worker)?
    }
}

/// SQLite's result codes as the store's kinds of failure.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        let text = error.to_string();
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            Some(ErrorCode::ReadOnly) => Self::ReadOnly,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Self::Corrupt(text),
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => Self::CannotOpen(text),
            Some(ErrorCode::SystemIoFailure) => Self::Io(text),
            _ => Self::Sqlite(text),
        }
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn claims(&self) -> bool {
        false
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError> {
        openings::record(self, consent_id, message_id).await
    }

    async fn due_openings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        openings::due(self, now, limit).await
    }

    async fn next_opening_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        openings::next_due_after(self, now).await
    }

    async fn opening_delivered(
        &self,
        opening_id: &str,
        verdict: &DvvVerdict,
    ) -> Result<(), StoreError> {
        openings::delivered(self, opening_id, verdict).await
    }

    async fn opening_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        openings::failed(self, opening_id, error_kind, next_attempt_at).await
    }

    async fn park_opening(&self, opening_id: &str, error_kind: &str) -> Result<(), StoreError> {
        openings::park(self, opening_id, error_kind).await
    }

    async fn replay_openings(&self, ids: &[String]) -> Result<usize, StoreError> {
        openings::replay(self, ids).await
    }

    async fn parked_openings(&self, limit: usize) -> Result<Vec<ParkedOpening>, StoreError> {
        openings::parked(self, limit).await
    }

    async fn opening_stats(&self) -> Result<OutboxStats, StoreError> {
        openings::stats(self).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        openings::check_writable(self).await
    }

    async fn enqueue_webhooks(
        &self,
        endpoints: &[String],
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        webhooks::enqueue(self, endpoints, deliveries).await
    }

    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        webhooks::due(self, now, limit).await
    }

    async fn next_webhook_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        webhooks::next_due_after(self, now).await
    }

    async fn webhook_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        webhooks::delivered(self, id, status).await
    }

    async fn webhook_failed(
        &self,
        id: i64,
        kind: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
        park: bool,
    ) -> Result<(), StoreError> {
        webhooks::failed(self, id, kind, status, next_attempt_at, park).await
    }

    async fn parked_webhooks(&self, limit: usize) -> Result<Vec<ParkedDelivery>, StoreError> {
        webhooks::parked(self, limit).await
    }

    async fn replay_webhooks(&self, ids: &[i64]) -> Result<usize, StoreError> {
        webhooks::replay(self, ids).await
    }

    async fn prune_webhooks(&self, cutoff: i64) -> Result<usize, StoreError> {
        webhooks::prune(self, cutoff).await
    }

    async fn webhook_counts(&self) -> Result<DeliveryCounts, StoreError> {
        webhooks::counts(self).await
    }

    async fn load_position(&self) -> Result<Option<String>, StoreError> {
        feed::load_position(self).await
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
        feed::commit_page(self, from, next, endpoints, deliveries, reminders, events).await
    }

    async fn fire_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        max_count: u32,
        endpoints: &[String],
        build: ReminderDelivery,
    ) -> Result<Vec<FiredReminder>, StoreError> {
        reminders::fire(self, now, limit, max_count, endpoints, build).await
    }

    async fn scheduled_reminders(&self) -> Result<u64, StoreError> {
        reminders::scheduled(self).await
    }

    async fn publish_consent_changes(&self, _changes: &[(bool, String)]) -> Result<(), StoreError> {
        // One process per file: there is no other replica to tell.
        Ok(())
    }

    async fn consent_changes_after(
        &self,
        _seq: i64,
        _limit: usize,
    ) -> Result<Vec<ConsentChange>, StoreError> {
        Ok(Vec::new())
    }

    async fn ledger_months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Vec<MonthFigures>, Option<i64>), StoreError> {
        feed::ledger_months(self, start, end).await
    }

    async fn prune_ledger(&self, cutoff: i64) -> Result<usize, StoreError> {
        feed::prune_ledger(self, cutoff).await
    }

    async fn ledger_openings(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<LedgerOpening>, StoreError> {
        openings::ledger_openings(self, start, end).await
    }

    async fn adopt_settled_verdicts(
        &self,
        verdicts: &[(String, bool, DateTime<Utc>)],
    ) -> Result<usize, StoreError> {
        openings::adopt_settled(self, verdicts).await
    }

    fn spawn_owner_election(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> (Ownership, JoinHandle<()>) {
        Ownership::sole(shutdown)
    }

    fn spawn_consent_listener(
        self: Arc<Self>,
        _apply: ConsentSink,
        _shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        None
    }
}
