//! HTTP plumbing shared by the DVV and admin listeners: response bodies, errors, request
//! reading, fault wrappers and the accept loops.

pub mod error;
pub mod request;
pub mod serve;
pub mod stall;

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

/// Every response body the sandbox sends.
pub type Body = BoxBody<Bytes, Infallible>;

/// Name of the header that carries each response's trace id.
pub const TRACE_ID: &str = "traceid";

/// A body of known bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            return error::ApiError::internal().into_response();
        }
    };
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An HTML page.
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds a fresh UUID v4 `traceId` header.
pub fn add_trace_id(response: &mut Response<Body>) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(TRACE_ID, value);
    }
    id
}
