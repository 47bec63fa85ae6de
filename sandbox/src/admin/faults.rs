//! `GET`/`POST`/`DELETE /admin/faults`: the fault plan of the DVV listener.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::app::App;
use crate::faults::FaultPlan;
use crate::http::error::ApiError;
use crate::http::{json, Body};

/// Longest plan.
const MAX_DURATION_MS: u64 = 3_600_000;
/// Largest added latency.
const MAX_LATENCY_MS: u64 = 60_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultBody {
    duration_ms: u64,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    drop_rate: f64,
    #[serde(default)]
    stall_rate: f64,
    #[serde(default)]
    lose_answer_rate: f64,
    #[serde(default)]
    cut_upload_rate: f64,
    #[serde(default)]
    withhold_revocations: bool,
    #[serde(default)]
    paths: Option<Paths>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    error_status: Option<u16>,
    #[serde(default)]
    error_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Paths {
    One(String),
    Many(Vec<String>),
}

/// The plan in force, or `null`.
pub fn current(app: &App) -> Response<Body> {
    json(StatusCode::OK, &app.faults.current())
}

/// Sets a plan; answers it.
pub async fn set(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: FaultBody = super::typed_body(req).await?;
    if body.duration_ms == 0 || body.duration_ms > MAX_DURATION_MS {
        return Err(ApiError::invalid_field(
            "durationMs",
            "must be 1 to 3600000",
        ));
    }
    if body.latency_ms > MAX_LATENCY_MS {
        return Err(ApiError::invalid_field("latencyMs", "must be 0 to 60000"));
    }
    for (field, rate) in [
        ("errorRate", body.error_rate),
        ("dropRate", body.drop_rate),
        ("stallRate", body.stall_rate),
        ("loseAnswerRate", body.lose_answer_rate),
        ("cutUploadRate", body.cut_upload_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ApiError::invalid_field(field, "must be between 0 and 1"));
        }
    }
    if body.error_rate
        + body.drop_rate
        + body.stall_rate
        + body.lose_answer_rate
        + body.cut_upload_rate
        > 1.0 + 1e-9
    {
        return Err(ApiError::bad_request(
            "errorRate + dropRate + stallRate + loseAnswerRate + cutUploadRate must not exceed 1",
        ));
    }
    let paths = match body.paths {
        None => Vec::new(),
        Some(Paths::One(p)) => vec![p],
        Some(Paths::Many(p)) => p,
    };
    if paths.iter().any(|p| !p.starts_with('/')) {
        return Err(ApiError::invalid_field(
            "paths",
            "each prefix must start with /",
        ));
    }
    let mut plan = FaultPlan::with_lost_answers(
        Duration::from_millis(body.duration_ms),
        Duration::from_millis(body.latency_ms),
        body.error_rate,
        body.drop_rate,
        body.stall_rate,
        body.lose_answer_rate,
        paths,
    );
    plan.withhold_revocations = body.withhold_revocations;
    plan.cut_upload_rate = body.cut_upload_rate;
    plan.error_answer = match (body.error_status, body.error_reason) {
        (None, None) => None,
        (Some(status @ 400..=599), Some(reason)) if !reason.is_empty() && reason.len() <= 200 => {
            Some((status, reason))
        }
        _ => {
            return Err(ApiError::invalid_field(
                "errorStatus",
                "errorStatus (400 to 599) and errorReason (1 to 200 characters) go together",
            ))
        }
    };
    plan.methods = body
        .methods
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    app.faults.set(plan.clone());
    tracing::info!(
        duration_ms = plan.duration_ms,
        latency_ms = plan.latency_ms,
        error_rate = plan.error_rate,
        drop_rate = plan.drop_rate,
        stall_rate = plan.stall_rate,
        lose_answer_rate = plan.lose_answer_rate,
        withhold_revocations = plan.withhold_revocations,
        "fault plan set"
    );
    Ok(json(StatusCode::OK, &plan))
}

/// Removes the plan.
pub fn clear(app: &App) -> Response<Body> {
    app.faults.clear();
    json(StatusCode::OK, &serde_json::json!({"cleared": true}))
}
