//! `[reminders]`: when an unread message is reminded about (the `message.reminder` webhook), how
//! often, and — for tests against a local sandbox only — how far the reminder clock runs ahead.

use std::time::Duration;

use super::Checker;
use crate::config::raw::RawReminders;
use crate::config::DvvConfig;

/// Default `reminders.delay_hours`: a week, as Suomi.fi Messages reminds.
pub const DEFAULT_REMINDER_DELAY_HOURS: u64 = 168;
/// Default `reminders.receipt_delay_hours`: three days for a message waiting for a receipt.
pub const DEFAULT_RECEIPT_REMINDER_DELAY_HOURS: u64 = 72;
/// Default `reminders.max_count`: one reminder per unread message.
pub const DEFAULT_REMINDER_MAX_COUNT: u64 = 1;

/// `[reminders]`: the `message.reminder` schedule (sent only where webhooks are configured and
/// the sender allowed reminders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemindersConfig {
    /// Wait after a message arrived before the first reminder, and between reminders.
    pub delay: Duration,
    /// The same for a `Verifiable` message, whose receipt is still to be confirmed.
    pub receipt_delay: Duration,
    /// Most reminders per message; 0 turns reminders off.
    pub max_count: u32,
    /// How often the schedule is looked at.
    pub poll_interval: Duration,
    /// How far the reminder clock runs ahead of the real one: only for tests against a sandbox
    /// on this machine (refused unless `dvv.base_url` is a loopback address), so that a week
    /// passes in a test in seconds. Zero in production.
    pub clock_offset: Duration,
}

impl Checker {
    pub(super) fn reminders(
        &mut self,
        raw: RawReminders,
        dvv: Option<&DvvConfig>,
    ) -> Option<RemindersConfig> {
        let hours = |h: u64| Duration::from_secs(h * 3_600);
        let delay = self
            .number(
                "reminders.delay_hours",
                raw.delay_hours,
                DEFAULT_REMINDER_DELAY_HOURS,
                1..=8_760,
            )
            .map(hours);
        let receipt_delay = self
            .number(
                "reminders.receipt_delay_hours",
                raw.receipt_delay_hours,
                DEFAULT_RECEIPT_REMINDER_DELAY_HOURS,
                1..=8_760,
            )
            .map(hours);
        let max_count = self
            .count(
                "reminders.max_count",
                raw.max_count,
                DEFAULT_REMINDER_MAX_COUNT,
                0..=10,
            )
            .and_then(|n| u32::try_from(n).ok());
        let poll_interval = self.millis(
            "reminders.poll_interval_ms",
            raw.poll_interval_ms,
            10_000,
            50..=600_000,
        );
        let clock_offset = self.secs(
            "reminders.clock_offset_secs",
            raw.clock_offset_secs,
            0,
            0..=31_622_400,
        );
        if clock_offset.is_some_and(|o| !o.is_zero()) {
            let local = dvv.is_some_and(|d| match d.base_url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => false,
            });
            if !local {
                self.invalid(
                    "reminders.clock_offset_secs",
                    "is for tests against a sandbox on this machine: allowed only when \
                     dvv.base_url is a loopback address",
                );
            }
        }
        Some(RemindersConfig {
            delay: delay?,
            receipt_delay: receipt_delay?,
            max_count: max_count?,
            poll_interval: poll_interval?,
            clock_offset: clock_offset?,
        })
    }
}
