//! The consent cache: bounded, short-lived, coalescing, and overruled by revocations.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::changes::Changes;
use super::pseudonym::{CitizenKey, Keyer};
use super::table::{Entry, Source, Table};
use super::{Consent, ConsentDecision};
use ikkuna_hetu::IdentityCode;

/// How many times a lookup is repeated when a revocation overtakes it before giving up on the
/// safe side.
const MAX_ATTEMPTS: usize = 3;

/// Slack added to how long revocation records are kept, beyond the longest TTL, so a record
/// never disappears before the last answer it overrules has expired.
const RETENTION_MARGIN: Duration = Duration::from_secs(1);

/// How the consent cache is sized and how long its answers live. Filled from the gateway's
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentCacheSettings {
    /// Most citizens held at once.
    pub capacity: u64,
    /// Longest life of an "active" answer: the revocation bound when the events feed is down.
    pub positive_ttl: Duration,
    /// Life of a "no consent" or "revoked" answer, so a fresh grant shows up quickly.
    pub negative_ttl: Duration,
}

impl Default for ConsentCacheSettings {
    /// 100 000 citizens, 30 s for active answers, 5 s for negative ones.
    fn default() -> Self {
        Self {
            capacity: 100_000,
            positive_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
        }
    }
}

/// Revocations kept for slow watchers; one that falls further behind is told "maybe revoked"
/// and must confirm the consent itself.
const REVOCATIONS_BUFFERED: usize = 1024;

/// What a [`RevocationWatch`] learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationNews {
    /// This consent was revoked.
    Revoked,
    /// Revocations were missed (the watcher fell behind): the consent may have been revoked and
    /// must be looked up again.
    Missed,
}

/// A subscription to the revocation of one consent ([`ConsentCache::watch_revocation`]).
#[derive(Debug)]
pub struct RevocationWatch {
    consent_id: Arc<str>,
    receiver: tokio::sync::broadcast::Receiver<Arc<str>>,
}

impl RevocationWatch {
    /// Resolves when the consent is revoked or revocations were missed; pending forever after
    /// the cache is gone.
    pub async fn changed(&mut self) -> RevocationNews {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.receiver.recv().await {
                Ok(id) if id == self.consent_id => return RevocationNews::Revoked,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return RevocationNews::Missed,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// Counters for metrics: plain numbers, no citizen in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentCacheStats {
    /// Checks answered without a lookup of their own (cached, or joined another's lookup).
    pub hits: u64,
    /// Lookups performed (each one DVV consent call).
    pub misses: u64,
    /// Answers thrown away because a revocation or invalidation overtook them.
    pub stale: u64,
    /// Revocations and invalidations received.
    pub invalidations: u64,
}

struct Inner {
    cache: Table,
    keyer: Keyer,
    /// Names this cache's (random) key among others in the process, for memoised keys.
    keyer_id: u64,
    changes: Changes,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    invalidations: AtomicU64,
    /// Each revoked consent id, for the streams in flight under it (see [`RevocationWatch`]).
    revoked: tokio::sync::broadcast::Sender<Arc<str>>,
}

/// Caches each citizen's consent decision. Cheap to clone; clones share one cache.
#[derive(Clone)]
pub struct ConsentCache {
    inner: Arc<Inner>,
}

impl ConsentCache {
    /// An empty cache with a fresh random pseudonym key.
    pub fn new(settings: ConsentCacheSettings) -> Self {
        let cache = Table::new(
            settings.capacity,
            settings.positive_ttl,
            settings.negative_ttl,
        );
        let retention = settings.positive_ttl.max(settings.negative_ttl) + RETENTION_MARGIN;
        Self {
            inner: Arc::new(Inner {
                cache,
                keyer: Keyer::random(),
                keyer_id: {
                    static NEXT: AtomicU64 = AtomicU64::new(1);
                    NEXT.fetch_add(1, Ordering::Relaxed)
                },
                changes: Changes::new(retention),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                stale: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                revoked: tokio::sync::broadcast::channel(REVOCATIONS_BUFFERED).0,
            }),
        }
    }

    /// The citizen's consent decision: from the cache when current, otherwise from `lookup` (the
    /// DVV consent call). Concurrent checks for one citizen share one lookup. Errors are not
    /// cached.
    ///
    /// A revocation that arrives while a lookup is in flight overrules that lookup's answer: the
    /// lookup is repeated (up to three times in all), and if revocations keep overtaking it an
    /// "active" answer is reported as revoked rather than trusted.
    pub async fn get_or_lookup<F, Fut, E>(
        &self,
        citizen: &IdentityCode,
        lookup: F,
    ) -> Result<ConsentDecision, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Consent>, E>>,
        E: Clone + Send + Sync + 'static,
    {
        self.get_or_lookup_by_key(self.inner.keyer.key(citizen), lookup)
            .await
    }

    /// [`Self::get_or_lookup`] for the citizen whose key ([`Self::key_of`] or
    /// [`Self::key_memoised`]) is `key`.
    pub async fn get_or_lookup_by_key<F, Fut, E>(
        &self,
        key: CitizenKey,
        mut lookup: F,
    ) -> Result<ConsentDecision, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Consent>, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let inner = &self.inner;
        let mut last = ConsentDecision::None;
        for _ in 0..MAX_ATTEMPTS {
            let init = || {
                // `started` is taken before the epoch, so an answer never outlives a change
                // record that overrules it (see `changes`).
                let started = Instant::now();
                let epoch = inner.changes.current();
                let consent = lookup();
                async move {
                    let consent = consent.await?;
                    Ok::<_, E>(Entry {
                        decision: ConsentDecision::from_lookup(consent.as_ref()),
                        epoch,
                        started,
                    })
                }
            };
            let (entry, source) = inner.cache.get_or_lookup(key, init).await?;
            let counter = match source {
                Source::LookedUp => &inner.misses,
                Source::Cached => &inner.hits,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if inner.changes.is_current(&key, &entry.decision, entry.epoch) {
                return Ok(entry.decision);
            }
            inner.stale.fetch_add(1, Ordering::Relaxed);
            inner.cache.invalidate(&key);
            last = entry.decision;
        }
        Ok(match last {
            ConsentDecision::Active { consent_id } => ConsentDecision::Revoked { consent_id },
            other => other,
        })
    }

    /// A consent was revoked (the events feed said so): no answer about it from a lookup that
    /// started before this call is used again, even one still in flight.
    pub fn revoke(&self, consent_id: &str) {
        self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
        self.inner.changes.consent_changed(consent_id, false);
        // No receiver is fine: no stream is in flight.
        let _ = self.inner.revoked.send(Arc::from(consent_id));
    }

    /// Watches for the revocation of `consent_id`, so that content already streaming under it
    /// stops as soon as the revocation is known, not only new requests.
    pub fn watch_revocation(&self, consent_id: &str) -> RevocationWatch {
        RevocationWatch {
            consent_id: Arc::from(consent_id),
            receiver: self.inner.revoked.subscribe(),
        }
    }

    /// A consent changed in some other way (granted again, for instance): every earlier answer
    /// about it, and every earlier "no consent" answer (the grant may be for one of those
    /// citizens), is looked up again.
    pub fn invalidate_consent(&self, consent_id: &str) {
        self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
        self.inner.changes.consent_changed(consent_id, true);
    }

    /// Forgets everything about one citizen, including answers still in flight.
    pub fn invalidate_citizen(&self, citizen: &IdentityCode) {
        self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
        let key = self.inner.keyer.key(citizen);
        self.inner.changes.citizen_changed(key);
    }

    /// The counters, for metrics.
    pub fn stats(&self) -> ConsentCacheStats {
        let i = &self.inner;
        ConsentCacheStats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            stale: i.stale.load(Ordering::Relaxed),
            invalidations: i.invalidations.load(Ordering::Relaxed),
        }
    }

    /// How many citizens' answers are held (expired ones until they are replaced or swept).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.len()
    }

    /// The cache key this cache uses for a citizen (for tests and diagnostics: it is not the
    /// identity code and cannot be turned back into one without this process's key).
    pub fn key_of(&self, citizen: &IdentityCode) -> CitizenKey {
        self.inner.keyer.key(citizen)
    }

    /// [`Self::key_of`], derived once per verified assertion and remembered in its `memo`.
    pub fn key_memoised(
        &self,
        citizen: &IdentityCode,
        memo: &crate::citizen::Derived,
    ) -> CitizenKey {
        CitizenKey::from_bytes(memo.keyed(self.inner.keyer_id, || {
            self.inner.keyer.key(citizen).to_bytes()
        }))
    }
}
