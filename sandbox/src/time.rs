//! Timestamps in the contract's single format: RFC 3339, UTC, millisecond precision.
//!
//! Everything the sandbox stores is truncated to milliseconds on entry, so a value read back
//! from the journal or compared after a round trip through JSON is exactly the value that was
//! printed.
//!
//! DVV's clock can be moved forward (`POST /admin/clock`), so that a test lets a week pass in
//! seconds: every time the sandbox stamps (events, consents, openings, retention) reads [`now`],
//! which adds the offset. The offset belongs to the process (the sandbox stands for one DVV) and
//! only grows; it is not journaled, so a restarted sandbox is back on the real clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time as the sandbox keeps it.
pub type Timestamp = DateTime<Utc>;

/// How far DVV's clock is ahead of the real one, in milliseconds.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The current time on DVV's clock, truncated to milliseconds.
pub fn now() -> Timestamp {
    let offset = chrono::Duration::milliseconds(OFFSET_MS.load(Ordering::SeqCst));
    truncate(Utc::now() + offset)
}

/// Moves DVV's clock `by` forward (never back: time stamps already given out stay in the past)
/// and answers the new offset.
pub fn advance(by: chrono::Duration) -> chrono::Duration {
    let ms = by.num_milliseconds().max(0);
    let total = OFFSET_MS.fetch_add(ms, Ordering::SeqCst).saturating_add(ms);
    chrono::Duration::milliseconds(total)
}

/// How far DVV's clock is ahead of the real one.
pub fn offset() -> chrono::Duration {
    chrono::Duration::milliseconds(OFFSET_MS.load(Ordering::SeqCst))
}

/// Drops sub-millisecond precision.
pub fn truncate(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// `2026-11-21T10:00:00.000Z`.
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 timestamp and converts it to UTC milliseconds.
pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| truncate(d.with_timezone(&Utc)))
}

/// Serde adapter for [`Timestamp`] fields in the contract format.
pub mod as_string {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises in the contract format.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    /// Accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

/// Serde adapter for optional [`Timestamp`] fields (`null` when absent).
pub mod as_optional_string {
    use super::Timestamp;
    use serde::Serializer;

    /// Serialises in the contract format, or `null`.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = parse("2026-11-21T12:00:00.123456+02:00").unwrap();
        assert_eq!(format(&t), "2026-11-21T10:00:00.123Z");
    }

    #[test]
    fn refuses_non_rfc3339() {
        assert!(parse("2026-11-21 10:00").is_none());
        assert!(parse("").is_none());
    }
}
