//! The store probe: a one-row durable write on a schedule, so a full disk or a lost database is
//! found before a citizen finds it, and returning space is noticed without a request.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

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

/// Starts the probe: a one-row durable write ([`Store::check_writable`]) on a schedule, whose
/// outcome updates the store's status like any other write. Ends when `stopped` turns true.
pub fn spawn_store_probe(
    outbox: Store,
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
