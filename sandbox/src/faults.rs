//! Fault injection for the DVV listener: for a period, added latency and a share of requests
//! answered 503, dropped without an answer, answered with a body that stalls mid-stream, or
//! carried out and then dropped before the answer leaves (DVV recorded it, the caller never
//! learns so); and revocations withheld from the events feed.
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
    /// Share of affected requests carried out in full (an opening recorded, a receipt
    /// confirmed) whose connection is then closed before the answer is sent.
    pub lose_answer_rate: f64,
    /// Share of affected requests whose upload is broken off part-way: the first 256 KiB of
    /// the body are read, then the connection is closed without an answer (nothing recorded).
    pub cut_upload_rate: f64,
    /// While the plan lasts, `Consent revoked` events are left out of the events feed for good
    /// (as if DVV never published them), so a gateway must find revocations another way.
    pub withhold_revocations: bool,
    /// Path prefixes affected; empty means every `/v1/` path except `/v1/token`.
    pub paths: Vec<String>,
    /// Methods affected (upper case); empty means every method.
    pub methods: Vec<String>,
    /// What an `errorRate` answer is instead of 503 `Service temporarily unavailable`: a status
    /// and a `reason` (e.g. 403 `Consent revoked`, as a DVV without consent periods answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_answer: Option<(u16, String)>,
    #[serde(skip)]
    until: Option<Instant>,
}

impl FaultPlan {
    /// A plan starting now.
    #[cfg(test)]
    pub fn new(
        duration: Duration,
        latency: Duration,
        error_rate: f64,
        drop_rate: f64,
        stall_rate: f64,
        paths: Vec<String>,
    ) -> Self {
        Self::with_lost_answers(
            duration, latency, error_rate, drop_rate, stall_rate, 0.0, paths,
        )
    }

    /// A plan starting now, with a share of answers lost after the request was carried out.
    pub fn with_lost_answers(
        duration: Duration,
        latency: Duration,
        error_rate: f64,
        drop_rate: f64,
        stall_rate: f64,
        lose_answer_rate: f64,
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
            lose_answer_rate,
            cut_upload_rate: 0.0,
            withhold_revocations: false,
            paths,
            methods: Vec::new(),
            error_answer: None,
            until: Instant::now().checked_add(duration),
        }
    }

    fn applies_to(&self, method: &str, path: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == method) {
            return false;
        }
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
    /// Carry the request out, then close the connection without the answer.
    LoseAnswer,
    /// Read part of the request body, then close the connection.
    CutUpload,
}

impl FaultAction {
    /// Label for the calls log.
    pub fn label(self) -> Option<&'static str> {
        match self {
            FaultAction::Serve => None,
            FaultAction::Error => Some("error"),
            FaultAction::Drop => Some("drop"),
            FaultAction::Stall => Some("stall"),
            FaultAction::LoseAnswer => Some("lose-answer"),
            FaultAction::CutUpload => Some("cut-upload"),
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

    /// Decides the fate of a `GET` to `path`; `None` when no plan affects it.
    #[cfg(test)]
    pub fn decide(&self, path: &str) -> Option<FaultDecision> {
        self.decide_for("GET", path)
    }

    /// Decides the fate of a `method` request to `path`; `None` when no plan affects it.
    pub fn decide_for(&self, method: &str, path: &str) -> Option<FaultDecision> {
        let plan = self.current()?;
        if !plan.applies_to(method, path) {
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
        } else if roll < plan.drop_rate + plan.error_rate + plan.stall_rate + plan.lose_answer_rate
        {
            FaultAction::LoseAnswer
        } else if roll
            < plan.drop_rate
                + plan.error_rate
                + plan.stall_rate
                + plan.lose_answer_rate
                + plan.cut_upload_rate
        {
            FaultAction::CutUpload
        } else {
            FaultAction::Serve
        };
        Some(FaultDecision {
            latency: Duration::from_millis(plan.latency_ms),
            action,
        })
    }

    /// The status and reason the plan in force answers instead of 503, if it names one.
    pub fn error_answer(&self) -> Option<(u16, String)> {
        self.current().and_then(|p| p.error_answer)
    }

    /// Whether the plan in force withholds revocations from the feed.
    pub fn withholds_revocations(&self) -> bool {
        self.current().is_some_and(|p| p.withhold_revocations)
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
    fn lost_answers_and_withheld_revocations_are_part_of_a_plan() {
        let faults = Faults::default();
        assert!(!faults.withholds_revocations());
        let mut plan = FaultPlan::with_lost_answers(
            Duration::from_secs(60),
            Duration::ZERO,
            0.0,
            0.0,
            0.0,
            1.0,
            vec!["/v1/consents/".into()],
        );
        plan.withhold_revocations = true;
        faults.set(plan);
        assert_eq!(
            faults
                .decide_for("POST", "/v1/consents/c/messages/1/openings")
                .map(|d| d.action),
            Some(FaultAction::LoseAnswer)
        );
        assert!(faults.withholds_revocations());
        faults.clear();
        assert!(!faults.withholds_revocations());
        let mut only_get = FaultPlan::new(
            Duration::from_secs(60),
            Duration::ZERO,
            1.0,
            0.0,
            0.0,
            vec![],
        );
        only_get.methods = vec!["GET".into()];
        faults.set(only_get);
        assert!(faults.decide_for("GET", "/v1/events").is_some());
        assert!(faults
            .decide_for("POST", "/v1/consents/c/messages/1/openings")
            .is_none());
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
