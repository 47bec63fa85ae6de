//! The DVV viewing-connection API over mutual TLS: the contract of `docs/dvv-viewing-api.yaml`.
//!
//! [`handle`] wraps every request: fault injection, the `traceId` header, `Cache-Control`,
//! the calls log and a request log line; [`router`] picks the operation.

mod attachments;
mod consents;
mod events;
mod messages;
mod openings;
mod replies;
mod router;
mod token;
mod views;

use std::sync::Arc;

use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::app::App;
use crate::domain::DomainError;
use crate::faults::FaultAction;
use crate::http::error::ApiError;
use crate::http::serve::{ConnInfo, DropConnection};
use crate::http::stall::StallBody;
use crate::http::{add_trace_id, Body};
use crate::time;

/// How much of an upload is read before a `cutUploadRate` fault breaks it off.
const CUT_UPLOAD_AFTER: usize = 256 * 1024;

/// Serves one request on the DVV listener.
pub async fn handle(
    app: Arc<App>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let started = std::time::Instant::now();
    let arrived = time::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let decision = app.faults.decide_for(&method, &path);
    if let Some(d) = decision {
        if !d.latency.is_zero() {
            tokio::time::sleep(d.latency).await;
        }
    }
    let action = decision.map_or(FaultAction::Serve, |d| d.action);
    if action == FaultAction::CutUpload {
        // DVV breaks off an upload part-way: some of the body is read, then the connection goes.
        let mut body = req.into_body();
        let mut read = 0usize;
        while read < CUT_UPLOAD_AFTER {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        app.calls.record(
            conn.provider.clone(),
            &method,
            &path,
            None,
            arrived,
            action.label(),
        );
        return Err(DropConnection);
    }
    if action == FaultAction::Drop {
        app.calls.record(
            conn.provider.clone(),
            &method,
            &path,
            None,
            arrived,
            action.label(),
        );
        tracing::debug!(
            method,
            path,
            provider = conn.provider.as_deref(),
            "dropped by fault injection"
        );
        return Err(DropConnection);
    }
    let mut response = if action == FaultAction::Error {
        match app.faults.error_answer() {
            Some((status, reason)) => ApiError::new(
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
                reason,
            )
            .into_response(),
            None => ApiError::unavailable("Service temporarily unavailable", 1).into_response(),
        }
    } else {
        router::route(&app, &conn, req).await
    };
    if action == FaultAction::LoseAnswer {
        // Carried out (and journalled) in full; only the answer is lost on the way back.
        app.calls.record(
            conn.provider.clone(),
            &method,
            &path,
            Some(response.status().as_u16()),
            arrived,
            action.label(),
        );
        return Err(DropConnection);
    }
    if action == FaultAction::Stall {
        let (parts, body) = response.into_parts();
        response = Response::from_parts(parts, StallBody::new(body).boxed());
    }
    response
        .headers_mut()
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let trace_id = add_trace_id(&mut response);
    let status = response.status().as_u16();
    app.calls.record(
        conn.provider.clone(),
        &method,
        &path,
        Some(status),
        arrived,
        action.label(),
    );
    tracing::debug!(
        method,
        path,
        status,
        provider = conn.provider.as_deref(),
        trace_id,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "dvv request"
    );
    Ok(response)
}

/// The one mapping from domain refusals to answers.
fn domain_error(e: DomainError) -> ApiError {
    match e {
        DomainError::ConsentNotFound => ApiError::not_found("Consent not found"),
        DomainError::NoConsent => ApiError::not_found("No consent for this provider"),
        DomainError::ConsentRevoked => ApiError::forbidden("Consent revoked"),
        DomainError::MessageNotFound => ApiError::not_found("Message not found"),
        DomainError::AttachmentNotFound => ApiError::not_found("Attachment not found"),
        DomainError::ReceiptRequired => ApiError::forbidden("Receipt confirmation required"),
        DomainError::NotVerifiable => ApiError::bad_request("Message is not Verifiable"),
        DomainError::UnknownProvider => ApiError::not_found("Unknown provider"),
        DomainError::BadPosition => ApiError::bad_request("Invalid continuationToken"),
        DomainError::RepliesNotAllowed => ApiError::forbidden("Replies not allowed"),
        DomainError::ReplyNotFound => ApiError::not_found("Reply not found"),
        DomainError::OpenedOutsideConsent => ApiError::forbidden("Opened outside consent"),
        DomainError::OpenedBeforeRelease => ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "Opened before content release",
        ),
        DomainError::OpenedInFuture => ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "Opened in the future",
        ),
        DomainError::OpeningOutsideRetention => ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "Opening outside retention",
        ),
        DomainError::OpeningNotFound => ApiError::not_found("Opening not found"),
        DomainError::ReceiptAlreadyConfirmed(..)
        | DomainError::OpeningRepeated(_)
        | DomainError::ReplyRepeated(_) => {
            // Answered with the original body by the handlers; never reaches here.
            ApiError::new(http::StatusCode::CONFLICT, "Already recorded")
        }
        DomainError::Storage(e) => {
            tracing::error!(error = %e, "journal write failed");
            ApiError::internal()
        }
        DomainError::Inconsistent(e) => {
            tracing::error!(error = %e, "state refused a checked change");
            ApiError::internal()
        }
    }
}
