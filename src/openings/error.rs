//! Why the embedded store could not do what was asked, typed so the API can answer 503 rather
//! than release a body whose opening it could not record.

use rusqlite::ErrorCode;

/// A failure of the embedded store. Messages name the kind of failure and SQLite's own text;
/// the store holds no content, so neither can carry any.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the database's size limit) is full.
    #[error("the store's disk is full")]
    DiskFull,
    /// The database or its directory cannot be written.
    #[error("the store is read-only")]
    ReadOnly,
    /// Another writer held the database past the busy timeout.
    #[error("the store is busy")]
    Busy,
    /// The file is not a database, is corrupt, or was written by a newer schema.
    #[error("the store is corrupt or of an unknown schema: {0}")]
    Corrupt(String),
    /// The database file could not be opened (missing directory, permissions).
    #[error("the store cannot be opened: {0}")]
    CannotOpen(String),
    /// An I/O error below SQLite.
    #[error("the store's I/O failed: {0}")]
    Io(String),
    /// Anything else SQLite reported.
    #[error("the store failed: {0}")]
    Sqlite(String),
    /// The shared PostgreSQL store refused a statement (not a lost connection: that is
    /// [`StoreError::Io`]).
    #[error("the shared store failed: {0}")]
    Postgres(String),
    /// The blocking task running the query was lost (runtime shutting down).
    #[error("the store's worker task was lost")]
    Worker,
}

impl StoreError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::ReadOnly => "read_only",
            Self::Busy => "busy",
            Self::Corrupt(_) => "corrupt",
            Self::CannotOpen(_) => "cannot_open",
            Self::Io(_) => "io",
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Worker => "worker",
        }
    }

    /// Whether the store cannot take writes right now: the gateway should answer 503 and report
    /// itself not ready rather than serve content it cannot record.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, Self::Sqlite(_) | Self::Postgres(_))
    }
}

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
