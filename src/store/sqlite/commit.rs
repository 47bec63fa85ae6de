//! Group commit on the SQLite file: writes queue for one committer thread, which runs whatever
//! has queued up while the previous commit was syncing in one transaction, so concurrent openings
//! share one fsync.

use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::error::StoreError;

/// Most writes committed together in one transaction (one fsync).
const MAX_BATCH: usize = 1024;

/// Locks the connection. A panic while holding the lock cannot leave a half-applied write behind
/// (SQLite rolls back an unfinished transaction), so a poisoned lock is still usable.
pub(super) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One queued write: its work, run inside the shared transaction, and its answer, sent only
/// after the commit.
pub(super) trait Write: Send {
    /// Runs the work; false when it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// The work's own error, if it failed.
    fn error(&self) -> Option<&StoreError>;
    /// Answers the caller: the work's result if the commit succeeded, else the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

pub(super) struct Job<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
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
                e.replicate()
            } else {
                own
            }),
            (Err(e), _) => Err(e.replicate()),
        };
        let _ = self.reply.send(answer);
    }
}

/// The committer thread: takes the first queued write, then everything else already queued (up
/// to [`MAX_BATCH`]), and commits them in one transaction. While a commit syncs, new writes queue
/// up for the next one, so the batch grows with the load and a lone write waits for nobody.
/// Ends when every [`Outbox`] handle is gone.
pub(super) fn commit_loop(conn: &Mutex<Connection>, queue: &mpsc::Receiver<Box<dyn Write>>) {
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
                    StoreError::replicate,
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
