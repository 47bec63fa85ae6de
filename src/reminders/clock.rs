//! The reminder scheduler's time source, injected so that tests let a week pass in seconds.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Where the scheduler reads "now".
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, run ahead by a fixed offset (zero in production; the configuration refuses
/// any other value unless DVV is a sandbox on this machine).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    offset: TimeDelta,
}

impl SystemClock {
    /// The system clock run `offset` ahead.
    pub fn ahead_by(offset: Duration) -> Self {
        Self {
            offset: TimeDelta::from_std(offset).unwrap_or(TimeDelta::zero()),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// A clock that stands still until moved: for tests of the scheduler in one process.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += TimeDelta::from_std(by).unwrap_or(TimeDelta::zero());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_runs_ahead_by_its_offset_and_a_manual_one_moves_when_told() {
        let week = Duration::from_secs(7 * 86_400);
        let ahead = SystemClock::ahead_by(week).now() - Utc::now();
        assert!(
            ahead > TimeDelta::days(7) - TimeDelta::seconds(5),
            "{ahead}"
        );
        assert!(ahead <= TimeDelta::days(7), "{ahead}");
        let start = Utc::now();
        let manual = ManualClock::new(start);
        assert_eq!(manual.now(), start);
        manual.advance(week);
        assert_eq!(manual.now(), start + TimeDelta::days(7));
    }
}
