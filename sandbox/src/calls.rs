//! The record of every call made on the DVV listener, kept in a bounded ring in memory.
//!
//! It lets a test prove what a gateway did and did not do, for example that it never fetched
//! mail without consent. Paths are recorded without their query string, and consent lookups
//! carry the identity code only in their body, so no secret or identity code is kept here.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::time::{self, Timestamp};

/// Calls kept before the oldest are forgotten.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// One call.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Increasing number, so a test can ask for calls after a point it saw.
    pub seq: u64,
    /// The provider of the client certificate, if it was a registered one.
    pub provider_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Answer status; `null` when the connection was dropped by a fault.
    pub status: Option<u16>,
    /// When the call arrived.
    #[serde(with = "time::as_string")]
    pub time: Timestamp,
    /// The fault injected, if any (`error`, `drop`, `stall`).
    pub fault: Option<&'static str>,
}

/// The ring of calls.
#[derive(Debug)]
pub struct CallLog {
    inner: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    next_seq: u64,
    capacity: usize,
    calls: VecDeque<Call>,
}

impl CallLog {
    /// A ring holding at most `capacity` calls.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Ring {
                next_seq: 1,
                capacity: capacity.max(1),
                calls: VecDeque::new(),
            }),
        }
    }

    /// Records a call.
    pub fn record(
        &self,
        provider_id: Option<String>,
        method: &str,
        path: &str,
        status: Option<u16>,
        time: Timestamp,
        fault: Option<&'static str>,
    ) {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.calls.len() == ring.capacity {
            ring.calls.pop_front();
        }
        ring.calls.push_back(Call {
            seq,
            provider_id,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            time,
            fault,
        });
    }

    /// Calls in order, optionally only one provider's and only after `after_seq`.
    pub fn list(&self, provider_id: Option<&str>, after_seq: u64) -> Vec<Call> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.calls
            .iter()
            .filter(|c| c.seq > after_seq)
            .filter(|c| provider_id.is_none_or(|p| c.provider_id.as_deref() == Some(p)))
            .cloned()
            .collect()
    }

    /// Number of calls held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded() {
        let log = CallLog::new(3);
        for i in 0..5 {
            log.record(
                Some("p".into()),
                "GET",
                &format!("/v1/{i}"),
                Some(200),
                time::now(),
                None,
            );
        }
        let calls = log.list(None, 0);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].seq, 3);
        assert_eq!(log.list(Some("q"), 0).len(), 0);
        assert_eq!(log.list(None, 4).len(), 1);
    }
}
