//! `ikkuna openings parked` and `ikkuna openings replay`: what an operator does about openings
//! DVV refused for a reason the contract names permanent (after checking the cause, or after DVV
//! corrected its side).

use super::{Outbox, StoreError};

/// Most parked openings listed at once.
pub const LIST_LIMIT: usize = 10_000;

/// The parked openings as JSON lines (one object per line: ids, times, attempts and the reason,
/// never a consent or an identity code); empty when there are none.
pub async fn parked(store: Outbox) -> Result<String, StoreError> {
    let mut out = String::new();
    for opening in &store.parked_openings(LIST_LIMIT).await? {
        out.push_str(&serde_json::to_string(opening).unwrap_or_default());
        out.push('\n');
    }
    Ok(out)
}

/// Puts the parked openings `ids` (all when empty) back in line; returns a one-line summary.
pub async fn replay(store: Outbox, ids: &[String]) -> Result<String, StoreError> {
    let count = store.replay_openings(ids).await?;
    Ok(format!(
        "{count} parked opening{} queued again; a running gateway reports {} within seconds",
        if count == 1 { "" } else { "s" },
        if count == 1 { "it" } else { "them" }
    ))
}
