//! Fault injection for the DVV listener: for a period, added latency and a share of requests
//! answered 503, dropped without an answer, or answered with a body that stalls mid-stream.
//!
//! The gateway's resilience (retries, timeouts, the openings outbox) is tested against these.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use crate::time::{self, Timestamp};

/// A fault plan as set through the admin API.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultPlan {
    /// How long the plan was set for.
    pub duration_ms: u64,
    /// When it ends.
    #[serde(with = "time::as_string")]
    pub expires_at: Timestamp,
    /// Added before every affected request.
    pub latency_ms: u64,
    /// Share of affected requests answered 503.
    pub error_rate: f64,
    /// Share of affected requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// Share of affected requests whose body stops half-way and hangs.
    pub stall_rate: f64,
    /// Path prefixes affected; empty means every `/v1/` path except `/v1/token`.
    pub paths: Vec<String>,
    #[serde(skip)]
    until: Option<Instant>,
}

impl FaultPlan {
    /// A plan starting now.
    pub fn new(
        duration: Duration,
        latency: Duration,
        error_rate: f64,
        drop_rate: f64,
        stall_rate: f64,
        paths: Vec<String>,
    ) -> Self {
        let expires_at =
            time::now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::zero());
        Self {
            duration_ms: duration.as_millis() as u64,
            expires_at,
            latency_ms: latency.as_millis() as u64,
            error_rate,
            drop_rate,
            stall_rate,
            paths,
            until: Instant::now().checked_add(duration),
        }
    }

    fn applies_to(&self, path: &str) -> bool {
        if self.paths.is_empty() {
            path.starts_with("/v1/") && path != "/v1/token"
        } else {
            self.paths.iter().any(|p| path.starts_with(p.as_str()))
        }
    }
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Serve normally (after the latency).
    Serve,
    /// Answer 503.
    Error,
    /// Close the connection without answering.
    Drop,
    /// Serve, but let the body stall.
    Stall,
}

impl FaultAction {
    /// Label for the calls log.
    pub fn label(self) -> Option<&'static str> {
        match self {
            FaultAction::Serve => None,
            FaultAction::Error => Some("error"),
            FaultAction::Drop => Some("drop"),
            FaultAction::Stall => Some("stall"),
        }
    }
}

/// The decision for one request.
#[derive(Clone, Copy, Debug)]
pub struct FaultDecision {
    /// Delay before anything else.
    pub latency: Duration,
    /// What then.
    pub action: FaultAction,
}

/// The current plan, if any.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<Option<FaultPlan>>,
}

impl Faults {
    /// Replaces the plan.
    pub fn set(&self, plan: FaultPlan) {
        *self.lock() = Some(plan);
    }

    /// Removes the plan.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// The plan in force, if it has not expired.
    pub fn current(&self) -> Option<FaultPlan> {
        let mut plan = self.lock();
        if plan.as_ref().is_some_and(expired) {
            *plan = None;
        }
        plan.clone()
    }

    /// Decides the fate of a request to `path`; `None` when no plan affects it.
    pub fn decide(&self, path: &str) -> Option<FaultDecision> {
        let plan = self.current()?;
        if !plan.applies_to(path) {
            return None;
        }
        // One roll partitioned by the shares, so each share is exactly what was asked for.
        let roll: f64 = rand::rng().random();
        let action = if roll < plan.drop_rate {
            FaultAction::Drop
        } else if roll < plan.drop_rate + plan.error_rate {
            FaultAction::Error
        } else if roll < plan.drop_rate + plan.error_rate + plan.stall_rate {
            FaultAction::Stall
        } else {
            FaultAction::Serve
        };
        Some(FaultDecision {
            latency: Duration::from_millis(plan.latency_ms),
            action,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<FaultPlan>> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn expired(plan: &FaultPlan) -> bool {
    plan.until.is_none_or(|u| Instant::now() >= u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_spare_the_token_endpoint() {
        let faults = Faults::default();
        faults.set(FaultPlan::new(
            Duration::from_secs(60),
            Duration::ZERO,
            1.0,
            0.0,
            0.0,
            vec![],
        ));
        assert!(faults.decide("/v1/token").is_none());
        assert_eq!(
            faults.decide("/v1/events").map(|d| d.action),
            Some(FaultAction::Error)
        );
        faults.clear();
        assert!(faults.decide("/v1/events").is_none());
    }

    #[test]
    fn plans_expire() {
        let faults = Faults::default();
        faults.set(FaultPlan::new(
            Duration::ZERO,
            Duration::ZERO,
            1.0,
            0.0,
            0.0,
            vec![],
        ));
        assert!(faults.current().is_none());
    }
}
