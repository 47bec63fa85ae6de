//! Whether the store takes writes right now, learnt from every write's outcome and from a
//! periodic probe write, so the gateway can fail closed (refuse to release a body whose opening it
//! cannot record), say so on `/readyz`, and notice by itself when space returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::StoreError;
use super::outbox::Outbox;

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

/// How often the probe writes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    /// Between probes while the store is writable (finds a full disk before a citizen does).
    pub healthy_every: Duration,
    /// Between probes while it is not (how soon returning space is noticed).
    pub failing_every: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            healthy_every: Duration::from_secs(10),
            failing_every: Duration::from_secs(1),
        }
    }
}

/// Starts the probe: a one-row durable write ([`Outbox::check_writable`]) on a schedule, whose
/// outcome updates the store's status like any other write. Ends when `stopped` turns true.
pub fn spawn_store_probe(
    outbox: Outbox,
    settings: ProbeSettings,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_probe = tokio::time::Instant::now();
        loop {
            // Wakes every `failing_every`, so a failure seen by a request is probed soon after.
            tokio::select! {
                () = tokio::time::sleep(settings.failing_every) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                return;
            }
            let due =
                !outbox.store_status().writable || last_probe.elapsed() >= settings.healthy_every;
            if due {
                last_probe = tokio::time::Instant::now();
                // The outcome is recorded by the write path itself.
                let _ = outbox.check_writable().await;
            }
        }
    })
}
