//! A consent-cache hit: the common case of every call by a citizen seen in the last 30 s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ikkuna::consent::{Consent, ConsentCache, ConsentCacheSettings};
use ikkuna_hetu::IdentityCode;

fn active() -> Consent {
    Consent {
        consent_id: "3f2b8c1e-5d4a-4c6b-9e7f-0a1b2c3d4e5f".to_owned(),
        active: true,
        granted_at: None,
        revoked_at: None,
    }
}

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cache = ConsentCache::new(ConsentCacheSettings {
        positive_ttl: Duration::from_secs(3600),
        ..ConsentCacheSettings::default()
    });
    let citizen = IdentityCode::parse("150385-9046").expect("valid code");
    rt.block_on(async {
        cache
            .get_or_lookup(&citizen, || async { Ok::<_, ()>(Some(active())) })
            .await
            .expect("filled")
    });
    c.bench_function("consent_cache/hit", |b| {
        b.to_async(&rt).iter(|| async {
            let decision = cache
                .get_or_lookup(black_box(&citizen), || async {
                    Ok::<_, ()>(Some(active()))
                })
                .await;
            black_box(decision)
        })
    });
    assert_eq!(cache.stats().misses, 1, "every measured call was a hit");
}

criterion_group!(benches, hit);
criterion_main!(benches);
