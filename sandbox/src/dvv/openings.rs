//! `POST .../openings` (first-open arbitration by corroborated `openedAt`, idempotent by
//! `openingId`), `GET /v1/statement` (the provider's openings with DVV's verdicts) and
//! `POST .../receipt-confirmations` (verifiable messages).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::domain_error;
use super::router::parse_id;
use super::views::{OpeningView, ReceiptView, StatementPage};
use crate::app::App;
use crate::domain::DomainError;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};
use crate::time;

/// Statement page size when `limit` is absent.
const DEFAULT_STATEMENT_LIMIT: usize = 100;
/// Largest statement page.
const MAX_STATEMENT_LIMIT: usize = 1000;

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
    match app
        .domain
        .report_opening(provider, consent_id, message_id, opening_id, opened_at)
    {
        Ok((opening, verdict)) => Ok(json(
            StatusCode::CREATED,
            &OpeningView::new(&opening, &verdict, time::now()),
        )),
        Err(DomainError::OpeningRepeated(original)) => Ok(json(
            StatusCode::CONFLICT,
            &OpeningView::new(&original.0, &original.1, time::now()),
        )),
        Err(e) => Err(domain_error(e)),
    }
}

/// `GET /v1/statement?from=&to=&continuationToken=&limit=`: this provider's openings whose
/// reported `openedAt` lies in `[from, to)`, with DVV's verdicts, paged.
pub fn statement(
    app: &App,
    provider: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let params = request::query(query)?;
    let bound = |field: &'static str| {
        params
            .get(field)
            .and_then(|raw| time::parse(raw))
            .ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 timestamp"))
    };
    let (from, to) = (bound("from")?, bound("to")?);
    if to <= from {
        return Err(ApiError::invalid_field("to", "must be later than from"));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_STATEMENT_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n)
                if (1..=MAX_STATEMENT_LIMIT).contains(&n)
                    && raw.bytes().all(|b| b.is_ascii_digit()) =>
            {
                n
            }
            _ => {
                return Err(ApiError::invalid_field(
                    "limit",
                    "must be an integer from 1 to 1000",
                ))
            }
        },
    };
    let period = (from.timestamp_millis(), to.timestamp_millis());
    let after = match params.get("continuationToken") {
        None => None,
        Some(token) => Some(
            app.continuation
                .open_statement(token, provider, period)
                .ok_or_else(|| ApiError::bad_request("Invalid continuationToken"))?,
        ),
    };
    let slice = app
        .domain
        .statement(provider, from, to, after.as_ref(), limit);
    let now = time::now();
    Ok(json(
        StatusCode::OK,
        &StatementPage {
            openings: slice
                .openings
                .iter()
                .map(|(o, v)| OpeningView::new(o, v, now))
                .collect(),
            continuation_token: slice
                .next
                .map(|n| app.continuation.statement(provider, period, &n)),
        },
    ))
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
