//! The DVV events feed: revocations enforced at once, and the source of the operator's webhooks.
//!
//! [`spawn_feed`] reads `GET /v1/events` from the continuation token stored in the data
//! directory ([`FeedPosition`]). Each page first reaches the consent cache (`Consent revoked`
//! revokes, `Consent granted` invalidates), then its webhooks are queued and the token advanced
//! in one transaction. [`FeedStatus`] exposes plain figures (events, failures, lag) for metrics.

mod consumer;
mod position;
mod status;

#[cfg(test)]
mod tests;

pub use consumer::{spawn_feed, FeedSettings, MAX_PAGE};
pub use position::{Committed, FeedPosition};
pub use status::{FeedStats, FeedStatus};
