//! The operator API's operational steps around the handlers: the per-client rate limit (before
//! any assertion is verified, so a flood is cheap to refuse) and the audit step (the last one of
//! the data path: an access is answered as a success only once its audit line is written).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorKind, DVV_TRACE_HEADER};
use super::state::SharedWindow;
use super::RequestId;
use crate::audit::{context, Access, Action, Outcome};
use crate::limits::ClientKey;

/// Refuses a client over its own rate with 429. The client is the key the listener attached to
/// the connection (certificate fingerprint or address).
pub(super) async fn client_limit(
    State(window): State<SharedWindow>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = request.extensions().get::<ClientKey>() {
        if let Err(refusal) = window.limits.check_client(key) {
            return ApiError::from(refusal).into_response();
        }
    }
    next.run(request).await
}

/// Writes the audit record of an access once its answer is ready, before it leaves.
pub(super) async fn audit(
    State(window): State<SharedWindow>,
    request: Request,
    next: Next,
) -> Response {
    let action = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| Action::of_route(p.as_str()));
    let Some(action) = action.filter(|_| window.audit.is_enabled()) else {
        return next.run(request).await;
    };
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (message_id, attachment_id) = ids_of(request.uri().path());
    let (response, facts) = context::collect(next.run(request)).await;
    let status = response.status().as_u16();
    let access = Access {
        time: chrono::Utc::now(),
        request_id,
        action,
        consent_id: facts.consent_id,
        message_id,
        attachment_id,
        outcome: Outcome::of_status(status),
        status,
        reason: response.extensions().get::<ErrorKind>().map(|k| k.0),
        trace_id: response
            .headers()
            .get(DVV_TRACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        citizen: facts.citizen,
    };
    match window.audit.record(access).await {
        Ok(()) => response,
        Err(error) if status < 400 => {
            tracing::error!(%error, "audit record not written: the access is refused");
            drop(response);
            ApiError::audit_unavailable().into_response()
        }
        Err(error) => {
            tracing::error!(%error, "audit record of a refusal not written");
            response
        }
    }
}

/// Message and attachment ids from `/v1/messages/{m}[/attachments/{a}|/receipt]`.
fn ids_of(path: &str) -> (Option<i64>, Option<i64>) {
    let mut segments = path.trim_start_matches('/').split('/');
    let (Some("v1"), Some("messages")) = (segments.next(), segments.next()) else {
        return (None, None);
    };
    let message = segments.next().and_then(|s| s.parse().ok());
    let attachment = match (segments.next(), segments.next()) {
        (Some("attachments"), Some(a)) => a.parse().ok(),
        _ => None,
    };
    (message, attachment)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_come_from_the_path() {
        assert_eq!(super::ids_of("/v1/messages"), (None, None));
        assert_eq!(super::ids_of("/v1/messages/7"), (Some(7), None));
        assert_eq!(super::ids_of("/v1/messages/7/receipt"), (Some(7), None));
        assert_eq!(
            super::ids_of("/v1/messages/7/attachments/9"),
            (Some(7), Some(9))
        );
    }
}
