//! `ikkuna webhooks parked` and `ikkuna webhooks replay`: what an operator does after fixing an
//! endpoint that was down for longer than the retries cover.

use super::queue::WebhookQueue;
use crate::openings::{Outbox, StoreError};

/// Most parked deliveries listed at once.
pub const LIST_LIMIT: usize = 10_000;

/// The parked deliveries as JSON lines (one object per line), or a note when there are none.
pub async fn parked(store: Outbox) -> Result<String, StoreError> {
    let parked = WebhookQueue::new(store).parked(LIST_LIMIT).await?;
    let mut out = String::new();
    for delivery in &parked {
        out.push_str(&serde_json::to_string(delivery).unwrap_or_default());
        out.push('\n');
    }
    Ok(out)
}

/// Re-queues the parked deliveries `ids` (all when empty); returns a one-line summary.
pub async fn replay(store: Outbox, ids: &[i64]) -> Result<String, StoreError> {
    let count = WebhookQueue::new(store).replay(ids).await?;
    Ok(format!(
        "{count} parked webhook deliver{} queued again; a running gateway sends them within seconds",
        if count == 1 { "y" } else { "ies" }
    ))
}
