//! Opening the SQLite file safely (WAL, `synchronous=FULL`, busy timeout, owner-only file) and
//! bringing its schema up to date through `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::store::error::StoreError;

/// How long a statement waits for another writer before failing with [`StoreError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations (`migrations/sqlite/`), applied in order; `user_version` counts how many
/// have run. Append only: never edit a migration that has shipped.
///
/// The store holds ids and times only — never a title, a body, an attachment or an identity code.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_openings.sql"),
    include_str!("../../../migrations/sqlite/0002_feed_webhooks_ledger.sql"),
    include_str!("../../../migrations/sqlite/0003_opening_verdicts.sql"),
    include_str!("../../../migrations/sqlite/0004_reminders.sql"),
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
