//! Retry budget of one logical call: jittered exponential backoff, at most `max_retries`, and only
//! while the call's deadline leaves time for the wait plus a useful attempt.

use std::time::Duration;

/// First backoff step.
const BASE: Duration = Duration::from_millis(50);
/// Largest backoff step.
const CAP: Duration = Duration::from_secs(2);
/// Least time an attempt after a wait must still have before the deadline to be worth making.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// When and how often a failed idempotent call is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff step.
    pub base: Duration,
    /// Largest backoff step.
    pub cap: Duration,
    /// Least time left for an attempt after the wait.
    pub min_attempt: Duration,
}

impl RetryPolicy {
    /// The policy for `max_retries` with the default steps.
    pub(crate) fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base: BASE,
            cap: CAP,
            min_attempt: MIN_ATTEMPT,
        }
    }

    /// The wait before retry number `retry` (1-based): the exponential step `base·2^(retry-1)`
    /// capped at `cap`, of which the upper half is jittered by `jitter` in `[0, 1]` ("equal
    /// jitter": never zero, so replicas do not retry in lock-step and do not hammer DVV).
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let step = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Whether retry number `retry`, after waiting `delay`, fits in the `remaining` time.
    pub(crate) fn allows(&self, retry: u32, delay: Duration, remaining: Duration) -> bool {
        retry <= self.max_retries && delay.saturating_add(self.min_attempt) <= remaining
    }
}

/// A jitter fraction in `[0, 1)`.
pub(crate) fn jitter() -> f64 {
    rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let policy = RetryPolicy::new(3);
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(25));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(2, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(3, 1.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(30, 1.0), CAP, "capped");
        assert_eq!(policy.backoff(30, 0.0), CAP / 2, "never zero");
        for _ in 0..100 {
            let delay = policy.backoff(2, jitter());
            assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(100));
        }
    }

    #[test]
    fn retries_stop_at_the_count_and_at_the_deadline() {
        let policy = RetryPolicy::new(3);
        let plenty = Duration::from_secs(10);
        assert!(policy.allows(1, Duration::from_millis(50), plenty));
        assert!(policy.allows(3, Duration::from_millis(50), plenty));
        assert!(
            !policy.allows(4, Duration::from_millis(50), plenty),
            "max_retries"
        );
        // The wait plus a minimal attempt must fit in what is left.
        assert!(policy.allows(1, Duration::from_millis(400), Duration::from_millis(500)));
        assert!(!policy.allows(1, Duration::from_millis(401), Duration::from_millis(500)));
        assert!(!policy.allows(1, Duration::ZERO, Duration::from_millis(99)));
        assert!(
            !RetryPolicy::new(0).allows(1, Duration::ZERO, plenty),
            "no retries"
        );
    }

    #[test]
    fn total_worst_case_wait_is_bounded() {
        // With 10 retries (the configuration's maximum) the waits alone stay under 12 s; the call
        // deadline cuts them shorter still.
        let policy = RetryPolicy::new(10);
        let total: Duration = (1..=10).map(|retry| policy.backoff(retry, 1.0)).sum();
        assert!(total < Duration::from_secs(12), "{total:?}");
    }
}
