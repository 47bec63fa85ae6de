//! Where the durable state lives: the backend chosen by `[store] backend`.
//!
//! The store interface is the set of handles the rest of the gateway already uses —
//! [`Outbox`] (openings and ledger), [`crate::webhooks::WebhookQueue`] and
//! [`crate::events::FeedPosition`] — each of which runs its operations on the embedded SQLite
//! file (the default: one process per data directory) or on a shared PostgreSQL database
//! ([`PgStore`]), so several replicas can run behind one load balancer. Both backends pass the
//! same store test suite (`src/store/tests.rs`).
//!
//! With PostgreSQL, three things change beyond the tables: the singleton work runs on one replica
//! at a time ([`owner`]), due openings and webhooks are claimed so replicas share delivery, and
//! consent changes read from the feed reach every replica through `LISTEN/NOTIFY`
//! ([`consent_bus`]). Migrations ship in `migrations/postgres/` and are applied at start.

pub mod consent_bus;
mod feed;
mod openings;
pub mod owner;
mod pg;
mod webhooks;

#[cfg(test)]
mod tests;

pub use consent_bus::{spawn_consent_listener, CONSENT_CHANNEL};
pub use owner::{spawn_owner_election, spawn_while_owner};
pub use pg::PgStore;

use crate::config::{StoreBackend, StoreConfig};
use crate::openings::{Outbox, StoreError};

/// Opens the configured store: the SQLite file in `data_dir`, or the PostgreSQL database
/// (connected, migrated).
pub async fn open(config: &StoreConfig) -> Result<Outbox, StoreError> {
    match &config.backend {
        StoreBackend::Sqlite => Outbox::open_in(&config.data_dir).await,
        StoreBackend::Postgres(pg) => Ok(Outbox::shared(PgStore::connect(pg).await?)),
    }
}
