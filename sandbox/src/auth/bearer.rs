//! Bearer access tokens: random, bound to the provider they were issued to, expiring.
//!
//! Kept in memory only: after a restart every client authenticates again, as it would after
//! any 401.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Live tokens kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` header.
    #[error("Missing bearer token")]
    Missing,
    /// Not a token this sandbox issued (or issued before a restart).
    #[error("Unknown bearer token")]
    Unknown,
    /// Expired.
    #[error("Bearer token has expired")]
    Expired,
    /// Issued to another provider than the client certificate's.
    #[error("Bearer token was issued to another provider")]
    WrongProvider,
}

/// The issued tokens.
#[derive(Debug)]
pub struct BearerTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl BearerTokens {
    /// Tokens valid for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Lifetime of new tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token to `provider`.
    pub fn issue(&self, provider: &str) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= SWEEP_AT {
            tokens.retain(|_, (_, until)| *until > now);
        }
        tokens.insert(token.clone(), (provider.to_owned(), now + self.ttl));
        token
    }

    /// Checks a token presented on a connection of `cert_provider`; answers the provider.
    pub fn check(
        &self,
        token: Option<&str>,
        cert_provider: Option<&str>,
    ) -> Result<String, BearerError> {
        let token = token.ok_or(BearerError::Missing)?;
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (provider, until) = tokens.get(token).ok_or(BearerError::Unknown)?;
        if Instant::now() >= *until {
            return Err(BearerError::Expired);
        }
        if cert_provider != Some(provider.as_str()) {
            return Err(BearerError::WrongProvider);
        }
        Ok(provider.clone())
    }

    /// Tokens currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_and_expire() {
        let tokens = BearerTokens::new(Duration::from_millis(50));
        let t = tokens.issue("provider-a");
        assert_eq!(
            tokens.check(Some(&t), Some("provider-a")).unwrap(),
            "provider-a"
        );
        assert_eq!(
            tokens.check(Some(&t), Some("provider-b")),
            Err(BearerError::WrongProvider)
        );
        assert_eq!(
            tokens.check(Some("nope"), Some("provider-a")),
            Err(BearerError::Unknown)
        );
        assert_eq!(
            tokens.check(None, Some("provider-a")),
            Err(BearerError::Missing)
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            tokens.check(Some(&t), Some("provider-a")),
            Err(BearerError::Expired)
        );
    }
}
