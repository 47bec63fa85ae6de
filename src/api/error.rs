//! The one mapping from error to HTTP answer for the whole operator API: status, reason,
//! `Retry-After`, the consent link, DVV's trace id.
//!
//! Every step of the pipeline and every handler refuses with an `ApiError`; this module maps each
//! typed error of the lower layers (assertions, rate limits, consent, DVV, the store, the
//! pipeline's own shedding and deadline) to one status, one client-facing reason and one metric
//! label. Reasons are fixed strings chosen here, so no identity code, token or content can reach a
//! client through an error. The lower layers know no HTTP.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::citizen::AssertionError;
use crate::dvv::DvvError;
use crate::openings::StoreError;

/// Header carrying DVV's trace id back to the operator, so both sides can find one call.
pub const DVV_TRACE_HEADER: &str = "traceId";

/// A refused or failed operator-API call, ready to be answered.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: &'static str,
    kind: &'static str,
    details: Box<Details>,
}

/// What some refusals carry beyond the reason; boxed to keep `Result<_, ApiError>` small.
#[derive(Debug, Default)]
struct Details {
    trace_id: Option<String>,
    consent_service_url: Option<String>,
    fallback_url: Option<String>,
    summary: Option<serde_json::Value>,
    content_range: Option<HeaderValue>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_service_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with a fixed status, client-facing reason and metric label.
    pub fn new(status: StatusCode, reason: &'static str, kind: &'static str) -> Self {
        Self {
            status,
            reason,
            kind,
            details: Box::default(),
        }
    }

    /// The citizen has no active consent: 403 with the link to DVV's consent service and the
    /// link to Suomi.fi Messages, where the mail can always be read.
    pub fn no_consent(revoked: bool, consent_service_url: &str, fallback_url: &str) -> Self {
        let reason = if revoked {
            "Consent revoked: the citizen has withdrawn this service's right to show their authority mail"
        } else {
            "No consent: the citizen has not authorised this service to show their authority mail"
        };
        let mut e = Self::new(StatusCode::FORBIDDEN, reason, "no_consent");
        e.details.consent_service_url = Some(consent_service_url.to_owned());
        e.with_fallback(fallback_url)
    }

    /// Whether this refusal leaves the citizen without their mail in this window for now (no
    /// consent, or DVV unavailable to this gateway), so the answer links to Suomi.fi Messages.
    pub fn strands_citizen(&self) -> bool {
        matches!(
            self.kind,
            "no_consent"
                | "dvv_timeout"
                | "dvv_unavailable"
                | "dvv_5xx"
                | "dvv_throttled"
                | "dvv_auth"
                | "dvv_invalid_response"
        )
    }

    /// Adds the link to Suomi.fi Messages (`fallbackUrl`) when [`Self::strands_citizen`].
    pub fn with_fallback(mut self, fallback_url: &str) -> Self {
        if self.strands_citizen() {
            self.details.fallback_url = Some(fallback_url.to_owned());
        }
        self
    }

    /// A `Verifiable` message whose receipt is not yet confirmed: 409 with its summary only.
    pub fn receipt_required(summary: serde_json::Value, trace_id: Option<String>) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "Receipt confirmation required: confirm receipt of this Verifiable message before its content is shown",
            "receipt_required",
        );
        e.details.summary = Some(summary);
        e.details.trace_id = trace_id;
        e
    }

    /// Bad request input detected by the gateway itself.
    pub fn bad_request(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, "bad_request")
    }

    /// Route not served.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", "not_found")
    }

    /// The audit record of a successful access could not be written: nothing is released.
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway cannot write its audit trail right now, so it does not serve this access; try again later",
            "audit_unavailable",
        )
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The client-facing reason.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// DVV's trace id of the failed call, when DVV gave one.
    pub fn trace_id(&self) -> Option<&str> {
        self.details.trace_id.as_deref()
    }

    /// The gateway's own fault (a bug, a panic caught by the pipeline): nothing internal leaks.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "internal",
        )
    }

    /// More requests in flight than `server.max_concurrent_requests`: shed at once, never queued.
    pub fn overloaded() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway is serving as many requests as it is configured to; retry after the indicated time",
            "overloaded",
        );
        e.details.retry_after = Some(1);
        e
    }

    /// The request did not finish (or a stream did not start) within `server.request_timeout_ms`.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "The request did not complete within the gateway's request time limit",
            "request_timeout",
        )
    }

    /// A method the route does not serve (its one method is named in `Allow`).
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "method_not_allowed",
        )
    }

    /// More than one `Authorization` header: which one is the citizen is ambiguous.
    pub fn repeated_authorization() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Exactly one Authorization header is allowed",
            "repeated_authorization",
        )
    }

    /// A query parameter the route does not take.
    pub fn unknown_query_parameter() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Unknown query parameter",
            "unknown_query_parameter",
        )
    }

    /// A path id that is not a positive integer.
    pub fn bad_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Identifiers are positive integers",
            "bad_request",
        )
    }

    /// A request head larger than the gateway accepts.
    pub fn head_too_large() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request header fields too large",
            "head_too_large",
        )
    }

    /// A short label naming the failure, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl From<AssertionError> for ApiError {
    /// 401 when the credential is missing, invalid, expired or untrusted; 403 when the citizen is
    /// authenticated but not allowed this access. Reasons never echo the token or its claims.
    fn from(e: AssertionError) -> Self {
        use AssertionError as A;
        let (status, reason) = match e {
            A::Missing => (401, "Citizen assertion required"),
            A::Scheme => (401, "Authorization scheme must be Bearer"),
            A::Malformed => (401, "Citizen assertion is malformed"),
            A::AlgorithmNotAllowed => (401, "Citizen assertion algorithm is not allowed"),
            A::UnsupportedCritical => {
                (401, "Citizen assertion uses an unsupported critical header")
            }
            A::UnknownKey => (401, "Citizen assertion signing key is not trusted"),
            A::KeyMismatch => (401, "Citizen assertion algorithm does not match its key"),
            A::BadSignature => (401, "Citizen assertion signature is invalid"),
            A::MissingClaim(_) => (401, "Citizen assertion lacks a required claim"),
            A::WrongIssuer => (401, "Citizen assertion issuer is not trusted"),
            A::WrongAudience => (401, "Citizen assertion is not meant for this gateway"),
            A::Expired => (401, "Citizen assertion has expired"),
            A::NotYetValid => (401, "Citizen assertion is not yet valid"),
            A::IssuedInFuture => (401, "Citizen assertion is issued in the future"),
            A::LifetimeTooLong => (401, "Citizen assertion lifetime is too long"),
            A::InvalidSubject => (
                401,
                "Citizen assertion subject is not a valid identity code",
            ),
            A::AcrNotAccepted => (403, "Authentication assurance level is not sufficient"),
            A::OnBehalfOf => (403, "Acting on behalf of another person is not allowed"),
            A::ClaimNotAllowed => (
                403,
                "Citizen assertion holds a claim this gateway does not allow",
            ),
        };
        let status = if status == 403 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self::new(status, reason, e.kind())
    }
}

impl From<crate::limits::Refusal> for ApiError {
    fn from(refusal: crate::limits::Refusal) -> Self {
        use crate::limits::Scope;
        let (reason, kind) = match refusal.scope {
            Scope::Client => (
                "Too many requests from this operator client; slow down and retry after the indicated time",
                "rate_limited_client",
            ),
            Scope::Citizen => (
                "Too many requests for this citizen; retry after the indicated time",
                "rate_limited_citizen",
            ),
            Scope::Dvv => (
                "The gateway's request budget toward DVV is spent for now; retry after the indicated time",
                "rate_limited_dvv",
            ),
        };
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, reason, kind);
        e.details.retry_after = Some(refusal.retry_after_secs());
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (reason, kind) = match e {
            StoreError::DiskFull => (
                "The gateway's store is full, so it cannot record the opening of this message and does not release it; try again later",
                "store_full",
            ),
            StoreError::ReadOnly => (
                "The gateway's store is read-only, so it cannot record the opening of this message and does not release it; try again later",
                "store_read_only",
            ),
            _ => (
                "The gateway's store cannot record the opening of this message right now, so it does not release it; try again later",
                "store_unavailable",
            ),
        };
        let mut out = Self::new(StatusCode::SERVICE_UNAVAILABLE, reason, kind);
        out.details.retry_after = Some(5);
        out
    }
}

impl ApiError {
    /// The citizen assertion keys (JWKS) are not loaded yet: no assertion can be verified, which
    /// is the gateway's dependency failing, not the citizen's credential.
    pub fn assertion_keys_unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway has not been able to load the identity service's signing keys (JWKS), so it cannot verify citizen assertions right now; try again later",
            "assertion_keys_unavailable",
        );
        e.details.retry_after = Some(5);
        e
    }
}

impl From<DvvError> for ApiError {
    fn from(e: DvvError) -> Self {
        let trace_id = e.trace_id().map(str::to_owned);
        let (status, reason, kind) = match &e {
            DvvError::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "DVV did not answer in time",
                "dvv_timeout",
            ),
            DvvError::Unavailable { .. } => (
                StatusCode::BAD_GATEWAY,
                "DVV could not be reached",
                "dvv_unavailable",
            ),
            DvvError::Upstream5xx { .. } => {
                (StatusCode::BAD_GATEWAY, "DVV failed to answer", "dvv_5xx")
            }
            DvvError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found", "not_found"),
            DvvError::Forbidden { .. } => (
                StatusCode::FORBIDDEN,
                "DVV refused access to this message",
                "dvv_forbidden",
            ),
            DvvError::Conflict { .. } => (
                StatusCode::CONFLICT,
                "DVV reported a conflicting state",
                "dvv_conflict",
            ),
            DvvError::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "DVV refused the request (for example an unknown continuation token, or a receipt for a message that is not Verifiable)",
                "dvv_bad_request",
            ),
            DvvError::BodyStalled { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "DVV stopped sending",
                "dvv_stalled",
            ),
            DvvError::Throttled { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "DVV is throttling this service; try again shortly",
                "dvv_throttled",
            ),
            DvvError::StreamsExhausted => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many attachment downloads are in progress; try again shortly",
                "dvv_streams_exhausted",
            ),
            DvvError::RangeNotSatisfiable { .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is outside the attachment",
                "range_not_satisfiable",
            ),
            DvvError::Unauthorized { .. } | DvvError::Token { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway cannot authenticate to DVV right now",
                "dvv_auth",
            ),
            DvvError::InvalidResponse { .. } => (
                StatusCode::BAD_GATEWAY,
                "DVV answered something the gateway does not understand",
                "dvv_invalid_response",
            ),
        };
        let mut out = Self::new(status, reason, kind);
        out.details.trace_id = trace_id;
        if matches!(e, DvvError::StreamsExhausted) {
            out.details.retry_after = Some(1);
        }
        if let DvvError::RangeNotSatisfiable { content_range, .. } = e {
            out.details.content_range = content_range;
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = *self.details;
        let body = ErrorBody {
            reason: self.reason,
            trace_id: details.trace_id.as_deref(),
            consent_service_url: details.consent_service_url.as_deref(),
            fallback_url: details.fallback_url.as_deref(),
            message: details.summary.as_ref(),
        };
        let json = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"reason":"Internal error"}"#.to_vec());
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(trace) = details
            .trace_id
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(DVV_TRACE_HEADER, trace);
        }
        if let Some(range) = details.content_range {
            headers.insert(header::CONTENT_RANGE, range);
        }
        if let Some(secs) = details.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ikkuna\""),
            );
        }
        response
    }
}

/// Refusals of a citizen's reply (`POST /v1/messages/{id}/replies`).
impl ApiError {
    /// The message's sender accepts no reply: refused before the upload is read.
    pub fn replies_not_allowed(trace_id: Option<String>) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "Replies not allowed: the sender of this message does not accept a reply",
            "replies_not_allowed",
        );
        e.details.trace_id = trace_id;
        e
    }

    /// The declared `Content-Length` is beyond what DVV's limits allow: refused unread.
    pub fn reply_declared_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The reply is larger than DVV accepts (text, file size, file count or total size)",
            "reply_too_large",
        )
    }

    /// The reply lacks its `Idempotency-Key`, or it is malformed.
    pub fn reply_key_required() -> Self {
        Self::bad_request(
            "An Idempotency-Key header of 1 to 64 characters of A-Z, a-z, 0-9 and - is required",
        )
    }

    /// The reply is not `multipart/form-data` with a boundary.
    pub fn reply_not_multipart() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "A reply is multipart/form-data: a body part, then file parts",
            "reply_not_multipart",
        )
    }

    /// DVV's receipt does not describe the bytes the gateway relayed.
    pub fn reply_receipt_mismatch(trace_id: Option<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_GATEWAY,
            "DVV's receipt does not match the files relayed",
            "reply_receipt_mismatch",
        );
        e.details.trace_id = trace_id;
        e
    }
}

impl From<crate::replies::RelayError> for ApiError {
    fn from(e: crate::replies::RelayError) -> Self {
        use crate::dvv::upload::SendError;
        use crate::replies::RelayError as R;
        let (status, reason, kind) = match e {
            R::TooLarge("text") => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The reply's text is longer than DVV accepts; nothing was sent",
                "reply_too_large",
            ),
            R::TooLarge("file count") => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The reply has more files than DVV accepts; nothing was sent",
                "reply_too_large",
            ),
            R::TooLarge("total size") => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The reply's files together are larger than DVV accepts; nothing was sent",
                "reply_too_large",
            ),
            R::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "A file of the reply is larger than DVV accepts; nothing was sent",
                "reply_too_large",
            ),
            R::TypeNotAccepted => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "A file of the reply is of a type DVV does not accept; nothing was sent",
                "reply_type_not_accepted",
            ),
            R::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "The reply is not one body part (UTF-8 text) followed by file parts with plain file names",
                "reply_malformed",
            ),
            R::ClientGone => (
                StatusCode::BAD_REQUEST,
                "The upload broke off before its end; nothing was sent",
                "reply_upload_incomplete",
            ),
            R::ClientStalled => (
                StatusCode::REQUEST_TIMEOUT,
                "The upload stalled; nothing was sent",
                "reply_upload_stalled",
            ),
            R::Upstream(SendError::Stalled) => (
                StatusCode::GATEWAY_TIMEOUT,
                "DVV stopped taking the upload; nothing was recorded",
                "dvv_stalled",
            ),
            R::Upstream(SendError::Closed) => (
                StatusCode::BAD_GATEWAY,
                "The connection to DVV broke during the upload; nothing was recorded",
                "dvv_unavailable",
            ),
        };
        Self::new(status, reason, kind)
    }
}
