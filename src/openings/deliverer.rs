//! The deliverer: reports recorded openings to DVV, concurrently but bounded, at once when one is
//! recorded, with jittered exponential backoff on failure, until each is settled or parked. The
//! loop itself is the store's one claim → send → settle worker ([`crate::store::worker`]); this
//! module says how an opening is sent and settled.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::worker::{self, Work, WorkerSettings};
use crate::store::{DvvVerdict, PendingOpening, Store, StoreError};

/// DVV's answer to a report: whether this operator's window was the first to open the message,
/// when DVV marked it read, and whether that verdict may still change. A 201 and a 409 (the
/// opening as it stands) both give one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOutcome {
    /// `firstOpen`: this report has the earliest corroborated opening (compensation depends on it).
    pub first_open: bool,
    /// `readAt`: when the message became read, in any window.
    pub read_at: DateTime<Utc>,
    /// While the verdict is provisional: when it settles. `None` when settled.
    pub settles_at: Option<DateTime<Utc>>,
}

/// Why a report failed, classified by the reasons the upstream contract names: `permanent` only
/// for a refusal the contract says will never change (such an opening is parked); anything else —
/// network errors, timeouts, 5xx, 429, 401, and every refusal the contract does not name
/// permanent — is retried, because DVV may still accept the opening. `kind` is a stable label for
/// logs, metrics and the parking reason (never content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("reporting the opening failed ({kind})")]
pub struct ReportError {
    /// True only for a refusal the contract names permanent.
    pub permanent: bool,
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
    outbox: Store,
    reporter: Arc<R>,
    settings: DelivererSettings,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let pacing = WorkerSettings {
        concurrency: settings.concurrency,
        poll_interval: settings.poll_interval,
        initial_backoff: settings.initial_backoff,
        max_backoff: settings.max_backoff,
    };
    let work = Arc::new(Openings {
        store: outbox,
        reporter,
        settings,
    });
    // Every replica delivers openings (claims keep them apart): no owner needed.
    tokio::spawn(worker::run(work, pacing, None, shutdown))
}

/// Opening delivery as [`Work`]: due openings from the store, reported to DVV.
struct Openings<R> {
    store: Store,
    reporter: Arc<R>,
    settings: DelivererSettings,
}

impl<R: OpeningReporter> Work for Openings<R> {
    type Item = PendingOpening;
    type Key = String;
    const NAME: &'static str = "openings";

    fn key(item: &PendingOpening) -> String {
        item.opening_id.clone()
    }

    fn claims(&self) -> bool {
        self.store.claims()
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingOpening>, StoreError> {
        self.store.due(now, limit).await
    }

    async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store.next_due_after(now).await
    }

    async fn woken(&self) {
        self.store.recorded().await;
    }

    async fn send_and_settle(self: Arc<Self>, opening: PendingOpening) {
        deliver_one(&self.store, &*self.reporter, &self.settings, opening).await;
    }

    async fn abandoned(&self, opening_id: String) {
        // The report task panicked: treat it as a retryable failure, not a hot loop.
        let at = after(Utc::now(), self.settings.max_backoff);
        if let Err(error) = self.store.mark_failed(&opening_id, "panic", at).await {
            tracing::warn!(kind = error.kind(), "could not record a failed delivery");
        }
    }
}

/// Reports one opening and records the outcome: settled, retried later, or parked.
async fn deliver_one<R: OpeningReporter>(
    outbox: &Store,
    reporter: &R,
    settings: &DelivererSettings,
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
            tracing::debug!(
                opening_id = %opening.opening_id,
                first_open = answer.first_open,
                provisional = answer.settles_at.is_some(),
                "opening delivered"
            );
            let verdict = DvvVerdict {
                first_open: answer.first_open,
                read_at: answer.read_at,
                settles_at: answer.settles_at,
            };
            outbox
                .mark_delivered_with(&opening.opening_id, &verdict)
                .await
        }
        Err(error) if !error.permanent => {
            let delay = backoff(settings, opening.attempts.saturating_add(1));
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
                "opening refused by DVV for a reason the contract names permanent; parked"
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
    worker::backoff(settings.initial_backoff, settings.max_backoff, failures)
}

/// `at + delay`, saturating.
pub(crate) fn after(at: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
