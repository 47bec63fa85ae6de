//! The record of recent revocations and invalidations, by epoch, that lets a revocation win over
//! a lookup that was already in flight when it arrived.
//!
//! Every cached answer remembers the epoch at which its lookup *started*. Every revocation or
//! invalidation takes a new, higher epoch. An answer whose lookup started before a change that
//! concerns it is stale, however late it was inserted. Records are kept only as long as an
//! answer that predates them could still be alive (the longest TTL), so the log stays small.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pseudonym::CitizenKey;
use super::ConsentDecision;

/// How often the log is swept of records nothing can still be older than.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A change: its epoch and when it happened.
#[derive(Clone, Copy)]
struct Change {
    epoch: u64,
    at: Instant,
}

#[derive(Default)]
struct Log {
    by_consent: HashMap<String, Change>,
    by_citizen: HashMap<CitizenKey, Change>,
    /// The latest change that may turn "no consent" answers into something else (a grant).
    none_answers: Option<Change>,
    last_prune: Option<Instant>,
}

/// The epoch counter and the change log.
pub(crate) struct Changes {
    epoch: AtomicU64,
    log: Mutex<Log>,
    /// How long a record is kept: the longest life of any cached answer.
    retention: Duration,
}

impl Changes {
    pub(crate) fn new(retention: Duration) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            log: Mutex::new(Log::default()),
            retention,
        }
    }

    /// The epoch a lookup starting now must carry.
    pub(crate) fn current(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Records that a consent changed (revoked or otherwise); when `affects_none` is set, answers
    /// saying "no consent" become stale as well (a grant may have created this consent).
    pub(crate) fn consent_changed(&self, consent_id: &str, affects_none: bool) {
        let change = self.next();
        self.with_log(|log| {
            log.by_consent.insert(consent_id.to_owned(), change);
            if affects_none {
                log.none_answers = Some(change);
            }
        });
    }

    /// Records that everything cached about a citizen is stale.
    pub(crate) fn citizen_changed(&self, key: CitizenKey) {
        let change = self.next();
        self.with_log(|log| {
            log.by_citizen.insert(key, change);
        });
    }

    /// Whether an answer whose lookup started at `epoch` is still current.
    pub(crate) fn is_current(
        &self,
        key: &CitizenKey,
        decision: &ConsentDecision,
        epoch: u64,
    ) -> bool {
        let newer = |c: Option<&Change>| c.is_some_and(|c| c.epoch > epoch);
        self.with_log(|log| {
            if newer(log.by_citizen.get(key)) {
                return false;
            }
            match decision.consent_id() {
                Some(id) => !newer(log.by_consent.get(id)),
                None => !newer(log.none_answers.as_ref()),
            }
        })
    }

    fn next(&self) -> Change {
        Change {
            epoch: self.epoch.fetch_add(1, Ordering::SeqCst) + 1,
            at: Instant::now(),
        }
    }

    fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a log that is still consistent (each
        // operation is a single insert or read), so poisoning is ignored rather than spread.
        let mut log = match self.log.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if log
            .last_prune
            .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
        {
            let retention = self.retention;
            let alive = |c: &Change| now.duration_since(c.at) <= retention;
            log.by_consent.retain(|_, c| alive(c));
            log.by_citizen.retain(|_, c| alive(c));
            if log.none_answers.as_ref().is_some_and(|c| !alive(c)) {
                log.none_answers = None;
            }
            log.last_prune = Some(now);
        }
        f(&mut log)
    }
}
