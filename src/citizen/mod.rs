//! Citizen assertions: who is asking, proven by a short-lived JWT from the operator's identity
//! service.
//!
//! The operator's backend sends `Authorization: Bearer <JWT>` with every call; `sub` is the
//! citizen's identity code, `acr` the assurance level, `aud` this gateway. [`AssertionVerifier`]
//! checks it completely (asymmetric algorithms only, key pinned to its type, issuer, audience,
//! times with a small skew, maximum lifetime, assurance level, a valid identity code, no acting on
//! behalf of someone else) and yields a [`Citizen`], or an [`AssertionError`] that maps to one
//! HTTP status and one client-facing reason. No HTTP framework type appears here.

mod derived;
mod error;
mod fetch;
mod jwks;
mod keys;
mod representation;
mod seen;
mod settings;
mod verifier;

#[cfg(test)]
mod tests;

pub use derived::Derived;
pub use error::{AssertionError, JwksError, VerifierBuildError};
pub use jsonwebtoken::Algorithm;
pub use representation::{names_representation, VERIFIER_CLAIMS};
pub use settings::{
    default_accepted_acr, default_algorithms, JwksSource, KeysStatus, VerifierSettings,
    ACR_HIGH_EIDAS, ACR_HIGH_FI, ACR_SUBSTANTIAL_EIDAS, ACR_SUBSTANTIAL_FI,
};
pub use verifier::{AssertionVerifier, Citizen};
