//! The shared backend: one PostgreSQL database used by every replica, reached over TLS
//! ([`tls`]) through a pool of connections. Its schema migrations ship in `migrations/postgres/`
//! and are applied at start under an advisory lock, so replicas starting together migrate once.
//! Beyond the tables, replicas coordinate here: due rows are claimed, the singleton work has one
//! owner at a time under a lease ([`owner`]), and consent changes are logged and notified
//! ([`consent_bus`]).

mod backend;
mod consent_bus;
mod feed;
mod openings;
mod owner;
mod reminders;
mod tls;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{trimmed_secret, PostgresConfig, SslMode};
use crate::store::error::StoreError;

/// The migrations, in order: (version, name, SQL). Append only.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "0002_owner_lease_consent_changes",
        include_str!("../../../migrations/postgres/0002_owner_lease_consent_changes.sql"),
    ),
    (
        3,
        "0003_opening_verdicts",
        include_str!("../../../migrations/postgres/0003_opening_verdicts.sql"),
    ),
    (
        4,
        "0004_reminders",
        include_str!("../../../migrations/postgres/0004_reminders.sql"),
    ),
];

/// Advisory lock key held (per transaction) while migrating: "ikkuna" + 1.
const MIGRATION_LOCK: i64 = 0x0069_6b6b_756e_6101;

/// How long a caller waits for a pooled connection, and a new connection for its handshake.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A connection of the store's own, outside the pool (driven by the caller).
pub(crate) type Dedicated = (
    tokio_postgres::Client,
    tokio_postgres::Connection<
        tokio_postgres::Socket,
        <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
    >,
);

/// The shared store: a pool of connections to one PostgreSQL database, used by every replica.
/// Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    claim: Duration,
    owner_retry: Duration,
    owner_lease: Duration,
    /// This process's name in the owner lease (random per start).
    holder: String,
    /// The last consent change logged when this process connected: its listener catches up
    /// from here.
    consent_seq_at_start: i64,
}

impl PgStore {
    /// Connects over the configured TLS (the password read from its file), checks the server
    /// answers, and applies pending migrations. A TLS failure names the setting to look at.
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
        // TLS never runs over a Unix socket (PostgreSQL does not offer it there).
        let tcp = config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_)));
        let mode = if tcp {
            settings.tls.mode
        } else {
            SslMode::Disable
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("ikkuna");
        }
        config
            .connect_timeout(POOL_WAIT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let tls = tls::connector(&settings.tls)?;
        // A first connection of its own, so a refused handshake is explained (the pool would
        // only say it timed out).
        let (client, connection) = config.connect(tls.clone()).await.map_err(|e| {
            tls::explain(&e, mode).map_or_else(|| pg_error(e), StoreError::CannotOpen)
        })?;
        let driver = tokio::spawn(connection);
        drop(client);
        let _ = driver.await;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
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
        let mut client = pool.get().await.map_err(pool_error)?;
        migrate(&mut client).await?;
        let consent_seq_at_start = client
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM consent_changes", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        drop(client);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                claim: settings.claim,
                owner_retry: settings.owner_retry,
                owner_lease: settings.owner_lease,
                holder: uuid::Uuid::new_v4().to_string(),
                consent_seq_at_start,
            }),
        })
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// A connection of its own, outside the pool (for `LISTEN`), named `application_name` so an
    /// operator (or a test) can tell it apart. The caller drives the returned connection future.
    pub(crate) async fn dedicated(&self, application_name: &str) -> Result<Dedicated, StoreError> {
        let mut config = self.inner.config.clone();
        config.application_name(application_name);
        config
            .connect(self.inner.tls.clone())
            .await
            .map_err(pg_error)
    }

    /// How long a replica's claim on a due opening or webhook lasts before another replica may
    /// take it (a replica killed mid-delivery delays that row by at most this).
    pub(crate) fn claim(&self) -> Duration {
        self.inner.claim
    }

    /// How often a replica that does not own the singleton work tries to take it over (and a
    /// lost `LISTEN` connection is re-opened).
    pub(crate) fn owner_retry(&self) -> Duration {
        self.inner.owner_retry
    }

    /// How long the owner's lease lasts without renewal.
    pub(crate) fn owner_lease(&self) -> Duration {
        self.inner.owner_lease
    }

    /// This process's name in the owner lease.
    pub(crate) fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The last consent change logged when this process connected.
    pub(crate) fn consent_seq_at_start(&self) -> i64 {
        self.inner.consent_seq_at_start
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
