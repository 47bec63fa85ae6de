//! Opening the SQLite file safely (WAL, `synchronous=FULL`, busy timeout, owner-only file) and
//! bringing its schema up to date through `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::error::StoreError;

/// How long a statement waits for another writer before failing with [`StoreError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations, applied in order; `user_version` counts how many have run. Append only:
/// never edit a migration that has shipped.
///
/// The store holds ids and times only — never a title, a body, an attachment or an identity code.
const MIGRATIONS: &[&str] = &[
    // 1: the openings outbox.
    "CREATE TABLE openings (
        opening_id      TEXT    NOT NULL PRIMARY KEY,
        consent_id      TEXT    NOT NULL,
        message_id      INTEGER NOT NULL,
        opened_at       INTEGER NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error_kind TEXT,
        first_open      INTEGER CHECK (first_open IN (0, 1)),
        dvv_read_at     INTEGER,
        delivered_at    INTEGER,
        UNIQUE (consent_id, message_id)
     ) STRICT;
     CREATE INDEX openings_due ON openings (state, next_attempt_at);
     CREATE INDEX openings_opened_at ON openings (opened_at);
     CREATE TABLE store_health (
        id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        checked_at INTEGER NOT NULL
     ) STRICT;",
    // 2: the events feed position, the webhook delivery queue, and the ledger's retention mark.
    "CREATE TABLE feed_position (
        id                 INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        continuation_token TEXT    NOT NULL,
        events_seen        INTEGER NOT NULL DEFAULT 0,
        updated_at         INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE webhook_deliveries (
        id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT    NOT NULL,
        endpoint        TEXT    NOT NULL,
        event_type      TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        last_error_kind TEXT,
        last_status     INTEGER,
        delivered_at    INTEGER,
        UNIQUE (event_id, endpoint)
     ) STRICT;
     CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
     CREATE TABLE ledger_retention (
        id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        pruned_before INTEGER NOT NULL,
        pruned_at     INTEGER NOT NULL
     ) STRICT;",
];

/// Opens (creating if needed) the database at `path`, applies the durability settings and runs
/// pending migrations. Fails with [`StoreError::Corrupt`] on a schema newer than this build.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    restrict_permissions(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite(format!(
            "journal_mode WAL refused (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > latest_version() {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this build's {}",
            latest_version()
        )));
    }
    let start = usize::try_from(version).unwrap_or(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::CannotOpen(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}
