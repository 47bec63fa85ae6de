//! Why the store could not do what was asked, typed so the API can answer 503 rather than
//! release a body whose opening it could not record. Each backend maps its driver's errors to
//! these kinds (`sqlite::map_error`, `postgres::pg_error`).

/// A failure of the store. Messages name the kind of failure and the database's own text; the
/// store holds no content, so neither can carry any.
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

    /// The same failure again, for each caller that shared one failed commit.
    pub(crate) fn replicate(&self) -> Self {
        match self {
            Self::DiskFull => Self::DiskFull,
            Self::ReadOnly => Self::ReadOnly,
            Self::Busy => Self::Busy,
            Self::Corrupt(m) => Self::Corrupt(m.clone()),
            Self::CannotOpen(m) => Self::CannotOpen(m.clone()),
            Self::Io(m) => Self::Io(m.clone()),
            Self::Sqlite(m) => Self::Sqlite(m.clone()),
            Self::Postgres(m) => Self::Postgres(m.clone()),
            Self::Worker => Self::Worker,
        }
    }
}
