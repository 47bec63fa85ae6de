//! Readiness of the gateway's dependencies (the store, DVV and its token endpoint, the citizen
//! assertion keys), for `/readyz` and the metrics; and the fail-closed bookkeeping of releases
//! refused because their opening could not be recorded.
//!
//! Every dependency is allowed to be down at start or later: the gateway keeps running, answers
//! `/healthz`, says on `/readyz` which dependency is missing, answers requests that need it with
//! a 5xx and a reason, and recovers on its own when the dependency returns.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::state::Window;
use crate::openings::StoreError;

/// Longest a readiness check waits for one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The dependencies named on `/readyz` and in `ikkuna_dependency_up`.
const DEPENDENCIES: &[&str] = &["store", "dvv", "assertion_keys"];

/// Metrics of this module, registered in the process-wide registry on first use.
pub struct HealthMetrics {
    /// 1 when the store took its last write, 0 when it is full, read-only or failing.
    pub store_writable: IntGauge,
    /// Message bodies and attachments not released because their opening could not be recorded.
    pub refused_releases: IntCounter,
    /// Whether each dependency was up at the last readiness check (1) or not (0).
    pub dependency_up: IntGaugeVec,
}

/// This module's metrics (`None` only if a definition is invalid, which the tests rule out).
pub fn metrics() -> Option<&'static HealthMetrics> {
    static METRICS: OnceLock<Option<HealthMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let registry = crate::telemetry::metrics::metrics()?;
            let built = (|| -> Result<HealthMetrics, prometheus::Error> {
                Ok(HealthMetrics {
                    store_writable: IntGauge::new(
                        "ikkuna_store_writable",
                        "Whether the store took its last write (1) or is full, read-only or failing (0); while 0, message bodies are refused.",
                    )?,
                    refused_releases: IntCounter::new(
                        "ikkuna_refused_releases_total",
                        "Message bodies and attachments refused (503) because their opening could not be recorded.",
                    )?,
                    dependency_up: IntGaugeVec::new(
                        Opts::new(
                            "ikkuna_dependency_up",
                            "Whether a dependency was usable at the last readiness check or scrape (1) or not (0).",
                        ),
                        &["dependency"],
                    )?,
                })
            })();
            match built {
                Ok(m) => {
                    registry.register(Box::new(m.store_writable.clone()));
                    registry.register(Box::new(m.refused_releases.clone()));
                    registry.register(Box::new(m.dependency_up.clone()));
                    m.store_writable.set(1);
                    for d in DEPENDENCIES {
                        m.dependency_up.with_label_values(&[d]).set(1);
                    }
                    Some(m)
                }
                Err(error) => {
                    tracing::error!(%error, "health metrics cannot be built");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts and logs a body not released because its opening could not be recorded (the kind of
/// failure only: no identity, consent or message id).
pub fn refused_release(e: &StoreError) {
    tracing::error!(
        kind = e.kind(),
        "opening not recorded: the body is not released (503)"
    );
    if let Some(m) = metrics() {
        m.refused_releases.inc();
    }
}

/// Sets the gauges from the state known without any I/O (for a `/metrics` scrape).
pub fn refresh_metrics(window: &Window) {
    if let Some(m) = metrics() {
        let store = window.outbox.store_status().writable;
        m.store_writable.set(i64::from(store));
        m.dependency_up
            .with_label_values(&["store"])
            .set(i64::from(store));
        m.dependency_up
            .with_label_values(&["assertion_keys"])
            .set(i64::from(window.keys.loaded()));
    }
}

/// The outcome of a readiness check: ready or not, and the JSON body `/readyz` answers.
pub struct Readiness {
    /// Whether every dependency is usable.
    pub ready: bool,
    /// `{"status", "store", "dvv", "assertionKeys", "reason"?}`; `reason` names each dependency
    /// that is down.
    pub body: Value,
}

/// Checks every dependency now: a durable probe write to the store, a valid DVV token (fetched if
/// needed), and the assertion keys (re-fetched now if none are loaded).
pub async fn readiness(window: &Window) -> Readiness {
    let store = async {
        tokio::time::timeout(CHECK_TIMEOUT, window.outbox.check_writable())
            .await
            .unwrap_or(Err(StoreError::Busy))
    };
    let dvv = window.dvv.ensure_token();
    let keys = async {
        if !window.keys.loaded() {
            let _ = tokio::time::timeout(CHECK_TIMEOUT, window.verifier.refresh_keys()).await;
        }
        window.keys.loaded()
    };
    let (store, dvv, keys) = tokio::join!(store, dvv, keys);
    let mut down = Vec::new();
    if let Err(e) = &store {
        down.push(format!(
            "the store cannot record openings ({}), so message bodies are refused",
            e.kind()
        ));
    }
    if let Err(e) = &dvv {
        down.push(format!("DVV is not usable ({})", e.kind()));
    }
    if !keys {
        down.push("the citizen assertion keys (JWKS) are not loaded".to_owned());
    }
    if let Some(m) = metrics() {
        m.store_writable.set(i64::from(store.is_ok()));
        for (name, up) in [
            ("store", store.is_ok()),
            ("dvv", dvv.is_ok()),
            ("assertion_keys", keys),
        ] {
            m.dependency_up
                .with_label_values(&[name])
                .set(i64::from(up));
        }
    }
    let ready = down.is_empty();
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "store": if store.is_ok() { "writable" } else { "not writable" },
        "dvv": match &dvv { Ok(()) => "authenticated", Err(e) => e.kind() },
        "assertionKeys": if keys {
            if window.keys.last_failed() { "loaded (last refresh failed)" } else { "loaded" }
        } else {
            "not loaded"
        },
    });
    if let Err(e) = &store {
        body["storeFailure"] = json!(e.kind());
    }
    if !ready {
        body["reason"] = json!(format!("Not ready: {}", down.join("; ")));
    }
    Readiness { ready, body }
}

/// While no assertion keys are loaded (the JWKS URL failed at start), re-fetches them every
/// `every`, so the gateway recovers without a restart even when nobody polls `/readyz`.
pub fn spawn_keys_retry(
    window: Arc<Window>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !window.keys.loaded() {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                return;
            }
            if let Err(error) = window.verifier.refresh_keys().await {
                tracing::warn!(
                    kind = error.kind(),
                    "citizen assertion keys still not loaded"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_metrics_build_and_render() {
        let m = super::metrics().expect("health metrics build");
        m.refused_releases.inc();
        let text = String::from_utf8(
            crate::telemetry::metrics::metrics()
                .expect("metrics")
                .render(),
        )
        .expect("utf8");
        for name in [
            "ikkuna_store_writable",
            "ikkuna_refused_releases_total",
            "ikkuna_dependency_up",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
