//! TTLs, negative caching, coalescing, and the revocation race.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ikkuna_hetu::IdentityCode;
use tokio::sync::Notify;

use super::*;

fn citizen() -> IdentityCode {
    IdentityCode::parse("131052-308T").unwrap()
}

fn other_citizen() -> IdentityCode {
    IdentityCode::compose(1, 1, 1990, '-', 999).unwrap()
}

fn active(id: &str) -> Option<Consent> {
    Some(Consent {
        consent_id: id.into(),
        active: true,
        granted_at: None,
        revoked_at: None,
    })
}

fn revoked(id: &str) -> Option<Consent> {
    Some(Consent {
        active: false,
        ..active(id).unwrap()
    })
}

fn is_active(id: &str) -> ConsentDecision {
    ConsentDecision::Active {
        consent_id: id.into(),
    }
}

fn is_revoked(id: &str) -> ConsentDecision {
    ConsentDecision::Revoked {
        consent_id: id.into(),
    }
}

fn settings(positive_ms: u64, negative_ms: u64) -> ConsentCacheSettings {
    ConsentCacheSettings {
        capacity: 1000,
        positive_ttl: Duration::from_millis(positive_ms),
        negative_ttl: Duration::from_millis(negative_ms),
    }
}

/// A fake DVV consent service: the current answer, and how many times it was asked.
#[derive(Clone)]
struct FakeDvv {
    answer: Arc<std::sync::Mutex<Option<Consent>>>,
    calls: Arc<AtomicUsize>,
}

impl FakeDvv {
    fn new(answer: Option<Consent>) -> Self {
        Self {
            answer: Arc::new(std::sync::Mutex::new(answer)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, answer: Option<Consent>) {
        *self.answer.lock().unwrap() = answer;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn check(&self, cache: &ConsentCache, who: &IdentityCode) -> ConsentDecision {
        cache
            .get_or_lookup(who, || async {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(self.answer.lock().unwrap().clone())
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_active_answer_lives_at_most_the_positive_ttl() {
    let cache = ConsentCache::new(settings(500, 50));
    let dvv = FakeDvv::new(active("c-1"));
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-1"));
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-1"));
    assert_eq!(dvv.calls(), 1);
    // DVV revokes, but no event arrives: the cache answers until the bound, then asks again.
    dvv.set(revoked("c-1"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(dvv.check(&cache, &citizen()).await, is_revoked("c-1"));
    assert_eq!(dvv.calls(), 2);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

#[tokio::test]
async fn negative_answers_are_cached_briefly() {
    let cache = ConsentCache::new(settings(5_000, 400));
    let dvv = FakeDvv::new(None);
    assert_eq!(dvv.check(&cache, &citizen()).await, ConsentDecision::None);
    assert_eq!(dvv.check(&cache, &citizen()).await, ConsentDecision::None);
    assert_eq!(dvv.calls(), 1);
    dvv.set(active("c-1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-1"));
    assert_eq!(dvv.calls(), 2);

    // A revoked answer is negative too.
    let dvv = FakeDvv::new(revoked("c-2"));
    assert_eq!(dvv.check(&cache, &other_citizen()).await, is_revoked("c-2"));
    assert_eq!(dvv.check(&cache, &other_citizen()).await, is_revoked("c-2"));
    assert_eq!(dvv.calls(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    dvv.check(&cache, &other_citizen()).await;
    assert_eq!(dvv.calls(), 2);
}

#[tokio::test]
async fn concurrent_checks_share_one_lookup() {
    let cache = ConsentCache::new(settings(5_000, 1_000));
    let calls = Arc::new(AtomicUsize::new(0));
    let checks = (0..32).map(|_| {
        let cache = cache.clone();
        let calls = calls.clone();
        tokio::spawn(async move {
            cache
                .get_or_lookup(&citizen(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, String>(active("c-1"))
                })
                .await
        })
    });
    for result in futures_util::future::join_all(checks).await {
        assert_eq!(result.unwrap().unwrap(), is_active("c-1"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (31, 1));
}

#[tokio::test]
async fn lookup_errors_are_not_cached() {
    let cache = ConsentCache::new(settings(5_000, 1_000));
    let err = cache
        .get_or_lookup(&citizen(), || async {
            Err::<Option<Consent>, _>("dvv down")
        })
        .await;
    assert_eq!(err, Err("dvv down"));
    let dvv = FakeDvv::new(active("c-1"));
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-1"));
    assert_eq!(dvv.calls(), 1);
}

#[tokio::test]
async fn a_revocation_wins_over_a_lookup_in_flight() {
    let cache = ConsentCache::new(settings(30_000, 5_000));
    let dvv = FakeDvv::new(active("c-1"));
    let lookup_started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());

    // A slow lookup that answers Active, as DVV did before the revocation.
    let in_flight = {
        let cache = cache.clone();
        let (started, release) = (lookup_started.clone(), release.clone());
        tokio::spawn(async move {
            let mut first = true;
            cache
                .get_or_lookup(&citizen(), || {
                    let was_first = std::mem::replace(&mut first, false);
                    let (started, release) = (started.clone(), release.clone());
                    async move {
                        if was_first {
                            started.notify_one();
                            release.notified().await;
                            return Ok::<_, String>(active("c-1"));
                        }
                        // Any lookup after the revocation sees DVV's new state.
                        Ok(revoked("c-1"))
                    }
                })
                .await
        })
    };
    lookup_started.notified().await;
    // The revocation arrives (events feed) while the lookup is in flight, and DVV now says so.
    dvv.set(revoked("c-1"));
    cache.revoke("c-1");
    release.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer, is_revoked("c-1"));

    // The next check must not see the old Active from the cache.
    assert_eq!(dvv.check(&cache, &citizen()).await, is_revoked("c-1"));
    assert!(cache.stats().stale >= 1);
}

#[tokio::test]
async fn a_revocation_between_answer_and_insert_still_wins() {
    let cache = ConsentCache::new(settings(30_000, 5_000));
    // DVV answered Active, then the revocation is processed before the cache inserts the answer.
    let answer = cache
        .get_or_lookup(&citizen(), {
            let cache = cache.clone();
            let mut calls = 0;
            move || {
                calls += 1;
                let cache = cache.clone();
                let first = calls == 1;
                async move {
                    if first {
                        cache.revoke("c-1");
                        Ok::<_, String>(active("c-1"))
                    } else {
                        Ok(revoked("c-1"))
                    }
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(answer, is_revoked("c-1"));
    let dvv = FakeDvv::new(revoked("c-1"));
    assert_eq!(dvv.check(&cache, &citizen()).await, is_revoked("c-1"));
}

#[tokio::test]
async fn a_cached_active_answer_is_dropped_at_once_on_revocation() {
    let cache = ConsentCache::new(settings(30_000, 5_000));
    let dvv = FakeDvv::new(active("c-1"));
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-1"));
    dvv.set(revoked("c-1"));
    cache.revoke("c-1");
    assert_eq!(dvv.check(&cache, &citizen()).await, is_revoked("c-1"));
    assert_eq!(dvv.calls(), 2);
    // Other citizens' answers are untouched.
    let other = FakeDvv::new(active("c-2"));
    other.check(&cache, &other_citizen()).await;
    cache.revoke("c-1");
    other.check(&cache, &other_citizen()).await;
    assert_eq!(other.calls(), 1);
}

#[tokio::test]
async fn revocations_that_keep_overtaking_end_on_the_safe_side() {
    let cache = ConsentCache::new(settings(30_000, 5_000));
    let c = cache.clone();
    let answer = cache
        .get_or_lookup(&citizen(), move || {
            let c = c.clone();
            async move {
                c.revoke("c-1");
                Ok::<_, String>(active("c-1"))
            }
        })
        .await
        .unwrap();
    assert_eq!(answer, is_revoked("c-1"));
}

#[tokio::test]
async fn a_grant_refreshes_no_consent_answers() {
    let cache = ConsentCache::new(settings(30_000, 30_000));
    let dvv = FakeDvv::new(None);
    assert_eq!(dvv.check(&cache, &citizen()).await, ConsentDecision::None);
    dvv.set(active("c-9"));
    cache.invalidate_consent("c-9");
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-9"));
    assert_eq!(dvv.calls(), 2);

    // Revoked, then granted again under the same consent id.
    dvv.set(revoked("c-9"));
    cache.revoke("c-9");
    assert_eq!(dvv.check(&cache, &citizen()).await, is_revoked("c-9"));
    dvv.set(active("c-9"));
    cache.invalidate_consent("c-9");
    assert_eq!(dvv.check(&cache, &citizen()).await, is_active("c-9"));
}

#[tokio::test]
async fn a_citizen_can_be_forgotten() {
    let cache = ConsentCache::new(settings(30_000, 30_000));
    let dvv = FakeDvv::new(active("c-1"));
    dvv.check(&cache, &citizen()).await;
    cache.invalidate_citizen(&citizen());
    dvv.check(&cache, &citizen()).await;
    assert_eq!(dvv.calls(), 2);
}

#[tokio::test]
async fn keys_are_keyed_pseudonyms_not_identity_codes() {
    let a = ConsentCache::new(ConsentCacheSettings::default());
    let b = ConsentCache::new(ConsentCacheSettings::default());
    let key = a.key_of(&citizen());
    assert_eq!(key, a.key_of(&citizen()));
    assert_ne!(key, a.key_of(&other_citizen()));
    // Another process (another random key) derives another pseudonym.
    assert_ne!(key, b.key_of(&citizen()));
    let shown = format!("{key:?}");
    assert!(!shown.contains("131052"));
    assert!(shown.len() < 24);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let cache = ConsentCache::new(ConsentCacheSettings {
        capacity: 10,
        ..settings(30_000, 30_000)
    });
    let dvv = FakeDvv::new(active("c"));
    for day in 1..=28 {
        let code = IdentityCode::compose(day, 1, 1990, '-', 123).unwrap();
        dvv.check(&cache, &code).await;
    }
    assert!(cache.entry_count() <= 10, "{}", cache.entry_count());
}

/// A failing lookup is shared too: concurrent checks for one citizen while DVV fails make one
/// call, and every one of them gets its error (not a herd of calls toward a failing DVV).
#[tokio::test]
async fn concurrent_checks_share_one_failing_lookup() {
    let cache = ConsentCache::new(settings(5_000, 1_000));
    let calls = Arc::new(AtomicUsize::new(0));
    let checks = (0..16).map(|_| {
        let cache = cache.clone();
        let calls = calls.clone();
        tokio::spawn(async move {
            cache
                .get_or_lookup(&citizen(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err::<Option<Consent>, _>("dvv down".to_owned())
                })
                .await
        })
    });
    for result in futures_util::future::join_all(checks).await {
        assert_eq!(result.unwrap().unwrap_err(), "dvv down");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The caller whose lookup the others wait for goes away mid-lookup (its client disconnected):
/// a waiter looks up instead, and nobody waits forever.
#[tokio::test]
async fn an_abandoned_lookup_is_taken_over_by_a_waiter() {
    let cache = ConsentCache::new(settings(5_000, 1_000));
    let started = Arc::new(Notify::new());
    let leader = {
        let cache = cache.clone();
        let started = started.clone();
        tokio::spawn(async move {
            cache
                .get_or_lookup(&citizen(), || async {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, String>(active("never"))
                })
                .await
        })
    };
    started.notified().await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_lookup(&citizen(), || async { Ok::<_, String>(active("c-1")) })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let answer = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is not left waiting")
        .unwrap()
        .unwrap();
    assert_eq!(answer, is_active("c-1"));
    assert_eq!(cache.stats().misses, 1, "the waiter's own lookup");
}

/// At capacity, expired answers make room before any live one is forgotten.
#[tokio::test]
async fn at_capacity_expired_answers_go_first() {
    let cache = ConsentCache::new(ConsentCacheSettings {
        capacity: 4,
        positive_ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_millis(50),
    });
    let code = |day| IdentityCode::compose(day, 1, 1990, '-', 123).unwrap();
    let live = FakeDvv::new(active("c"));
    let gone = FakeDvv::new(None);
    for day in 1..=2 {
        live.check(&cache, &code(day)).await;
    }
    for day in 3..=4 {
        gone.check(&cache, &code(day)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for day in 5..=6 {
        gone.check(&cache, &code(day)).await;
    }
    assert!(cache.entry_count() <= 4, "{}", cache.entry_count());
    // The two live answers are still held: no new lookup for them.
    for day in 1..=2 {
        live.check(&cache, &code(day)).await;
    }
    assert_eq!(live.calls(), 2);
}
