//! The openings outbox: each first read of a message is committed here before its body leaves
//! the gateway, then delivered to DVV by the deliverer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use tokio::sync::{oneshot, Notify};

use super::error::StoreError;
use super::health::{StoreHealth, StoreStatus};
use super::schema;
use crate::store::PgStore;

/// The database file's name inside the gateway's data directory.
pub const DATABASE_FILE: &str = "ikkuna.db";

/// An opening as recorded: the id DVV will see and the time it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOpening {
    /// The opening's UUID v4: DVV's idempotency key for the report.
    pub opening_id: String,
    /// When the citizen opened the message (millisecond precision, as reported to DVV).
    pub opened_at: DateTime<Utc>,
    /// False when this (consent, message) already had an opening, which was returned instead.
    pub newly_recorded: bool,
}

/// An opening waiting to be reported to DVV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOpening {
    /// The opening's id (idempotency key).
    pub opening_id: String,
    /// The consent under which the message was read.
    pub consent_id: String,
    /// The message read.
    pub message_id: i64,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// Counts for metrics and readiness: ids and times only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Openings not yet settled with DVV.
    pub pending: u64,
    /// Openings DVV refused for good (need an operator's look).
    pub parked: u64,
    /// Openings DVV acknowledged.
    pub delivered: u64,
    /// Delivered openings DVV answered `firstOpen: true` — the operator's compensation basis.
    pub first_opens: u64,
    /// Age of the oldest pending opening.
    pub oldest_pending_age: Option<Duration>,
}

/// Most writes committed together in one transaction (one fsync).
const MAX_BATCH: usize = 1024;

struct Inner {
    /// `None` when the store is PostgreSQL ([`Outbox::shared`]).
    conn: Option<Arc<Mutex<Connection>>>,
    /// Writes go to the committer thread, which groups whatever has queued up while the previous
    /// commit was syncing into one transaction: concurrent openings share one fsync.
    writes: Option<mpsc::Sender<Box<dyn Write>>>,
    wake: Notify,
    path: PathBuf,
    /// Whether writes commit right now (see [`super::health`]).
    health: StoreHealth,
    /// The shared PostgreSQL store, when configured: every operation goes there instead.
    postgres: Option<PgStore>,
}

/// Handle to the embedded store's openings. Cheap to clone; every call runs on tokio's blocking
/// pool so the async runtime is never blocked by disk I/O.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
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
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Some(conn),
                writes: Some(writes),
                wake: Notify::new(),
                path,
                health: StoreHealth::default(),
                postgres: None,
            }),
        })
    }

    /// The handle over a shared PostgreSQL store (several replicas): same operations, no file.
    pub fn shared(store: PgStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: None,
                writes: None,
                wake: Notify::new(),
                path: PathBuf::new(),
                health: StoreHealth::default(),
                postgres: Some(store),
            }),
        }
    }

    /// The PostgreSQL store, when this handle is over one.
    pub fn postgres(&self) -> Option<&PgStore> {
        self.inner.postgres.as_ref()
    }

    /// Opens the store at `<data_dir>/ikkuna.db`.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(data_dir.join(DATABASE_FILE)).await
    }

    /// The database file (empty for PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the store took its last write, and why not if it did not: the basis of failing
    /// closed (no body is released while openings cannot be recorded) and of `/readyz`.
    pub fn store_status(&self) -> StoreStatus {
        self.inner.health.status()
    }

    /// Records that a citizen opened a message, once per (consent, message): returns the existing
    /// opening if there is one, otherwise inserts a new one and commits it durably (WAL,
    /// `synchronous=FULL`) before returning. Concurrent calls share one commit (group commit);
    /// none returns before its commit is on disk. A new opening wakes the deliverer.
    pub async fn record_opening(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<RecordedOpening, StoreError> {
        if let Some(pg) = self.postgres() {
            let recorded = pg.record_opening(consent_id, message_id).await;
            if !matches!(&recorded, Ok(r) if !r.newly_recorded) {
                self.inner.health.observe(&recorded);
            }
            let recorded = recorded?;
            if recorded.newly_recorded {
                self.inner.wake.notify_one();
            }
            return Ok(recorded);
        }
        let consent_id = consent_id.to_owned();
        let recorded = self
            .write_unobserved(move |tx| {
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
            .await;
        // Finding an existing opening writes nothing, so it proves nothing about the disk.
        if !matches!(&recorded, Ok(r) if !r.newly_recorded) {
            self.inner.health.observe(&recorded);
        }
        let recorded = recorded?;
        if recorded.newly_recorded {
            self.inner.wake.notify_one();
        }
        Ok(recorded)
    }

    /// Up to `limit` pending openings whose next attempt is due at `now`, oldest due first.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        if let Some(pg) = self.postgres() {
            return pg.due_openings(now, limit).await;
        }
        let now = now.timestamp_millis();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
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

    /// When the earliest pending opening not yet due at `now` falls due, if there is one.
    pub async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if let Some(pg) = self.postgres() {
            return pg.next_opening_due_after(now).await;
        }
        let now = now.timestamp_millis();
        self.run(move |conn| {
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

    /// Settles an opening with DVV's answer (a 201, or a 409 repeating the original). An opening
    /// already delivered keeps its first answer.
    pub async fn mark_delivered(
        &self,
        opening_id: &str,
        first_open: bool,
        read_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.postgres() {
            return pg.opening_delivered(opening_id, first_open, read_at).await;
        }
        let opening_id = opening_id.to_owned();
        let read_at = read_at.timestamp_millis();
        self.write(move |conn| {
            conn.execute(
                "UPDATE openings SET state = 'delivered', first_open = ?2, dvv_read_at = ?3,
                        delivered_at = ?4, attempts = attempts + 1, last_error_kind = NULL
                 WHERE opening_id = ?1 AND state <> 'delivered'",
                params![opening_id, first_open, read_at, now_millis()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a failed attempt that may succeed later, and when to try again.
    pub async fn mark_failed(
        &self,
        opening_id: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.postgres() {
            return pg
                .opening_failed(opening_id, error_kind, next_attempt_at)
                .await;
        }
        let (opening_id, kind) = (opening_id.to_owned(), error_kind.to_owned());
        let next = next_attempt_at.timestamp_millis();
        self.write(move |conn| {
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

    /// Parks an opening DVV refused for good: it stays recorded (it is still money) but is not
    /// retried until [`Outbox::requeue_parked`].
    pub async fn park(&self, opening_id: &str, error_kind: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.postgres() {
            return pg.park_opening(opening_id, error_kind).await;
        }
        let (opening_id, kind) = (opening_id.to_owned(), error_kind.to_owned());
        self.write(move |conn| {
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

    /// Puts every parked opening back in line for delivery now (after an operator fixed the
    /// cause); returns how many. Wakes the deliverer.
    pub async fn requeue_parked(&self) -> Result<usize, StoreError> {
        if let Some(pg) = self.postgres() {
            let count = pg.requeue_parked_openings().await?;
            if count > 0 {
                self.inner.wake.notify_one();
            }
            return Ok(count);
        }
        let count = self
            .write(|conn| {
                Ok(conn.execute(
                    "UPDATE openings SET state = 'pending', next_attempt_at = ?1
                     WHERE state = 'parked'",
                    params![now_millis()],
                )?)
            })
            .await?;
        if count > 0 {
            self.inner.wake.notify_one();
        }
        Ok(count)
    }

    /// Counts by state, first opens, and the age of the oldest pending opening.
    pub async fn stats(&self) -> Result<OutboxStats, StoreError> {
        if let Some(pg) = self.postgres() {
            return pg.opening_stats().await;
        }
        self.run(|conn| {
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
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(OutboxStats {
                pending: count(pending),
                parked: count(parked),
                delivered: count(delivered),
                first_opens: count(first_opens),
                oldest_pending_age: oldest
                    .map(|at| Duration::from_millis(count(now_millis().saturating_sub(at)))),
            })
        })
        .await
    }

    /// Proves the store takes a durable write right now (for `/readyz`): commits a one-row
    /// heartbeat, so a full disk or a read-only mount shows up as an error.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.postgres() {
            let outcome = pg.check_writable().await;
            self.inner.health.observe(&outcome);
            return outcome;
        }
        self.write(|conn| {
            conn.execute(
                "INSERT INTO store_health (id, checked_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                params![now_millis()],
            )?;
            Ok(())
        })
        .await
    }

    /// Resolves when an opening is newly recorded or requeued (a permit is kept if nobody was
    /// waiting), so the deliverer starts at once rather than at its next poll.
    pub(crate) async fn recorded(&self) {
        self.inner.wake.notified().await;
    }

    /// Runs `work` on the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Only the SQLite store runs closures; every PostgreSQL operation is dispatched before.
        let conn = self.inner.conn.clone().ok_or(StoreError::Worker)?;
        tokio::task::spawn_blocking(move || work(&mut lock(&conn)))
            .await
            .map_err(|_| StoreError::Worker)?
    }

    /// Runs a write on the committer thread inside a transaction shared with whatever other
    /// writes are queued, and resolves once that transaction is committed (or with the error that
    /// kept this write, or the commit, from happening). The outcome updates the store's status.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let outcome = self.write_unobserved(work).await;
        self.inner.health.observe(&outcome);
        outcome
    }

    /// [`Outbox::write`] without updating the store's status (for writes that may write nothing).
    async fn write_unobserved<T, F>(&self, work: F) -> Result<T, StoreError>
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
        self.inner
            .writes
            .as_ref()
            .ok_or(StoreError::Worker)?
            .send(job)
            .map_err(|_| StoreError::Worker)?;
        answer.await.map_err(|_| StoreError::Worker)?
    }
}

/// Locks the connection. A panic while holding the lock cannot leave a half-applied write behind
/// (SQLite rolls back an unfinished transaction), so a poisoned lock is still usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One queued write: its work, run inside the shared transaction, and its answer, sent only
/// after the commit.
trait Write: Send {
    /// Runs the work; false when it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// The work's own error, if it failed.
    fn error(&self) -> Option<&StoreError>;
    /// Answers the caller: the work's result if the commit succeeded, else the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        if let Some(work) = self.work.take() {
            self.result = Some(work(conn));
        }
        matches!(self.result, Some(Ok(_)))
    }

    fn error(&self) -> Option<&StoreError> {
        match &self.result {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Worker),
            (Err(e), Some(Err(own))) => Err(if matches!(own, StoreError::Sqlite(_)) {
                replicate(e)
            } else {
                own
            }),
            (Err(e), _) => Err(replicate(e)),
        };
        let _ = self.reply.send(answer);
    }
}

/// The committer thread: takes the first queued write, then everything else already queued (up
/// to [`MAX_BATCH`]), and commits them in one transaction. While a commit syncs, new writes queue
/// up for the next one, so the batch grows with the load and a lone write waits for nobody.
/// Ends when every [`Outbox`] handle is gone.
fn commit_loop(conn: &Mutex<Connection>, queue: &mpsc::Receiver<Box<dyn Write>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&lock(conn), batch);
    }
}

/// Runs the writes in one `BEGIN IMMEDIATE … COMMIT`, each in its own savepoint so one failing
/// write leaves the others intact; answers each after the commit. If SQLite abandons the whole
/// transaction (a full disk or an I/O error can), the writes that ran in it are answered with that
/// error and the rest go on in a new transaction.
fn commit_batch(conn: &Connection, batch: Vec<Box<dyn Write>>) {
    let mut jobs = batch.into_iter();
    loop {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = StoreError::from(e);
            for job in jobs {
                job.finish(Err(&e));
            }
            return;
        }
        let mut in_tx: Vec<Box<dyn Write>> = Vec::new();
        let mut abandoned = None;
        for mut job in jobs.by_ref() {
            if let Err(e) = conn.execute_batch("SAVEPOINT write") {
                job.finish(Err(&StoreError::from(e)));
                continue;
            }
            let ok = job.run(conn);
            if conn.is_autocommit() {
                let e = job.error().map_or_else(
                    || StoreError::Sqlite("transaction rolled back".to_owned()),
                    replicate,
                );
                job.finish(Err(&e));
                abandoned = Some(e);
                break;
            }
            let undo = if ok {
                conn.execute_batch("RELEASE write")
            } else {
                conn.execute_batch("ROLLBACK TO write; RELEASE write")
            };
            if let Err(e) = undo {
                let e = StoreError::from(e);
                job.finish(Err(&e));
                abandoned = Some(e);
                let _ = conn.execute_batch("ROLLBACK");
                break;
            }
            in_tx.push(job);
        }
        if let Some(e) = abandoned {
            for job in in_tx {
                job.finish(Err(&e));
            }
            continue;
        }
        let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if commit.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in in_tx {
            job.finish(commit.as_ref().map(|_| ()));
        }
        return;
    }
}

/// The same failure again, for each write that shared a failed commit.
fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::DiskFull => StoreError::DiskFull,
        StoreError::ReadOnly => StoreError::ReadOnly,
        StoreError::Busy => StoreError::Busy,
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::CannotOpen(m) => StoreError::CannotOpen(m.clone()),
        StoreError::Io(m) => StoreError::Io(m.clone()),
        StoreError::Sqlite(m) => StoreError::Sqlite(m.clone()),
        StoreError::Postgres(m) => StoreError::Postgres(m.clone()),
        StoreError::Worker => StoreError::Worker,
    }
}

fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// `at + delay`, saturating.
pub(crate) fn after(at: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
