//! The PostgreSQL connection pool, its error mapping, and the schema migrations shipped in
//! `migrations/postgres/`, applied at start under an advisory lock so that replicas starting
//! together migrate once.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::config::{trimmed_secret, PostgresConfig};
use crate::openings::StoreError;

/// The migrations, in order: (version, name, SQL). Append only.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "0001_initial",
    include_str!("../../migrations/postgres/0001_initial.sql"),
)];

/// Advisory lock key held (per transaction) while migrating: "ikkuna" + 1.
const MIGRATION_LOCK: i64 = 0x0069_6b6b_756e_6101;

/// How long a caller waits for a pooled connection, and a new connection for its handshake.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The shared store: a pool of connections to one PostgreSQL database, used by every replica.
/// Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    claim: Duration,
    owner_retry: Duration,
}

impl PgStore {
    /// Connects (the password read from its file), checks the server answers, and applies
    /// pending migrations.
    pub async fn connect(settings: &PostgresConfig) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|_| StoreError::CannotOpen("store.url is not a connection string".into()))?;
        if let Some(password) = &settings.password {
            let secret = password
                .read()
                .map_err(|e| StoreError::CannotOpen(format!("store.password_file: {e}")))?;
            config.password(trimmed_secret(secret.expose()));
        }
        config
            .application_name("ikkuna")
            .connect_timeout(POOL_WAIT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::CannotOpen(format!("postgres pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                config,
                claim: settings.claim,
                owner_retry: settings.owner_retry,
            }),
        };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        Ok(store)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// A connection of its own, outside the pool (for a session advisory lock or `LISTEN`). The
    /// caller drives the returned connection future.
    pub(crate) async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        StoreError,
    > {
        self.inner.config.connect(NoTls).await.map_err(pg_error)
    }

    /// How long a replica's claim on a due opening or webhook lasts before another replica may
    /// take it (a replica killed mid-delivery delays that row by at most this).
    pub(crate) fn claim(&self) -> Duration {
        self.inner.claim
    }

    /// How often a replica that does not own the singleton work tries to take it over.
    pub fn owner_retry(&self) -> Duration {
        self.inner.owner_retry
    }
}

async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ikkuna_migrations (
            version    INTEGER     NOT NULL PRIMARY KEY,
            name       TEXT        NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_error)?;
    let applied: Option<i32> = tx
        .query_one("SELECT MAX(version) FROM ikkuna_migrations", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let applied = applied.unwrap_or(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > latest {
        return Err(StoreError::Corrupt(format!(
            "schema version {applied} is newer than this build's {latest}"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO ikkuna_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(version, name, "store: migration applied");
    }
    tx.commit().await.map_err(pg_error)
}

/// Maps a driver error to the store's kinds: a lost connection makes the store unavailable (503,
/// not ready), like a full disk does for SQLite. Only the server's message and SQLSTATE are kept
/// (its detail may quote row values).
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else {
        return StoreError::Io(format!("postgres connection: {error}"));
    };
    let code = db.code();
    let text = format!("{} ({})", db.message(), code.code());
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        StoreError::DiskFull
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        StoreError::ReadOnly
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
    {
        StoreError::Busy
    } else if code.code().starts_with("08") || code.code().starts_with("57") {
        StoreError::Io(text)
    } else if code.code().starts_with("28") || code.code().starts_with("3D") {
        StoreError::CannotOpen(text)
    } else {
        StoreError::Postgres(text)
    }
}

fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) => StoreError::Busy,
        other => StoreError::Io(format!("postgres pool: {other}")),
    }
}

/// Unix milliseconds now.
pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `now + d` in unix milliseconds, saturating.
pub(crate) fn millis_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time back to a `DateTime`.
pub(crate) fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

/// A count from the database (never negative) as `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
