//! Openings: the record that a citizen opened a message through this window, which earns the
//! operator its compensation.
//!
//! The first time a message body leaves the gateway, [`Outbox::record_opening`] commits an
//! opening (ids and times only) to the store *before* the response starts. The deliverer
//! ([`spawn_deliverer`]) reports it to DVV through an [`OpeningReporter`], retrying with backoff,
//! and keeps DVV's `firstOpen` answer; the opening survives crashes because it is durable before
//! anything else happens. Nothing here knows about HTTP, the DVV client or a database: the store
//! ([`crate::store`]) holds the rows.

pub mod cli;
mod deliverer;
mod probe;

#[cfg(test)]
mod tests;

pub use crate::store::{
    DvvVerdict, OutboxStats, ParkedOpening, PendingOpening, RecordedOpening, StoreError,
    StoreStatus, DATABASE_FILE,
};
pub use deliverer::{
    spawn_deliverer, DelivererSettings, OpeningReporter, ReportError, ReportOutcome,
};
pub use probe::{spawn_store_probe, ProbeSettings};

/// The store handle, under the name the openings path has always used for it: openings are
/// recorded and delivered through [`crate::store::Store`].
pub type Outbox = crate::store::Store;
