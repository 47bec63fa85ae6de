//! What the verifier needs to know, as plain values the gateway's configuration fills in.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::error::VerifierBuildError;

/// Finnish substantial assurance level (Traficom / FICORA URI).
pub const ACR_SUBSTANTIAL_FI: &str = "http://ftn.ficora.fi/2017/loa2";
/// Finnish high assurance level (Traficom / FICORA URI).
pub const ACR_HIGH_FI: &str = "http://ftn.ficora.fi/2017/loa3";
/// eIDAS substantial assurance level.
pub const ACR_SUBSTANTIAL_EIDAS: &str = "http://eidas.europa.eu/LoA/substantial";
/// eIDAS high assurance level.
pub const ACR_HIGH_EIDAS: &str = "http://eidas.europa.eu/LoA/high";

/// Where the operator's identity service publishes the keys that sign citizen assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on local disk, re-read at every refresh (so key rotation is a file swap).
    File(PathBuf),
    /// A JWKS document at an `https` URL.
    Url {
        /// Absolute `https://` URL of the JWKS document.
        url: String,
        /// PEM file of the CA certificates to trust for that URL; when absent, the system bundle.
        ca_file: Option<PathBuf>,
    },
}

/// Settings of an [`AssertionVerifier`](super::AssertionVerifier). The gateway's configuration
/// fills these in; this module knows nothing of where they came from.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// The exact `iss` the operator's identity service puts in assertions.
    pub issuer: String,
    /// The `aud` that names this gateway.
    pub audience: String,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// How often the key set is re-read even when every `kid` is known.
    pub refresh: Duration,
    /// An unknown `kid` re-reads the key set at most once per this window (no refresh storms).
    pub unknown_kid_cooldown: Duration,
    /// Allowed signature algorithms. Only asymmetric ones: HMAC is refused at build time and at
    /// verification, and `none` cannot even be named.
    pub algorithms: Vec<Algorithm>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Longest accepted lifetime `exp − iat` (or `exp − nbf`).
    pub max_lifetime: Duration,
    /// Accepted `acr` values (assurance levels).
    pub accepted_acr: Vec<String>,
    /// Strict mode: when set, any top-level claim outside this list (and [`VERIFIER_CLAIMS`],
    /// which the verifier reads itself) refuses the assertion.
    ///
    /// [`VERIFIER_CLAIMS`]: super::VERIFIER_CLAIMS
    pub allowed_claims: Option<Vec<String>>,
    /// Time limit for one JWKS fetch from a URL.
    pub fetch_timeout: Duration,
    /// Whether the key set is loaded, shared with whoever reports readiness.
    pub keys_status: KeysStatus,
}

/// Whether the verifier holds a key set, and whether its last load failed. A JWKS URL that fails
/// at start does not stop the gateway: it starts with no keys, reports itself not ready through
/// this handle, and loads the keys as soon as the URL answers.
#[derive(Debug, Clone, Default)]
pub struct KeysStatus(std::sync::Arc<KeysFlags>);

#[derive(Debug, Default)]
struct KeysFlags {
    loaded: std::sync::atomic::AtomicBool,
    last_failed: std::sync::atomic::AtomicBool,
}

impl KeysStatus {
    /// Whether a key set was ever loaded (assertions can be verified).
    pub fn loaded(&self) -> bool {
        self.0.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the most recent load failed (the keys in use may be stale, or absent).
    pub fn last_failed(&self) -> bool {
        self.0
            .last_failed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes the outcome of one load.
    pub(crate) fn note(&self, ok: bool) {
        use std::sync::atomic::Ordering;
        if ok {
            self.0.loaded.store(true, Ordering::Release);
        }
        self.0.last_failed.store(!ok, Ordering::Release);
    }
}

impl VerifierSettings {
    /// Settings with the defaults for everything but who issues assertions, for whom, and where
    /// their keys are: refresh every 5 minutes, unknown-`kid` refresh at most every 30 s,
    /// ES256/ES384/EdDSA/PS256/RS256, 30 s skew, 10 minutes maximum lifetime, substantial and high
    /// assurance (Finnish and eIDAS URIs).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            refresh: Duration::from_secs(300),
            unknown_kid_cooldown: Duration::from_secs(30),
            algorithms: default_algorithms(),
            leeway: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(600),
            accepted_acr: default_accepted_acr(),
            allowed_claims: None,
            fetch_timeout: Duration::from_secs(10),
            keys_status: KeysStatus::default(),
        }
    }

    /// Checks the settings for values that would make the verifier unsafe or useless.
    pub fn validate(&self) -> Result<(), VerifierBuildError> {
        if self.issuer.is_empty() {
            return Err(VerifierBuildError::Empty("issuer"));
        }
        if self.audience.is_empty() {
            return Err(VerifierBuildError::Empty("audience"));
        }
        if self.algorithms.is_empty() {
            return Err(VerifierBuildError::NoAlgorithms);
        }
        if let Some(alg) = self.algorithms.iter().find(|a| !is_asymmetric(**a)) {
            return Err(VerifierBuildError::SymmetricAlgorithm(algorithm_name(*alg)));
        }
        if self.accepted_acr.is_empty() {
            return Err(VerifierBuildError::NoAcceptedAcr);
        }
        Ok(())
    }
}

/// The default algorithm allow-list: EC, EdDSA and RSA (PSS and PKCS#1 v1.5) with SHA-256.
pub fn default_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::PS256,
        Algorithm::RS256,
    ]
}

/// The default accepted assurance levels: substantial and high, Finnish and eIDAS URIs.
pub fn default_accepted_acr() -> Vec<String> {
    [
        ACR_SUBSTANTIAL_FI,
        ACR_HIGH_FI,
        ACR_SUBSTANTIAL_EIDAS,
        ACR_HIGH_EIDAS,
    ]
    .map(String::from)
    .to_vec()
}

/// Whether an algorithm proves its signer with a public key (never a shared secret).
pub(crate) fn is_asymmetric(alg: Algorithm) -> bool {
    alg.family() != AlgorithmFamily::Hmac
}

/// The JOSE name of an algorithm.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}
