//! `POST .../openings` (first-open arbitration, idempotent by `openingId`) and
//! `POST .../receipt-confirmations` (verifiable messages).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::domain_error;
use super::router::parse_id;
use super::views::{OpeningView, ReceiptView};
use crate::app::App;
use crate::domain::DomainError;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};
use crate::time;

/// How far in the future `openedAt` may lie (clock skew).
const OPENED_AT_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// Records an opening: 201 with the arbitration result, or 409 with the original answer.
pub async fn report(
    app: &App,
    provider: &str,
    consent_id: &str,
    message_id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let (parts, body) = req.into_parts();
    let bytes = request::read_body(&parts.headers, body).await?;
    let map = request::json_object(&bytes, false)?;
    let opening_id = request::string_field(&map, "openingId")?;
    if opening_id.is_empty()
        || opening_id.len() > 64
        || !opening_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::invalid_field(
            "openingId",
            "must be 1 to 64 characters of A-Z, a-z, 0-9 and -",
        ));
    }
    let opened_at = time::parse(request::string_field(&map, "openedAt")?)
        .ok_or_else(|| ApiError::invalid_field("openedAt", "must be an RFC 3339 timestamp"))?;
    if opened_at > time::now() + OPENED_AT_SKEW {
        return Err(ApiError::invalid_field(
            "openedAt",
            "must not be more than 60 seconds in the future",
        ));
    }
    match app
        .domain
        .report_opening(provider, consent_id, message_id, opening_id, opened_at)
    {
        Ok(opening) => Ok(json(StatusCode::CREATED, &OpeningView::from(&opening))),
        Err(DomainError::OpeningRepeated(original)) => Ok(json(
            StatusCode::CONFLICT,
            &OpeningView::from(original.as_ref()),
        )),
        Err(e) => Err(domain_error(e)),
    }
}

/// Confirms receipt: 201, or 409 with the original answer.
pub async fn confirm_receipt(
    app: &App,
    provider: &str,
    consent_id: &str,
    message_id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let (parts, body) = req.into_parts();
    let bytes = request::read_body(&parts.headers, body).await?;
    request::json_object(&bytes, true)?;
    match app.domain.confirm_receipt(provider, consent_id, message_id) {
        Ok(at) => Ok(json(
            StatusCode::CREATED,
            &ReceiptView {
                message_id,
                receipt_confirmed_at: at,
            },
        )),
        Err(DomainError::ReceiptAlreadyConfirmed(message_id, at)) => Ok(json(
            StatusCode::CONFLICT,
            &ReceiptView {
                message_id,
                receipt_confirmed_at: at,
            },
        )),
        Err(e) => Err(domain_error(e)),
    }
}
