//! The operator API: the routes an operator's backend calls on behalf of a logged-in citizen.

pub mod error;
mod guard;
mod handlers;
mod opened;
mod operations;
mod paging;
pub mod state;

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument;

use error::{ApiError, ErrorKind};
use state::SharedWindow;

/// Header naming each request, set on every answer so operator and gateway logs line up.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, as a request extension for the steps after the access log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Assembles the operator API: routes, then the access log around them.
pub fn router(window: SharedWindow) -> Router {
    Router::new()
        .route("/v1/consent", get(handlers::consent_state))
        .route("/v1/messages", get(handlers::list_messages))
        .route("/v1/messages/{message_id}", get(handlers::get_message))
        .route(
            "/v1/messages/{message_id}/receipt",
            post(handlers::confirm_receipt),
        )
        .route(
            "/v1/messages/{message_id}/attachments/{attachment_id}",
            get(handlers::get_attachment),
        )
        .fallback(handlers::fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "method_not_allowed",
            )
        })
        .layer(middleware::from_fn_with_state(
            window.clone(),
            operations::audit,
        ))
        .layer(middleware::from_fn_with_state(
            window.clone(),
            operations::client_limit,
        ))
        .layer(middleware::from_fn(refuse_head))
        .layer(middleware::from_fn(access_log))
        .with_state(window)
}

/// axum answers HEAD with the GET handler minus the body; here that would record an opening while
/// releasing nothing (an invented opening), so HEAD is refused before any handler runs.
async fn refuse_head(request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::HEAD {
        return ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "method_not_allowed",
        )
        .into_response();
    }
    next.run(request).await
}

/// Names each request and writes one access-log line for it: route template, status, latency,
/// error kind. Never the query, headers or body, so no token or content can reach the log.
async fn access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %request_id);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let kind = response.extensions().get::<ErrorKind>().map(|k| k.0);
    let dvv_trace = response
        .headers()
        .get(error::DVV_TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tracing::info!(
        parent: &span,
        %method,
        route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        error = kind.unwrap_or(""),
        dvv_trace_id = dvv_trace.as_deref().unwrap_or(""),
        "operator api"
    );
    crate::telemetry::metrics::with(|m| {
        m.observe_http(&route, method.as_str(), status, started.elapsed());
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}
