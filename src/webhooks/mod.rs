//! Webhooks: DVV's feed events pushed to the operator's HTTPS endpoints, signed, durable.
//!
//! The events feed ([`crate::events`]) turns each page into [`WebhookEvent`]s and enqueues one
//! delivery per endpoint in the same store transaction that advances its position. The
//! dispatcher ([`spawn_dispatcher`]) POSTs them with an
//! `Ikkuna-Signature` header ([`signature`]), retries failures with backoff and parks a delivery
//! after `webhooks.max_attempts`; `ikkuna webhooks parked|replay` ([`cli`]) lists and re-queues
//! parked ones. Bodies carry ids, types and times, and on `message.created` a notification hint
//! ([`hint`]) built from the sender's settings: never a title or body, never a hidden sender,
//! never an identity code.

pub mod cli;
mod client;
mod dispatcher;
pub mod hint;
mod payload;
mod queue;
pub mod signature;

#[cfg(test)]
mod tests;

pub use client::{SendError, WebhookClient, WebhookSetupError};
pub use dispatcher::{spawn_dispatcher, DispatcherSettings};
pub use payload::{webhook_id, webhook_type, WebhookEvent};
pub(crate) use queue::{deliveries, delivery};
pub use queue::{ParkedDelivery, PendingDelivery, WebhookQueue, WebhookStats, DELIVERED_RETENTION};
