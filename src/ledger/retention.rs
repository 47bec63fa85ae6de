//! Retention: delivered openings older than `ledger.retention_days` are deleted (the ledger keeps
//! ids and times only, and only as long as a compensation check needs them). Openings not yet
//! settled with DVV are never pruned: they are still money.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{Store, StoreError};

/// How often the pruning runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes delivered openings opened more than `retention` ago and records the cut-off (the
/// report shows it). Returns how many were deleted.
pub async fn prune(store: &Store, retention: Duration) -> Result<usize, StoreError> {
    let now = Utc::now().timestamp_millis();
    let cutoff = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    store.prune_ledger(cutoff).await
}

/// Runs [`prune`] at start and then every [`PRUNE_EVERY`] until `shutdown`.
pub fn spawn_retention(
    store: Store,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match prune(&store, retention).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "ledger: pruned openings past retention"),
                Err(error) => tracing::warn!(kind = error.kind(), "ledger: pruning failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
    })
}
