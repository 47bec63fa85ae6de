//! Where the durable state lives, behind one interface: openings (the outbox and the ledger),
//! webhook deliveries, the events feed position, the reminder schedule and the consent changes
//! replicas share.
//!
//! [`Backend`](backend::Backend) is the storage interface; [`sqlite`] (the embedded file, the
//! default: one process per data directory) and [`postgres`] (a database several replicas
//! share) implement it, each with its own migrations folder (`migrations/sqlite/`,
//! `migrations/postgres/`). [`open`] is the one place that chooses between them. [`Store`] is
//! the handle everything else uses: it calls the backend, then does the side effects of storage
//! once for both — store health (fail closed on a full or read-only disk or a lost database),
//! waking the workers, counters. [`worker`] is the one claim → send → settle loop that delivers
//! openings and webhooks over it.
//!
//! Nothing here depends on the layers above: rows are ids, times and counts
//! ([`types`]), and consent changes leave through a callback ([`ConsentSink`]).

mod backend;
mod error;
mod handle;
mod health;
mod ownership;
pub mod postgres;
pub mod sqlite;
mod types;
pub mod worker;

#[cfg(test)]
mod tests;

pub use backend::ConsentSink;
pub use error::StoreError;
pub use handle::{Store, WebhookTotals};
pub use health::StoreStatus;
pub use ownership::{spawn_while_owner, Ownership};
pub use sqlite::DATABASE_FILE;
pub use types::{
    Committed, ConsentChange, DeliveryCounts, DvvVerdict, FiredReminder, LedgerOpening,
    MonthFigures, NewDelivery, NewReminder, OpeningState, OutboxStats, ParkedDelivery,
    ParkedOpening, PendingDelivery, PendingOpening, RecordedOpening, ReminderChange,
    ReminderDelivery,
};

use crate::config::{StoreBackend, StoreConfig};

/// Opens the configured store: the SQLite file in `data_dir`, or the PostgreSQL database
/// (connected over the configured TLS, migrated). The only place that chooses the backend.
pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
    match &config.backend {
        StoreBackend::Sqlite => Store::open_in(&config.data_dir).await,
        StoreBackend::Postgres(pg) => Ok(Store::new(std::sync::Arc::new(
            postgres::PgStore::connect(pg).await?,
        ))),
    }
}
