//! The one error answer of both APIs: `{"reason", "validationErrors"?}` with a status, plus the
//! OAuth `error` code on the token endpoint and `WWW-Authenticate` on bearer failures.

use std::borrow::Cow;

use http::header::{HeaderValue, ALLOW, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde::Serialize;

use super::Body;

/// A refusal with its reason. Reasons never echo request values (identity codes included).
#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: Cow<'static, str>,
    validation_errors: Vec<ValidationError>,
    oauth_error: Option<&'static str>,
    invalid_token: bool,
    allow: Option<&'static str>,
    retry_after: Option<u32>,
}

/// One invalid field.
#[derive(Clone, Debug, Serialize)]
pub struct ValidationError {
    /// The field's name.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    validation_errors: &'a [ValidationError],
}

impl ApiError {
    /// An error with a status and reason.
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
            validation_errors: Vec::new(),
            oauth_error: None,
            invalid_token: false,
            allow: None,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 400 naming the invalid field.
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> Self {
        let mut e = Self::bad_request("Validation failed");
        e.validation_errors.push(ValidationError {
            field: field.to_owned(),
            reason: reason.into(),
        });
        e
    }

    /// 404.
    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    /// 403.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    /// 401 for a missing, unknown, expired or misbound bearer token.
    pub fn invalid_token(reason: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, reason);
        e.invalid_token = true;
        e
    }

    /// A token-endpoint error with its OAuth `error` code.
    pub fn oauth(
        status: StatusCode,
        code: &'static str,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut e = Self::new(status, reason);
        e.oauth_error = Some(code);
        e
    }

    /// 405 with the methods the path allows.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
        e.allow = Some(allow);
        e
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body exceeds {limit} bytes"),
        )
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(reason: impl Into<Cow<'static, str>>, retry_after: u32) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, reason);
        e.retry_after = Some(retry_after);
        e
    }

    /// 500, saying nothing about the cause.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    }

    /// The JSON answer.
    pub fn into_response(self) -> Response<Body> {
        let body = ErrorBody {
            reason: &self.reason,
            error: self.oauth_error,
            validation_errors: &self.validation_errors,
        };
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"reason":"Internal error"}"#.to_vec());
        let mut response = Response::new(super::full(bytes));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.invalid_token {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
