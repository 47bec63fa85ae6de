//! Whether the store takes writes right now, learnt from every write's outcome (in
//! [`super::Store`], for both backends) and from a periodic probe write, so the gateway can fail
//! closed (refuse to release a body whose opening it cannot record), say so on `/readyz`, and
//! notice by itself when space returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::error::StoreError;

/// The store's writability as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    /// Whether the last write that reached the disk committed.
    pub writable: bool,
    /// The kind ([`StoreError::kind`]) of the failure that made it unwritable, if any.
    pub failure: Option<&'static str>,
    /// Times the store went from writable to not writable since start.
    pub outages: u64,
}

/// Shared, lock-light record of the last write outcomes.
#[derive(Debug)]
pub(crate) struct StoreHealth {
    writable: AtomicBool,
    failure: Mutex<Option<&'static str>>,
    outages: AtomicU64,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            writable: AtomicBool::new(true),
            failure: Mutex::new(None),
            outages: AtomicU64::new(0),
        }
    }
}

impl StoreHealth {
    /// Notes the outcome of one write. Only failures that say the disk cannot take writes (full,
    /// read-only, I/O, unopenable, corrupt) make the store unwritable; any committed write makes it
    /// writable again. Transitions are logged once, with the failure's kind only.
    pub(crate) fn observe<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => {
                if !self.writable.swap(true, Ordering::AcqRel) {
                    self.set_failure(None);
                    tracing::info!(
                        "store writable again: openings are recorded and bodies released"
                    );
                }
            }
            Err(e) if blocks_writes(e) => {
                self.set_failure(Some(e.kind()));
                if self.writable.swap(false, Ordering::AcqRel) {
                    self.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        kind = e.kind(),
                        "store not writable: message bodies are refused (503) until it is"
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// The status as last observed.
    pub(crate) fn status(&self) -> StoreStatus {
        StoreStatus {
            writable: self.writable.load(Ordering::Acquire),
            failure: *self
                .failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            outages: self.outages.load(Ordering::Relaxed),
        }
    }

    fn set_failure(&self, kind: Option<&'static str>) {
        *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = kind;
    }
}

/// Whether a failure means the disk cannot take writes (as opposed to one statement failing).
fn blocks_writes(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::DiskFull
            | StoreError::ReadOnly
            | StoreError::Io(_)
            | StoreError::CannotOpen(_)
            | StoreError::Corrupt(_)
    )
}
