//! The audit file: appended by one dedicated thread, so file I/O never blocks the async runtime.
//!
//! Requests arrive over a bounded channel, each with a reply slot. The thread takes whatever has
//! queued up, writes the batch, flushes it to the kernel (and `fdatasync`s it when configured),
//! and only then answers every waiting request: an access is answered as a success only after its
//! line is in the file.
//!
//! This is group commit: the lines of all requests that arrived while the previous batch was
//! being synced share the next single `fdatasync`. The wait is bounded without a timer: a line
//! waits at most for the sync in progress when it arrived and then its own, and no request waits
//! to fill a batch (an idle writer syncs a lone line at once). A failed write is undone (the file is truncated back to its last good
//! length) and reported to every request of the batch, which the operator API then answers 503.
//!
//! Rotation by size or by UTC day renames the active file to `FILE.<first seq, 12 digits>` and
//! starts a new one whose first line's `prev` is the hash of the last line of the old one, so
//! the chain runs on across files. On start the chain is resumed from the last complete line of
//! the active file (or the newest rotated file); a torn last line left by a crash is cut off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};

use super::record::{hash_line, Access, Line, GENESIS};

/// Queue length between the operator API and the writer thread.
const QUEUE: usize = 4096;
/// Most records written per batch.
const BATCH: usize = 512;

/// How the audit file is written and rotated.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// The active audit file.
    pub file: PathBuf,
    /// Rotate when the active file would grow past this many bytes (0: never by size).
    pub max_file_bytes: u64,
    /// Rotate when the UTC day changes.
    pub rotate_daily: bool,
    /// `fdatasync` after each batch (durable against power loss, not only a process crash).
    pub fsync: bool,
}

/// Why an audit record could not be written. Never carries the record.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The file could not be written.
    #[error("audit file write failed: {0}")]
    Io(String),
    /// The writer thread has stopped.
    #[error("audit writer stopped")]
    Stopped,
}

type Request = (Access, oneshot::Sender<Result<u64, AuditError>>);

/// Makes the file's written bytes durable (`fdatasync` in production; a seam for tests that
/// count syncs against lines).
pub type SyncFn = Box<dyn FnMut(&File) -> std::io::Result<()> + Send>;

/// The chain's head as last written: (sequence number of the next line, hash of the last one).
pub type Head = Arc<Mutex<(u64, String)>>;

/// Sending side of the writer: cheap to clone.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<Request>,
    head: Head,
}

impl WriterHandle {
    /// Appends one record and waits until it is written (and synced, when configured) or failed;
    /// answers the line's sequence number in the chain.
    pub async fn append(&self, access: Access) -> Result<u64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((access, reply))
            .await
            .map_err(|_| AuditError::Stopped)?;
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Records waiting for the writer thread.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The chain's head: the next sequence number and the hash of the last line written.
    pub fn head(&self) -> (u64, String) {
        self.head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Opens the active file, resumes the chain, and starts the writer thread. The thread ends when
/// every [`WriterHandle`] is dropped; the returned join handle lets shutdown wait for it.
pub fn start(
    settings: WriterSettings,
) -> Result<(WriterHandle, std::thread::JoinHandle<()>), AuditError> {
    start_with_sync(settings, Box::new(|file: &File| file.sync_data()))
}

/// As [`start`], with `sync` making each batch durable when `settings.fsync` is set.
pub fn start_with_sync(
    settings: WriterSettings,
    sync: SyncFn,
) -> Result<(WriterHandle, std::thread::JoinHandle<()>), AuditError> {
    let mut state = Active::open(settings, sync)?;
    let head: Head = Arc::new(Mutex::new((state.next_seq, state.head.clone())));
    let published = head.clone();
    let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
    let thread = std::thread::Builder::new()
        .name("ikkuna-audit".to_owned())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                state.write_batch(&mut batch);
                *published.lock().unwrap_or_else(PoisonError::into_inner) =
                    (state.next_seq, state.head.clone());
            }
            state.close();
        })
        .map_err(|e| AuditError::Io(format!("cannot start the audit writer: {e}")))?;
    Ok((WriterHandle { tx, head }, thread))
}

/// The writer thread's state: the open file and the chain's head.
struct Active {
    settings: WriterSettings,
    sync: SyncFn,
    file: File,
    /// Bytes of complete lines in the active file.
    len: u64,
    /// Sequence number of the next line.
    next_seq: u64,
    /// Hash of the last line written.
    head: String,
    /// Sequence number of the active file's first line.
    first_seq: u64,
    /// UTC day the active file was started on.
    day: NaiveDate,
}

fn io(context: &str, path: &Path, e: &std::io::Error) -> AuditError {
    AuditError::Io(format!("{context} {}: {e}", path.display()))
}

impl Active {
    fn open(settings: WriterSettings, sync: SyncFn) -> Result<Self, AuditError> {
        let path = settings.file.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, &e))?;
        }
        let mut options = OpenOptions::new();
        options.create(true).read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .map_err(|e| io("cannot open", &path, &e))?;
        let len = cut_torn_tail(&mut file, &path)?;
        let (last, first) =
            match last_line(&mut file, len).map_err(|e| io("cannot read", &path, &e))? {
                Some(last) => (Some(last), first_seq_of(&path)),
                None => (newest_rotated_last_line(&path), None),
            };
        let (next_seq, head) = match last {
            Some(bytes) => {
                let line: Line = serde_json::from_slice(&bytes).map_err(|_| {
                    AuditError::Io(format!(
                        "cannot resume the chain: the last line of {} is not an audit record (run `ikkuna audit verify`)",
                        path.display()
                    ))
                })?;
                (line.seq + 1, hash_line(&bytes))
            }
            None => (0, GENESIS.to_owned()),
        };
        Ok(Self {
            first_seq: first.unwrap_or(next_seq),
            settings,
            sync,
            file,
            len,
            next_seq,
            head,
            day: Utc::now().date_naive(),
        })
    }

    fn write_batch(&mut self, batch: &mut Vec<Request>) {
        let first_seq = self.next_seq;
        let result = self.write_all(batch);
        if let Err(error) = &result {
            tracing::error!(%error, records = batch.len(), "audit write failed; the accesses are refused");
        }
        // Lines are numbered in batch order from the batch's first sequence number (a rotation
        // inside the batch does not renumber: the chain runs on across files).
        for (seq, (_, reply)) in (first_seq..).zip(batch.drain(..)) {
            let _ = reply.send(result.clone().map(|()| seq));
        }
    }

    fn write_all(&mut self, batch: &[Request]) -> Result<(), AuditError> {
        // The chain position of the last line known to be in a file, restored on failure.
        let mut committed = (self.next_seq, self.head.clone());
        let mut pending = Vec::with_capacity(batch.len() * 320);
        let result = (|| {
            for (access, _) in batch {
                let line = Line::chain(access.clone(), self.next_seq, &self.head);
                let bytes = serde_json::to_vec(&line)
                    .map_err(|e| AuditError::Io(format!("cannot encode an audit record: {e}")))?;
                let size = bytes.len() as u64 + 1;
                if self.should_rotate(size + pending.len() as u64) {
                    self.flush(&pending)?;
                    pending.clear();
                    committed = (self.next_seq, self.head.clone());
                    self.rotate()?;
                }
                self.head = hash_line(&bytes);
                self.next_seq += 1;
                pending.extend_from_slice(&bytes);
                pending.push(b'\n');
            }
            self.flush(&pending)
        })();
        match result {
            Ok(()) => {
                crate::telemetry::metrics::with(|m| m.audit_records.inc_by(batch.len() as u64));
                Ok(())
            }
            Err(error) => {
                // Undo a partial write so the chain stays intact for the next batch.
                let _ = self.file.set_len(self.len);
                (self.next_seq, self.head) = committed;
                crate::telemetry::metrics::with(|m| m.audit_failures.inc_by(batch.len() as u64));
                Err(error)
            }
        }
    }

    fn flush(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let path = &self.settings.file;
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.flush())
            .map_err(|e| io("cannot write", path, &e))?;
        if self.settings.fsync {
            (self.sync)(&self.file).map_err(|e| io("cannot sync", path, &e))?;
            crate::telemetry::metrics::with(|m| m.audit_syncs.inc());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn should_rotate(&self, more: u64) -> bool {
        if self.len == 0 {
            return false;
        }
        let by_size =
            self.settings.max_file_bytes > 0 && self.len + more > self.settings.max_file_bytes;
        let by_day = self.settings.rotate_daily && Utc::now().date_naive() != self.day;
        by_size || by_day
    }

    /// Renames the active file to `FILE.<first seq>` and starts a new active file.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let path = self.settings.file.clone();
        let _ = self.file.sync_all();
        let rotated = rotated_name(&path, self.first_seq);
        std::fs::rename(&path, &rotated).map_err(|e| io("cannot rotate", &path, &e))?;
        let mut options = OpenOptions::new();
        options.create(true).read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        self.file = options
            .open(&path)
            .map_err(|e| io("cannot open", &path, &e))?;
        self.len = 0;
        self.first_seq = self.next_seq;
        self.day = Utc::now().date_naive();
        tracing::info!(
            rotated = %rotated.display(),
            chain_seq = self.next_seq,
            chain_head = %self.head,
            "audit file rotated"
        );
        Ok(())
    }

    fn close(&mut self) {
        let _ = self.file.sync_all();
        // The head, logged outside the audit file, anchors the chain's end: truncating or
        // editing the last lines no longer matches it.
        tracing::info!(chain_seq = self.next_seq, chain_head = %self.head, "audit writer stopped");
    }
}

/// `FILE.<seq, 12 digits>`: rotated files sort in chain order.
pub fn rotated_name(active: &Path, first_seq: u64) -> PathBuf {
    let mut name = active.as_os_str().to_owned();
    name.push(format!(".{first_seq:012}"));
    PathBuf::from(name)
}

/// The rotated files of `active`, oldest first.
pub fn rotated_files(active: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (active.parent(), active.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", stem.to_string_lossy());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let suffix = name.strip_prefix(&prefix)?;
            (suffix.len() == 12 && suffix.bytes().all(|b| b.is_ascii_digit())).then(|| e.path())
        })
        .collect();
    files.sort();
    files
}

/// Cuts a line left half-written by a crash; returns the length of the complete lines.
fn cut_torn_tail(file: &mut File, path: &Path) -> Result<u64, AuditError> {
    let len = file
        .metadata()
        .map_err(|e| io("cannot read", path, &e))?
        .len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| io("cannot read", path, &e))?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let good = match last_newline_before(file, len).map_err(|e| io("cannot read", path, &e))? {
        Some(at) => at + 1,
        None => 0,
    };
    file.set_len(good)
        .map_err(|e| io("cannot repair", path, &e))?;
    tracing::warn!(file = %path.display(), dropped_bytes = len - good, "audit file ended in a torn line (a crash mid-write); cut it off");
    Ok(good)
}

/// Offset of the last `\n` before `end`.
fn last_newline_before(file: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    let mut pos = end;
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = usize::try_from(pos - start).unwrap_or(0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

/// The last complete line of a file of `len` bytes ending in `\n`.
fn last_line(file: &mut File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    if len == 0 {
        return Ok(None);
    }
    let start = last_newline_before(file, len - 1)?.map_or(0, |at| at + 1);
    let mut bytes = vec![0u8; usize::try_from(len - 1 - start).unwrap_or(0)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn first_seq_of(path: &Path) -> Option<u64> {
    let text = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(text);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).ok()?;
    serde_json::from_str::<Line>(first.trim_end())
        .ok()
        .map(|l| l.seq)
}

fn newest_rotated_last_line(active: &Path) -> Option<Vec<u8>> {
    let newest = rotated_files(active).pop()?;
    let mut file = File::open(newest).ok()?;
    let len = file.metadata().ok()?.len();
    last_line(&mut file, len).ok().flatten()
}
