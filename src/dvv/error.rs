//! Typed errors of the DVV client. Each variant says where the failure came from, whether trying
//! again later may help ([`DvvError::is_retryable`]) and which metric label it counts under
//! ([`DvvError::kind`]). Messages never hold identity codes, tokens or response bodies: at most
//! DVV's own `reason`, sanitised.

use http::StatusCode;

/// DVV's trace id of a response, when it sent one.
pub type TraceId = Option<String>;

/// DVV's `reason` on a message call for a revoked consent (contract: 403 `Consent revoked`).
const CONSENT_REVOKED_REASON: &str = "Consent revoked";

/// Why a call to DVV failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DvvError {
    /// The call's deadline (`dvv.call_timeout_ms`) passed, retries included.
    #[error("DVV call timed out")]
    Timeout {
        /// DVV's trace id, if a response had arrived.
        trace_id: TraceId,
    },
    /// DVV could not be reached: connect, TLS or network error, or the connection dropped.
    #[error("DVV unavailable: {cause}")]
    Unavailable {
        /// What failed (transport level; no content).
        cause: String,
        /// DVV's trace id, if a response had started.
        trace_id: TraceId,
    },
    /// DVV answered with a server error.
    #[error("DVV answered {status}")]
    Upstream5xx {
        /// The status (500..=599).
        status: StatusCode,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// DVV asked us to slow down (429).
    #[error("DVV is throttling this provider")]
    Throttled {
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// The consent, message or attachment does not exist for this provider (404).
    #[error("not found at DVV: {reason}")]
    NotFound {
        /// DVV's reason.
        reason: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// DVV refused: e.g. the consent is revoked or receipt confirmation is required (403).
    #[error("refused by DVV: {reason}")]
    Forbidden {
        /// DVV's reason.
        reason: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// DVV reported a conflict it did not resolve with an original answer (409).
    #[error("conflict at DVV: {reason}")]
    Conflict {
        /// DVV's reason.
        reason: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// DVV refused the request as malformed (400, 405, 413, 422): a bug on our side or bad input.
    #[error("DVV refused the request ({status}): {reason}")]
    BadRequest {
        /// The status.
        status: StatusCode,
        /// DVV's reason.
        reason: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// The requested byte range is outside the attachment (416).
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable {
        /// DVV's `Content-Range: bytes */<size>`, to pass on.
        content_range: Option<http::HeaderValue>,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// DVV refused the access token even after one renewal and one retry (401).
    #[error("DVV refused the access token")]
    Unauthorized {
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// An attachment body from DVV went silent for longer than `dvv.body_idle_timeout_ms`.
    #[error("DVV body stalled")]
    BodyStalled {
        /// DVV's trace id of the response.
        trace_id: TraceId,
    },
    /// Every attachment connection to DVV (`dvv.max_attachment_streams`) is in use: the download
    /// is refused at once rather than queued or squeezed onto the connections other calls need.
    #[error("too many attachment downloads in progress")]
    StreamsExhausted,
    /// DVV's response did not have the contract's shape.
    #[error("invalid response from DVV: {what}")]
    InvalidResponse {
        /// What was wrong (never the body itself).
        what: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
    /// The token endpoint refused this operator's client assertion or certificate, or answered
    /// something unusable: a configuration problem, not a transient one. (An unreachable token
    /// endpoint is [`DvvError::Unavailable`], a 5xx from it [`DvvError::Upstream5xx`].)
    #[error("DVV token request failed: {reason}")]
    Token {
        /// The status, when DVV answered at all.
        status: Option<StatusCode>,
        /// DVV's reason, or what failed.
        reason: String,
        /// DVV's trace id.
        trace_id: TraceId,
    },
}

impl DvvError {
    /// DVV's trace id of the failing response, for echoing to the operator and for logs.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Self::Timeout { trace_id }
            | Self::Unavailable { trace_id, .. }
            | Self::Upstream5xx { trace_id, .. }
            | Self::Throttled { trace_id }
            | Self::NotFound { trace_id, .. }
            | Self::Forbidden { trace_id, .. }
            | Self::Conflict { trace_id, .. }
            | Self::BadRequest { trace_id, .. }
            | Self::RangeNotSatisfiable { trace_id, .. }
            | Self::Unauthorized { trace_id }
            | Self::BodyStalled { trace_id }
            | Self::InvalidResponse { trace_id, .. }
            | Self::Token { trace_id, .. } => trace_id.as_deref(),
            Self::StreamsExhausted => None,
        }
    }

    /// Whether DVV refused because the citizen's consent has ended (the contract's 403
    /// `Consent revoked`), as opposed to other refusals such as a pending receipt confirmation.
    /// The caller must then drop any cached "active" answer at once.
    pub fn is_consent_revoked(&self) -> bool {
        matches!(self, Self::Forbidden { reason, .. } if reason.eq_ignore_ascii_case(CONSENT_REVOKED_REASON))
    }

    /// The refusal of an opening report that the contract names permanent, if this is one.
    /// Anything else — including a 403 `Consent revoked` from a DVV that does not keep consent
    /// periods — may still be accepted later, so the opening must be reported again.
    pub fn opening_refusal(&self) -> Option<super::contract::OpeningRefusal> {
        let (status, reason) = match self {
            Self::NotFound { reason, .. } => (404, reason),
            Self::Forbidden { reason, .. } => (403, reason),
            Self::BadRequest { status, reason, .. } => (status.as_u16(), reason),
            _ => return None,
        };
        super::contract::OpeningRefusal::from_answer(status, reason)
    }

    /// Whether the same call may succeed if tried again later (transient failures). Within one
    /// call the client already retries these while its deadline allows; callers with their own
    /// retry loop (the openings outbox) use this to decide between "later" and "give up".
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::Upstream5xx { .. }
            | Self::Throttled { .. }
            | Self::StreamsExhausted
            | Self::BodyStalled { .. } => true,
            Self::Token { .. }
            | Self::NotFound { .. }
            | Self::Forbidden { .. }
            | Self::Conflict { .. }
            | Self::BadRequest { .. }
            | Self::RangeNotSatisfiable { .. }
            | Self::Unauthorized { .. }
            | Self::InvalidResponse { .. } => false,
        }
    }

    /// A short stable label for metrics (`dvv_errors_total{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Upstream5xx { .. } => "upstream_5xx",
            Self::Throttled { .. } => "throttled",
            Self::NotFound { .. } => "not_found",
            Self::Forbidden { .. } => "forbidden",
            Self::Conflict { .. } => "conflict",
            Self::BadRequest { .. } => "bad_request",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::BodyStalled { .. } => "body_stalled",
            Self::StreamsExhausted => "streams_exhausted",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Token { .. } => "token",
        }
    }

    /// Whether the retry loop of one call may try again after this error (a subset of
    /// [`Self::is_retryable`]: a timeout ends the call, a stalled body cannot be replayed).
    pub(crate) fn retry_within_call(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Upstream5xx { .. } | Self::Throttled { .. }
        )
    }
}

/// Why a [`super::DvvClient`] could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum DvvSetupError {
    /// A file named by the configuration could not be read.
    #[error("{field}: {path}: cannot read: {reason}")]
    Read {
        /// The configuration field.
        field: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A certificate or key file does not hold what it should.
    #[error("{field}: {reason}")]
    Material {
        /// The configuration field.
        field: &'static str,
        /// What is wrong (never the material).
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("dvv TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// DVV's `reason`, made safe to show and log: control characters removed, length bounded.
pub(crate) fn sanitise_reason(reason: &str) -> String {
    const MAX: usize = 200;
    let mut clean: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX)
        .collect();
    if reason.chars().count() > MAX {
        clean.push('…');
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let trace = || Some("t-1".to_owned());
        let retryable = [
            DvvError::Timeout { trace_id: None },
            DvvError::Unavailable {
                cause: "connection refused".into(),
                trace_id: None,
            },
            DvvError::Upstream5xx {
                status: StatusCode::BAD_GATEWAY,
                trace_id: trace(),
            },
            DvvError::BodyStalled { trace_id: trace() },
        ];
        for error in &retryable {
            assert!(error.is_retryable(), "{error:?}");
        }
        let final_ = [
            DvvError::NotFound {
                reason: "Message not found".into(),
                trace_id: trace(),
            },
            DvvError::Forbidden {
                reason: "Consent revoked".into(),
                trace_id: trace(),
            },
            DvvError::Unauthorized { trace_id: trace() },
            DvvError::Token {
                status: Some(StatusCode::UNAUTHORIZED),
                reason: "bad assertion".into(),
                trace_id: None,
            },
        ];
        for error in &final_ {
            assert!(!error.is_retryable(), "{error:?}");
        }
        assert_eq!(retryable[2].trace_id(), Some("t-1"));
        assert_eq!(retryable[2].kind(), "upstream_5xx");
        assert_eq!(final_[1].to_string(), "refused by DVV: Consent revoked");
        assert!(!DvvError::Timeout { trace_id: None }.retry_within_call());
        assert!(!DvvError::BodyStalled { trace_id: None }.retry_within_call());
    }

    #[test]
    fn only_the_named_permanent_refusals_of_an_opening_are_final() {
        use crate::dvv::contract::OpeningRefusal;
        let named = |status: u16, reason: &str| match status {
            404 => DvvError::NotFound {
                reason: reason.into(),
                trace_id: None,
            },
            403 => DvvError::Forbidden {
                reason: reason.into(),
                trace_id: None,
            },
            s => DvvError::BadRequest {
                status: StatusCode::from_u16(s).unwrap(),
                reason: reason.into(),
                trace_id: None,
            },
        };
        let permanent = [
            (404, "Consent not found", OpeningRefusal::ConsentNotFound),
            (404, "Message not found", OpeningRefusal::MessageNotFound),
            (
                403,
                "Opened outside consent",
                OpeningRefusal::OpenedOutsideConsent,
            ),
            (
                422,
                "Opened before content release",
                OpeningRefusal::OpenedBeforeRelease,
            ),
            (
                422,
                "Opening outside retention",
                OpeningRefusal::OutsideRetention,
            ),
        ];
        for (status, reason, refusal) in permanent {
            assert_eq!(named(status, reason).opening_refusal(), Some(refusal));
        }
        let not_final = [
            named(403, "Consent revoked"),
            named(403, "Receipt confirmation required"),
            named(422, "Opened in the future"),
            named(400, "Request validation failed"),
            named(422, "Opened outside consent"),
            DvvError::Unauthorized { trace_id: None },
            DvvError::Timeout { trace_id: None },
            DvvError::Upstream5xx {
                status: StatusCode::SERVICE_UNAVAILABLE,
                trace_id: None,
            },
        ];
        for e in &not_final {
            assert_eq!(e.opening_refusal(), None, "{e:?}");
        }
    }

    #[test]
    fn reasons_are_sanitised() {
        assert_eq!(sanitise_reason("a\nb\u{7}c"), "abc");
        let long = "x".repeat(500);
        assert_eq!(sanitise_reason(&long).chars().count(), 201);
    }
}
