//! Audit-line append: the last step of every access (hash chain, JSON line, write; with and
//! without `fdatasync`), measured one append at a time and with 64 concurrent appends sharing
//! the writer's batches.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ikkuna::audit::{Access, Action, AuditLog, Outcome, Pseudonymizer, WriterSettings};

fn access() -> Access {
    Access {
        time: chrono::Utc::now(),
        request_id: uuid::Uuid::new_v4().to_string(),
        action: Action::MessageRead,
        consent_id: Some("c0ffee00-0000-4000-8000-000000000001".to_owned()),
        message_id: Some(4711),
        attachment_id: None,
        outcome: Outcome::of_status(200),
        status: 200,
        reason: None,
        trace_id: Some(uuid::Uuid::new_v4().to_string()),
        citizen: Some("p-0123456789abcdef0123456789abcdef".to_owned()),
        reply: None,
    }
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("audit");
    for fsync in [false, true] {
        let log = AuditLog::open(
            WriterSettings {
                file: dir.path().join(format!("audit-{fsync}.jsonl")),
                max_file_bytes: 0,
                rotate_daily: false,
                fsync,
            },
            Pseudonymizer::new(&[7u8; 32]).expect("key"),
        )
        .expect("audit file");
        let label = if fsync { "fdatasync" } else { "no fsync" };
        group.bench_function(format!("append one line ({label})"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(log.record(access()).await) })
        });
        group.bench_function(format!("64 concurrent appends ({label})"), |b| {
            b.to_async(&rt).iter(|| async {
                let appends = (0..64).map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move { log.record(access()).await })
                });
                for append in futures_util::future::join_all(appends).await {
                    let _ = black_box(append);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
