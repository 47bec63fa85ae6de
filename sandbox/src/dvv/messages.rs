//! The inbox: `GET .../messages` (pages, newest first) and `GET .../messages/{messageId}`.

use http::{Response, StatusCode};

use super::domain_error;
use super::router::parse_id;
use super::views::{InboxPage, MessageDetail, MessageSummary};
use crate::app::App;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 20;
/// Largest page.
const MAX_LIMIT: usize = 100;

/// One inbox page.
pub fn list(
    app: &App,
    provider: &str,
    consent_id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let params = request::query(query)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) && raw.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(ApiError::invalid_field(
                    "limit",
                    "must be an integer from 1 to 100",
                ))
            }
        },
    };
    let before = match params.get("continuationToken") {
        None => None,
        Some(token) => Some(
            app.continuation
                .open_inbox(token, consent_id)
                .ok_or_else(|| ApiError::bad_request("Invalid continuationToken"))?,
        ),
    };
    let slice = app
        .domain
        .inbox_page(provider, consent_id, before, limit)
        .map_err(domain_error)?;
    let page = InboxPage {
        messages: slice.messages.iter().map(MessageSummary::from).collect(),
        continuation_token: slice.next.map(|n| app.continuation.inbox(consent_id, n)),
    };
    Ok(json(StatusCode::OK, &page))
}

/// One message; reading it does not mark it read.
pub fn detail(
    app: &App,
    provider: &str,
    consent_id: &str,
    message_id: &str,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let message = app
        .domain
        .message(provider, consent_id, message_id)
        .map_err(domain_error)?;
    Ok(json(StatusCode::OK, &MessageDetail::from(&message)))
}
