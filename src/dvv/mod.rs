//! The DVV upstream client: the one module that speaks the (hypothetical) viewing-connection API
//! of `docs/dvv-viewing-api.yaml`, so that when DVV publishes the real API only this module changes.
//!
//! One job per submodule: [`contract`] (the JSON shapes), [`error`] (typed failures), `tls`
//! (mutual TLS trusting only the configured CA), `assertion` (`private_key_jwt` client
//! assertions), `token` (the cached access token, single-flight renewal), `retry` (backoff inside
//! the deadline), `body` (streamed bodies with an idle timeout), `transport` (the pooled HTTPS
//! client and response classification) and `client` ([`DvvClient`], the calls).
//!
//! This module knows nothing of the operator API that calls it.

mod assertion;
mod body;
pub mod canonical;
mod client;
pub mod contract;
pub mod error;
mod retry;
mod tls;
mod token;
mod transport;
pub mod upload;

pub use client::{AttachmentBody, AttachmentStream, DvvClient, Upstream};
pub use contract::{
    AttachmentMeta, BodyFormat, ConsentRecord, ConsentState, Event, EventMetadata, EventPage,
    EventType, FirstOpenStatus, MessageDetail, MessagePage, MessageServiceType, MessageSummary,
    OpeningAnswer, OpeningRefusal, OpeningReport, ReceiptAnswer, ReplyAllowedBy, ReplyFile,
    ReplyLimits, ReplyPolicy, ReplyReceipt, StatementEntry, StatementPage, Timestamp,
};
pub use contract::{
    CustomisedNotification, Localised, MessageNotifications, ReminderPolicy, SenderDetails,
    UnreadMessageNotification,
};
pub use error::{DvvError, DvvSetupError};

#[cfg(test)]
pub(crate) mod testing;
