//! `GET /v1/events`: the calling provider's feed, at most 1000 events per call.

use http::{Response, StatusCode};

use super::domain_error;
use super::views::{EventView, EventsPage};
use crate::app::App;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};
use crate::model::EventType;

/// Most events in one answer.
const MAX_EVENTS: usize = 1000;

/// One page of events from the continuation token's position (or the start of retention).
pub fn page(app: &App, provider: &str, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let params = request::query(query)?;
    let position = match params.get("continuationToken") {
        None => 0,
        Some(token) => app
            .continuation
            .open_events(token, provider)
            .ok_or_else(|| ApiError::bad_request("Invalid continuationToken"))?,
    };
    let page = app
        .domain
        .events(provider, position, MAX_EVENTS)
        .map_err(domain_error)?;
    let withhold = app.faults.withholds_revocations();
    Ok(json(
        StatusCode::OK,
        &EventsPage {
            events: page
                .events
                .iter()
                .filter(|e| !(withhold && e.event_type == EventType::ConsentRevoked))
                .map(EventView::from)
                .collect(),
            continuation_token: app.continuation.events(provider, page.next),
        },
    ))
}
