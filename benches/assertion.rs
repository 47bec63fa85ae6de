//! Citizen assertion verification: one ES256 signature (first sight of an assertion) or a
//! remembered one (its repeats), and the claim checks, on every request.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ikkuna::citizen::{AssertionVerifier, JwksSource, VerifierSettings};

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    // The sandbox writes the operator identity key and its JWKS, exactly as the gateway sees them.
    let sandbox = rt
        .block_on(ikkuna_sandbox::start(ikkuna_sandbox::SandboxOptions::new(
            dir.path(),
        )))
        .expect("sandbox starts");
    let info = sandbox.info().clone();
    let verifier = rt
        .block_on(AssertionVerifier::new(VerifierSettings::new(
            info.operator_issuer.clone(),
            info.gateway_audience.clone(),
            JwksSource::File(info.operator_jwks.clone()),
        )))
        .expect("verifier");
    // A fresh `Authorization` value (new jti and times), signed by the operator identity key.
    let mint = || {
        let jwt = ikkuna_sandbox::mint_citizen_assertion(
            sandbox.data_dir(),
            "150385-9046",
            ikkuna_sandbox::DEFAULT_ACR,
            Duration::from_secs(600),
        )
        .expect("assertion");
        format!("Bearer {jwt}")
    };
    let header = mint();
    rt.block_on(verifier.verify(Some(&header)))
        .expect("the assertion verifies");
    let mut group = c.benchmark_group("assertion");
    // The same assertion again, as on every call of a citizen's session after the first: the
    // signature is remembered, the claims are checked.
    group.bench_function("verify ES256 (repeat: remembered signature)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(verifier.verify(black_box(Some(&header))).await) })
    });
    // A new assertion each time (minted outside the measurement): the full signature check.
    group.bench_function("verify ES256 (first sight)", |b| {
        b.to_async(&rt).iter_batched(
            mint,
            |fresh| {
                let verifier = &verifier;
                async move { black_box(verifier.verify(Some(&fresh)).await) }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut forged = header.clone();
    forged.pop();
    forged.push(if header.ends_with('A') { 'B' } else { 'A' });
    group.bench_function("verify ES256 (bad signature)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(verifier.verify(black_box(Some(&forged))).await) })
    });
    group.finish();
    drop(sandbox);
}

criterion_group!(benches, verify);
criterion_main!(benches);
