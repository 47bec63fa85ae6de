//! Identity-code validation: every citizen assertion's `sub` is parsed strictly once per request.

use criterion::{criterion_group, criterion_main, Criterion};
use ikkuna_hetu::IdentityCode;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("identity_code");
    group.bench_function("parse valid (century sign -)", |b| {
        b.iter(|| IdentityCode::parse(black_box("150385-9046")))
    });
    group.bench_function("parse valid (century sign A)", |b| {
        b.iter(|| IdentityCode::parse(black_box("090904A941E")))
    });
    group.bench_function("parse invalid check character", |b| {
        b.iter(|| IdentityCode::parse(black_box("150385-9047")))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
