//! The DVV access token: fetched with a client assertion, cached, renewed ahead of expiry, one
//! renewal in flight at a time however many calls need it, and dropped when DVV answers 401 so
//! that exactly one renewal follows.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::error::DvvError;

/// A bearer access token. Never printed: `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token string.
    pub(crate) fn new(token: String) -> Self {
        Self(token.into())
    }

    /// The `Authorization` header value, marked sensitive so hyper never logs it.
    pub(crate) fn bearer(&self) -> Result<HeaderValue, DvvError> {
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", self.0)).map_err(|_| DvvError::Token {
                status: None,
                reason: "access token is not a valid header value".to_owned(),
                trace_id: None,
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// A token as the token endpoint issued it.
#[derive(Debug, Clone)]
pub(crate) struct FreshToken {
    /// The token.
    pub token: AccessToken,
    /// `expires_in`.
    pub lifetime: Duration,
}

/// The boxed future of one token request.
pub(crate) type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FreshToken, DvvError>> + Send + 'a>>;

/// Where tokens come from: the token endpoint in production, a counter in tests.
pub(crate) trait TokenSource: Send + Sync + 'static {
    /// Requests one new token.
    fn fetch(&self) -> TokenFuture<'_>;
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    /// From here on a caller renews it.
    renew_at: Instant,
    /// From here on it must not be used.
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Cached>,
    /// Completed token requests, so a caller that waited on a renewal knows one happened.
    attempts: u64,
    /// The last request's failure, shared with the callers that waited on it.
    last_failure: Option<DvvError>,
}

/// The cached access token with single-flight renewal.
pub(crate) struct TokenCache {
    source: Box<dyn TokenSource>,
    renew_before: Duration,
    state: Mutex<State>,
    /// Held while a renewal is in flight: only its holder talks to the token endpoint.
    renewal: tokio::sync::Mutex<()>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("renew_before", &self.renew_before)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache over `source` that renews `renew_before` ahead of expiry (at most half the
    /// token's lifetime ahead, so a short-lived token is still used).
    pub(crate) fn new(source: Box<dyn TokenSource>, renew_before: Duration) -> Self {
        Self {
            source,
            renew_before,
            state: Mutex::new(State::default()),
            renewal: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token good for a call now: the cached one, or a renewed one. Concurrent callers that
    /// find it stale wait for one renewal rather than each requesting a token; if that renewal
    /// fails they get its error (or the old token while it is still valid).
    pub(crate) async fn get(&self) -> Result<AccessToken, DvvError> {
        let seen = {
            let state = self.state();
            if let Some(token) = usable(&state, |c| c.renew_at) {
                return Ok(token);
            }
            state.attempts
        };
        let _renewing = self.renewal.lock().await;
        {
            let state = self.state();
            if let Some(token) = usable(&state, |c| c.renew_at) {
                return Ok(token);
            }
            if state.attempts != seen {
                if let Some(error) = &state.last_failure {
                    return match usable(&state, |c| c.expires_at) {
                        Some(token) => Ok(token),
                        None => Err(error.clone()),
                    };
                }
            }
        }
        let result = self.source.fetch().await;
        let mut state = self.state();
        state.attempts += 1;
        match result {
            Ok(fresh) => {
                let now = Instant::now();
                let lead = self.renew_before.min(fresh.lifetime / 2);
                state.current = Some(Cached {
                    token: fresh.token.clone(),
                    renew_at: now + (fresh.lifetime - lead),
                    expires_at: now + fresh.lifetime,
                });
                state.last_failure = None;
                crate::telemetry::metrics::with(|m| {
                    m.token_renewals.with_label_values(&["ok"]).inc();
                });
                tracing::debug!(
                    lifetime_secs = fresh.lifetime.as_secs(),
                    "dvv access token renewed"
                );
                Ok(fresh.token)
            }
            Err(error) => {
                tracing::warn!(error = %error, "dvv access token renewal failed");
                crate::telemetry::metrics::with(|m| {
                    m.token_renewals.with_label_values(&["error"]).inc();
                });
                state.last_failure = Some(error.clone());
                match usable(&state, |c| c.expires_at) {
                    Some(token) => Ok(token),
                    None => Err(error),
                }
            }
        }
    }

    /// Forgets `stale` (DVV refused it with 401), so the next [`Self::get`] renews. A token
    /// renewed meanwhile by another caller is kept: one 401 causes at most one renewal.
    pub(crate) fn invalidate(&self, stale: &AccessToken) {
        let mut state = self.state();
        if state.current.as_ref().is_some_and(|c| &c.token == stale) {
            state.current = None;
        }
    }
}

/// The cached token if `deadline_of` it is still ahead.
fn usable(state: &State, deadline_of: impl Fn(&Cached) -> Instant) -> Option<AccessToken> {
    let cached = state.current.as_ref()?;
    (Instant::now() < deadline_of(cached)).then(|| cached.token.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Issues `token-N`, counting requests; fails while `fail` is set.
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        delay: Duration,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    impl TokenSource for Counting {
        fn fetch(&self) -> TokenFuture<'_> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(DvvError::Token {
                        status: Some(http::StatusCode::SERVICE_UNAVAILABLE),
                        reason: "down".into(),
                        trace_id: None,
                    });
                }
                Ok(FreshToken {
                    token: AccessToken::new(format!("token-{n}")),
                    lifetime: self.lifetime,
                })
            })
        }
    }

    fn cache(
        lifetime: Duration,
    ) -> (
        Arc<TokenCache>,
        Arc<AtomicUsize>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = Counting {
            calls: calls.clone(),
            lifetime,
            delay: Duration::from_millis(50),
            fail: fail.clone(),
        };
        let cache = TokenCache::new(Box::new(source), Duration::from_secs(60));
        (Arc::new(cache), calls, fail)
    }

    fn name(token: &AccessToken) -> &str {
        &token.0
    }

    #[tokio::test(start_paused = true)]
    async fn many_concurrent_callers_cause_one_token_request() {
        let (cache, calls, _) = cache(Duration::from_secs(300));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for task in tasks {
            assert_eq!(name(&task.await.unwrap().unwrap()), "token-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Cached afterwards.
        cache.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_ahead_of_expiry() {
        let (cache, calls, _) = cache(Duration::from_secs(300));
        assert_eq!(name(&cache.get().await.unwrap()), "token-1");
        tokio::time::advance(Duration::from_secs(239)).await;
        assert_eq!(name(&cache.get().await.unwrap()), "token-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            name(&cache.get().await.unwrap()),
            "token-2",
            "renewed 60 s ahead"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_are_used_for_half_their_life() {
        let (cache, _, _) = cache(Duration::from_secs(30));
        assert_eq!(name(&cache.get().await.unwrap()), "token-1");
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(name(&cache.get().await.unwrap()), "token-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(name(&cache.get().await.unwrap()), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_causes_exactly_one_renewal() {
        let (cache, calls, _) = cache(Duration::from_secs(300));
        let stale = cache.get().await.unwrap();
        // Many callers see the same 401 and invalidate the same stale token.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, stale) = (cache.clone(), stale.clone());
                tokio::spawn(async move {
                    cache.invalidate(&stale);
                    cache.get().await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(name(&task.await.unwrap().unwrap()), "token-2");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Invalidating the old token again does not drop the new one.
        cache.invalidate(&stale);
        assert_eq!(name(&cache.get().await.unwrap()), "token-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_a_failed_renewal_and_a_valid_old_token_is_kept() {
        let (cache, calls, fail) = cache(Duration::from_secs(300));
        fail.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Err(DvvError::Token { .. })));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "waiters did not each retry"
        );

        fail.store(false, Ordering::SeqCst);
        assert_eq!(name(&cache.get().await.unwrap()), "token-2");
        // In the renewal window the endpoint fails: the still-valid token keeps working.
        tokio::time::advance(Duration::from_secs(250)).await;
        fail.store(true, Ordering::SeqCst);
        assert_eq!(name(&cache.get().await.unwrap()), "token-2");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache.get().await.is_err(), "an expired token is never used");
    }

    #[test]
    fn token_is_not_printed() {
        let token = AccessToken::new("secret-token".into());
        assert!(!format!("{token:?}").contains("secret"));
        let header = token.bearer().unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("secret"));
    }
}
