//! The one worker loop behind opening delivery and webhook dispatch: claim due rows, send each
//! (a few at a time), settle it with the answer. What differs — which rows, how to send, how to
//! settle — is a [`Work`]; the pacing (concurrency, waking at once on new work, sleeping until
//! the next row falls due, backing off while the store is unreadable) is written once here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::StoreError;
use super::ownership::Ownership;

/// One kind of queued work over the store.
pub trait Work: Send + Sync + 'static {
    /// A claimed row.
    type Item: Send + 'static;
    /// What identifies a row while it is in flight.
    type Key: Clone + Eq + Send + Sync + 'static;

    /// A short name for logs (`openings`, `webhooks`).
    const NAME: &'static str;

    /// The row's key.
    fn key(item: &Self::Item) -> Self::Key;

    /// True when [`Work::claim`] hides what it returns from later claims (a shared store), so
    /// only free slots need asking for.
    fn claims(&self) -> bool;

    /// Up to `limit` rows due at `now`.
    fn claim(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;

    /// When the next row not yet due at `now` falls due.
    fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Resolves when new rows were stored (so the loop looks at once).
    fn woken(&self) -> impl Future<Output = ()> + Send;

    /// Sends one row and settles it with the outcome (delivered, retried later, parked).
    fn send_and_settle(self: Arc<Self>, item: Self::Item) -> impl Future<Output = ()> + Send;

    /// The task sending `key` panicked: settle the row as a retryable failure.
    fn abandoned(&self, key: Self::Key) -> impl Future<Output = ()> + Send;
}

/// How a worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Most sends in flight at once.
    pub concurrency: usize,
    /// Longest sleep between looks at the store when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Delay before the first retry after the store could not be read; doubles with each failure.
    pub initial_backoff: Duration,
    /// Longest such delay.
    pub max_backoff: Duration,
}

/// Runs the loop until `shutdown` becomes true (or its sender is dropped), then lets the sends
/// in flight finish. With an `owner`, nothing is claimed or sent unless this process holds the
/// singleton work at that moment (checked before every claim and every send).
pub async fn run<W: Work>(
    work: Arc<W>,
    settings: WorkerSettings,
    owner: Option<Ownership>,
    mut shutdown: watch::Receiver<bool>,
) {
    let concurrency = settings.concurrency.max(1);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Task id → row key, so a finished (or panicked) send frees its slot.
    let mut busy: HashMap<tokio::task::Id, W::Key> = HashMap::new();
    let mut store_failures: u32 = 0;
    let held = |owner: &Option<Ownership>| owner.as_ref().is_none_or(Ownership::is_held);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut wait = settings.poll_interval;
        if busy.len() < concurrency && held(&owner) {
            match fill(&work, &owner, &mut in_flight, &mut busy, concurrency).await {
                Ok(next_due) => {
                    store_failures = 0;
                    if let Some(at) = next_due {
                        let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                        wait = wait.min(until);
                    }
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    tracing::warn!(
                        queue = W::NAME,
                        kind = error.kind(),
                        "queue unreadable; delivery paused"
                    );
                    wait = wait.min(backoff(
                        settings.initial_backoff,
                        settings.max_backoff,
                        store_failures,
                    ));
                }
            }
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(error) => error.id(),
                };
                if let (Some(key), Err(_)) = (busy.remove(&id), &done) {
                    tracing::warn!(queue = W::NAME, "a delivery task failed");
                    work.abandoned(key).await;
                }
            }
            () = work.woken() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Starts sends for due rows not already in flight; returns when the next row that is not yet
/// due falls due.
async fn fill<W: Work>(
    work: &Arc<W>,
    owner: &Option<Ownership>,
    in_flight: &mut JoinSet<()>,
    busy: &mut HashMap<tokio::task::Id, W::Key>,
    concurrency: usize,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let now = Utc::now();
    let free = concurrency.saturating_sub(busy.len());
    // A store that claims never returns the rows in flight: ask only for free slots. Otherwise
    // fetch enough to skip the ones in flight.
    let wanted = if work.claims() {
        free
    } else {
        free + busy.len()
    };
    let due = work.claim(now, wanted).await?;
    for item in due {
        if busy.len() >= concurrency {
            break;
        }
        let key = W::key(&item);
        if busy.values().any(|k| *k == key) {
            continue;
        }
        if let Some(owner) = owner {
            if !owner.is_held() {
                // Lost the singleton work while claiming (or was frozen past the lease): the
                // claimed rows fall due again after the claim period, for the new owner.
                return Ok(None);
            }
        }
        let task = in_flight.spawn(Arc::clone(work).send_and_settle(item));
        busy.insert(task.id(), key);
    }
    if busy.len() >= concurrency {
        return Ok(None);
    }
    work.next_due_after(now).await
}

/// Exponential backoff with jitter: about `initial · 2^(failures−1)`, capped at `max`, drawn
/// uniformly from its upper half so a burst of failures does not retry in lockstep.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let ceiling = initial.saturating_mul(1u32 << exponent).min(max);
    let floor = ceiling / 2;
    if ceiling <= floor {
        return ceiling;
    }
    rand::rng().random_range(floor..=ceiling)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_within_bounds() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for failures in 1..40 {
            let d = backoff(initial, max, failures);
            assert!(d <= max, "{failures}: {d:?}");
            let ceiling = (initial * 2u32.pow(failures.saturating_sub(1).min(20))).min(max);
            assert!(d >= ceiling / 2, "{failures}: {d:?}");
        }
    }
}
