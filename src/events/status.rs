//! What the feed consumer reports about itself, for metrics and readiness: plain numbers.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

/// The feed consumer's figures (the telemetry module reads these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Feed events processed since this process started.
    pub events_total: u64,
    /// Pages read since this process started.
    pub pages_total: u64,
    /// Failed polls (DVV or store) since this process started.
    pub failures_total: u64,
    /// Failed polls in a row right now (0 when the last poll worked).
    pub consecutive_failures: u64,
    /// How far behind the feed this gateway may be: the time since a poll last reached the end of
    /// the feed (`None` before the first time). With DVV up it stays below the poll interval.
    pub lag: Option<Duration>,
    /// Time since the last successful poll.
    pub since_last_poll: Option<Duration>,
}

#[derive(Default)]
struct Inner {
    events: AtomicU64,
    pages: AtomicU64,
    failures: AtomicU64,
    consecutive: AtomicU64,
    /// Unix ms of the last poll that reached the end of the feed; 0 = never.
    caught_up_at: AtomicI64,
    /// Unix ms of the last successful poll; 0 = never.
    polled_at: AtomicI64,
}

/// Shared, lock-free status of the feed consumer. Cheap to clone.
#[derive(Clone, Default)]
pub struct FeedStatus {
    inner: Arc<Inner>,
}

impl FeedStatus {
    /// A page of `events` events was processed; `at_end` when it reached the end of the feed.
    pub(crate) fn page(&self, events: usize, at_end: bool) {
        let i = &self.inner;
        let now = Utc::now().timestamp_millis();
        i.events
            .fetch_add(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
        i.pages.fetch_add(1, Ordering::Relaxed);
        i.consecutive.store(0, Ordering::Relaxed);
        i.polled_at.store(now, Ordering::Relaxed);
        if at_end {
            i.caught_up_at.store(now, Ordering::Relaxed);
        }
    }

    /// A poll failed.
    pub(crate) fn failure(&self) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        self.inner.consecutive.fetch_add(1, Ordering::Relaxed);
    }

    /// The current figures.
    pub fn stats(&self) -> FeedStats {
        let i = &self.inner;
        let now = Utc::now().timestamp_millis();
        let age =
            |at: i64| (at > 0).then(|| Duration::from_millis(u64::try_from(now - at).unwrap_or(0)));
        FeedStats {
            events_total: i.events.load(Ordering::Relaxed),
            pages_total: i.pages.load(Ordering::Relaxed),
            failures_total: i.failures.load(Ordering::Relaxed),
            consecutive_failures: i.consecutive.load(Ordering::Relaxed),
            lag: age(i.caught_up_at.load(Ordering::Relaxed)),
            since_last_poll: age(i.polled_at.load(Ordering::Relaxed)),
        }
    }
}
