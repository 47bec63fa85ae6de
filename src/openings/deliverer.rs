//! The deliverer: reports recorded openings to DVV, concurrently but bounded, at once when one is
//! recorded, with jittered exponential backoff on failure, until each is settled or parked.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::outbox::{after, Outbox, PendingOpening};

/// DVV's answer to a report: whether this operator's window was the first to open the message,
/// and when DVV marked it read. A 201 and a 409 (the original answer repeated) both give one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOutcome {
    /// `firstOpen`: this report won the first-open arbitration (compensation depends on it).
    pub first_open: bool,
    /// `readAt`: when the message became read, in any window.
    pub read_at: DateTime<Utc>,
}

/// Why a report failed: whether trying again may help, and a stable label for logs and metrics
/// (never content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("reporting the opening failed ({kind})")]
pub struct ReportError {
    /// True for network errors, timeouts, 5xx and 429; false for answers that will not change
    /// (400, 403, 404).
    pub retryable: bool,
    /// A stable snake_case label.
    pub kind: &'static str,
}

/// Reports one opening to DVV (`POST .../messages/{messageId}/openings`). The DVV client
/// implements it; tests use a fake. Called again with the same `opening_id` and `opened_at` after
/// a failure or a restart, so the report must be idempotent on `opening_id`.
pub trait OpeningReporter: Send + Sync + 'static {
    /// Reports the opening and returns DVV's answer.
    fn report(
        &self,
        consent_id: &str,
        message_id: i64,
        opening_id: &str,
        opened_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<ReportOutcome, ReportError>> + Send;
}

/// How the deliverer paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelivererSettings {
    /// Most reports in flight at once.
    pub concurrency: usize,
    /// Longest sleep between looks at the outbox when nothing wakes the deliverer.
    pub poll_interval: Duration,
    /// Delay before the first retry; doubles with each further failure.
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
}

impl Default for DelivererSettings {
    /// 8 in flight, poll every 5 s, retry after 1 s doubling up to 5 minutes.
    fn default() -> Self {
        Self {
            concurrency: 8,
            poll_interval: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Starts the deliverer on the current tokio runtime. It stops taking new openings when
/// `shutdown` becomes true (or its sender is dropped), lets the reports in flight finish, and
/// then its task ends. Anything not yet settled stays pending in the store for the next start.
pub fn spawn_deliverer<R: OpeningReporter>(
    outbox: Outbox,
    reporter: Arc<R>,
    settings: DelivererSettings,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(outbox, reporter, settings, shutdown))
}

async fn run<R: OpeningReporter>(
    outbox: Outbox,
    reporter: Arc<R>,
    settings: DelivererSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let concurrency = settings.concurrency.max(1);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut busy: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut store_failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut wait = settings.poll_interval;
        if busy.len() < concurrency {
            match fill(
                &outbox,
                &reporter,
                &settings,
                &mut in_flight,
                &mut busy,
                concurrency,
            )
            .await
            {
                Ok(next_due) => {
                    store_failures = 0;
                    if let Some(at) = next_due {
                        let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                        wait = wait.min(until);
                    }
                }
                Err(kind) => {
                    store_failures = store_failures.saturating_add(1);
                    tracing::warn!(kind, "openings outbox unreadable; delivery paused");
                    wait = wait.min(backoff(&settings, store_failures));
                }
            }
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(error) => error.id(),
                };
                if let (Some(opening_id), Err(_)) = (busy.remove(&id), &done) {
                    // The report task panicked: treat it as a retryable failure, not a hot loop.
                    let at = after(Utc::now(), settings.max_backoff);
                    if let Err(error) = outbox.mark_failed(&opening_id, "panic", at).await {
                        tracing::warn!(kind = error.kind(), "could not record a failed delivery");
                    }
                }
            }
            () = outbox.recorded() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {
                // A dropped sender also means stop: nobody can ever ask us to continue.
                break;
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Starts reports for due openings not already in flight; returns when the next pending
/// opening that is not yet due falls due, or the kind of the store failure.
async fn fill<R: OpeningReporter>(
    outbox: &Outbox,
    reporter: &Arc<R>,
    settings: &DelivererSettings,
    in_flight: &mut JoinSet<()>,
    busy: &mut HashMap<tokio::task::Id, String>,
    concurrency: usize,
) -> Result<Option<DateTime<Utc>>, &'static str> {
    let now = Utc::now();
    let free = concurrency.saturating_sub(busy.len());
    // Fetch enough to skip the ones already in flight: if that fills every free slot, the
    // completions wake the loop; if not, every due opening is now in flight.
    // A shared store claims what it returns (never the ones in flight): ask only for free slots.
    let wanted = if outbox.postgres().is_some() {
        free
    } else {
        free + busy.len()
    };
    let due = outbox.due(now, wanted).await.map_err(|e| e.kind())?;
    for opening in due {
        if busy.len() >= concurrency {
            break;
        }
        if busy.values().any(|id| *id == opening.opening_id) {
            continue;
        }
        let opening_id = opening.opening_id.clone();
        let task = in_flight.spawn(deliver_one(
            outbox.clone(),
            Arc::clone(reporter),
            *settings,
            opening,
        ));
        busy.insert(task.id(), opening_id);
    }
    if busy.len() >= concurrency {
        return Ok(None);
    }
    outbox.next_due_after(now).await.map_err(|e| e.kind())
}

/// Reports one opening and records the outcome: settled, retried later, or parked.
async fn deliver_one<R: OpeningReporter>(
    outbox: Outbox,
    reporter: Arc<R>,
    settings: DelivererSettings,
    opening: PendingOpening,
) {
    let outcome = reporter
        .report(
            &opening.consent_id,
            opening.message_id,
            &opening.opening_id,
            opening.opened_at,
        )
        .await;
    let stored = match outcome {
        Ok(answer) => {
            tracing::debug!(opening_id = %opening.opening_id, first_open = answer.first_open, "opening delivered");
            outbox
                .mark_delivered(&opening.opening_id, answer.first_open, answer.read_at)
                .await
        }
        Err(error) if error.retryable => {
            let delay = backoff(&settings, opening.attempts.saturating_add(1));
            tracing::info!(
                opening_id = %opening.opening_id,
                kind = error.kind,
                attempts = opening.attempts + 1,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "opening delivery failed; will retry"
            );
            outbox
                .mark_failed(&opening.opening_id, error.kind, after(Utc::now(), delay))
                .await
        }
        Err(error) => {
            tracing::warn!(
                opening_id = %opening.opening_id,
                kind = error.kind,
                "opening refused by DVV for good; parked"
            );
            outbox.park(&opening.opening_id, error.kind).await
        }
    };
    if let Err(error) = stored {
        // The opening stays pending and is reported again; DVV's idempotency settles it then.
        tracing::warn!(opening_id = %opening.opening_id, kind = error.kind(), "could not record a delivery outcome");
    }
}

/// Exponential backoff with jitter: about `initial · 2^(failures−1)`, capped, drawn uniformly
/// from its upper half so a burst of failures does not retry in lockstep.
pub(crate) fn backoff(settings: &DelivererSettings, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let ceiling = settings
        .initial_backoff
        .saturating_mul(1u32 << exponent)
        .min(settings.max_backoff);
    let floor = ceiling / 2;
    if ceiling <= floor {
        return ceiling;
    }
    rand::rng().random_range(floor..=ceiling)
}
