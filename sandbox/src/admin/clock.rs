//! `GET|POST /admin/clock`: DVV's clock, and moving it forward so that days pass in a test.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::{json, Body};
use crate::time;

/// Longest single move: a year.
const MAX_ADVANCE_SECS: i64 = 366 * 86_400;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdvanceBody {
    advance_secs: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClockView {
    now: String,
    offset_secs: i64,
}

/// DVV's current time and how far it is ahead of the real clock.
pub fn current() -> Response<Body> {
    view(time::offset())
}

/// Moves the clock forward by `advanceSecs` (1 s to a year); answers the new time.
pub async fn advance(req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: AdvanceBody = super::typed_body(req).await?;
    if !(1..=MAX_ADVANCE_SECS).contains(&body.advance_secs) {
        return Err(ApiError::invalid_field(
            "advanceSecs",
            "must be 1 to 31622400 (the clock only moves forward)",
        ));
    }
    let offset = time::advance(chrono::Duration::seconds(body.advance_secs));
    tracing::info!(
        offset_secs = offset.num_seconds(),
        "DVV clock moved forward"
    );
    Ok(view(offset))
}

fn view(offset: chrono::Duration) -> Response<Body> {
    json(
        StatusCode::OK,
        &ClockView {
            now: time::format(&time::now()),
            offset_secs: offset.num_seconds(),
        },
    )
}
