//! Openings: the record that a citizen opened a message through this window, which earns the
//! operator its compensation.
//!
//! The first time a message body leaves the gateway, [`Outbox::record_opening`] commits an
//! opening (ids and times only) to the embedded SQLite store *before* the response starts. The
//! deliverer ([`spawn_deliverer`]) reports it to DVV through an [`OpeningReporter`], retrying
//! with backoff, and keeps DVV's `firstOpen` answer; the opening survives crashes because it is
//! on disk before anything else happens. Nothing here knows about HTTP or the DVV client.

mod deliverer;
mod error;
mod health;
mod outbox;
mod schema;

#[cfg(test)]
mod tests;

pub use deliverer::{
    spawn_deliverer, DelivererSettings, OpeningReporter, ReportError, ReportOutcome,
};
pub use error::StoreError;
pub use health::{spawn_store_probe, ProbeSettings, StoreStatus};
pub use outbox::{Outbox, OutboxStats, PendingOpening, RecordedOpening, DATABASE_FILE};
