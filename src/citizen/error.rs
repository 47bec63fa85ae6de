//! Why a citizen assertion was refused, in a shape the operator API can answer with directly.

/// Why a citizen assertion was refused.
///
/// Every variant has one metric label ([`AssertionError::kind`]); the operator API maps each to
/// one HTTP status and reason (`api::error`, the one mapping). No variant carries the token, a
/// claim value or an identity code, so an error can be logged as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// No `Authorization` header at all.
    #[error("no citizen assertion was presented")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the authorization scheme is not Bearer")]
    Scheme,
    /// The token is not a well-formed compact JWS (three base64url parts, JSON header and claims).
    #[error("the citizen assertion is malformed")]
    Malformed,
    /// The header names `none`, an HMAC algorithm, or any algorithm outside the allow-list.
    #[error("the assertion's signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header carries a `crit` extension this verifier does not understand.
    #[error("the assertion uses an unsupported critical header extension")]
    UnsupportedCritical,
    /// The header names no `kid`, or one that the trusted key set does not hold even after a refresh.
    #[error("the assertion's signing key is not trusted")]
    UnknownKey,
    /// The header's algorithm does not fit the key type or the `alg` pinned in the JWK.
    #[error("the assertion's algorithm does not match its key")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("the assertion's signature does not verify")]
    BadSignature,
    /// A required claim is absent or has the wrong JSON type.
    #[error("the assertion lacks the required claim {0}")]
    MissingClaim(&'static str),
    /// `iss` is not the configured identity service.
    #[error("the assertion was issued by an untrusted issuer")]
    WrongIssuer,
    /// `aud` does not name this gateway.
    #[error("the assertion is meant for another audience")]
    WrongAudience,
    /// `exp` is in the past beyond the allowed clock skew.
    #[error("the assertion has expired")]
    Expired,
    /// `nbf` is in the future beyond the allowed clock skew.
    #[error("the assertion is not yet valid")]
    NotYetValid,
    /// `iat` is in the future beyond the allowed clock skew.
    #[error("the assertion claims to be issued in the future")]
    IssuedInFuture,
    /// `exp − iat` (or `exp − nbf`) exceeds the configured maximum lifetime.
    #[error("the assertion's lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    /// `sub` is not a valid Finnish personal identity code.
    #[error("the assertion's subject is not a valid identity code")]
    InvalidSubject,
    /// The citizen authenticated, but `acr` is not an accepted assurance level.
    #[error("the authentication assurance level is not accepted")]
    AcrNotAccepted,
    /// The assertion acts for someone else (actor, mandate or principal claim).
    #[error("acting on behalf of another person is not allowed")]
    OnBehalfOf,
    /// Strict mode (`assertions.allowed_claims`): the assertion holds a claim not on the list.
    #[error("the assertion holds a claim that is not allowed")]
    ClaimNotAllowed,
}

impl AssertionError {
    /// A stable snake_case label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Scheme => "scheme",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::UnknownKey => "unknown_key",
            Self::KeyMismatch => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim(_) => "missing_claim",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::InvalidSubject => "invalid_subject",
            Self::AcrNotAccepted => "acr_not_accepted",
            Self::OnBehalfOf => "on_behalf_of",
            Self::ClaimNotAllowed => "claim_not_allowed",
        }
    }
}

/// Why an [`AssertionVerifier`](super::AssertionVerifier) could not be built, or why its key set
/// could not be (re)loaded. Names the problem, never key material.
#[derive(Debug, thiserror::Error)]
pub enum VerifierBuildError {
    /// An HMAC algorithm was configured: a shared secret cannot prove who issued an assertion.
    #[error("symmetric algorithm {0} is not allowed for citizen assertions")]
    SymmetricAlgorithm(&'static str),
    /// The algorithm allow-list is empty.
    #[error("no signing algorithm is allowed")]
    NoAlgorithms,
    /// The accepted assurance levels are empty, so no citizen could ever pass.
    #[error("no accepted assurance level (acr) is configured")]
    NoAcceptedAcr,
    /// Issuer or audience is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The key set could not be loaded.
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

/// Why the trusted key set (JWKS) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Reading the JWKS file failed.
    #[error("reading the JWKS file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JWKS is not a JSON object with a `keys` array.
    #[error("the JWKS is not valid JSON with a keys array")]
    Parse,
    /// The JWKS holds no usable asymmetric signing key.
    #[error("the JWKS holds no usable asymmetric signing key")]
    NoUsableKeys,
    /// The JWKS URL is not an absolute https URL.
    #[error("the JWKS URL must be an absolute https URL")]
    Url,
    /// The trust anchors for fetching the JWKS could not be loaded.
    #[error("loading trust anchors for the JWKS URL: {0}")]
    Trust(String),
    /// Fetching the JWKS failed (connection, TLS, status, size or time limit).
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}

impl JwksError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Parse => "parse",
            Self::NoUsableKeys => "no_usable_keys",
            Self::Url => "url",
            Self::Trust(_) => "trust",
            Self::Fetch(_) => "fetch",
        }
    }
}
