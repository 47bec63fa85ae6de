//! Two measurements on the gateway's library pieces, without HTTP: memory of one million cached
//! consents, and durable first openings per second straight into the outbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ikkuna::consent::{Consent, ConsentCache, ConsentCacheSettings};
use ikkuna::openings::Outbox;
use ikkuna_hetu::IdentityCode;

use crate::procs;

/// Memory held by the consent cache.
#[derive(Debug, Clone, Copy)]
pub struct ConsentMemory {
    /// Citizens cached.
    pub entries: u64,
    /// Resident memory growth, bytes.
    pub bytes: u64,
    /// Time to fill, seconds.
    pub fill_secs: f64,
}

impl ConsentMemory {
    /// Bytes per cached consent.
    pub fn per_entry(&self) -> f64 {
        self.bytes as f64 / self.entries.max(1) as f64
    }
}

/// Distinct valid identity codes (test individual numbers do not matter to the cache).
fn identity(n: usize) -> Option<IdentityCode> {
    let individual = 2 + (n % 897) as u16;
    let rest = n / 897;
    let day = 1 + (rest % 28) as u8;
    let month = 1 + ((rest / 28) % 12) as u8;
    let year = 1900 + ((rest / 336) % 100) as u16;
    IdentityCode::compose(day, month, year, '-', individual).ok()
}

/// Fills a fresh consent cache with `entries` active consents (each with a 36-character consent
/// id, as DVV's are UUID-sized) and measures this process's resident memory growth.
pub async fn consent_memory(entries: usize) -> anyhow::Result<ConsentMemory> {
    let pid = std::process::id();
    let cache = ConsentCache::new(ConsentCacheSettings {
        capacity: entries as u64 * 2,
        positive_ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
    });
    let before = procs::rss_kib(pid);
    let started = Instant::now();
    let mut filled = 0u64;
    for n in 0..entries {
        let Some(code) = identity(n) else { continue };
        let consent_id = uuid::Uuid::new_v4().to_string();
        cache
            .get_or_lookup(&code, || {
                let consent_id = consent_id.clone();
                async move {
                    Ok::<_, ()>(Some(Consent {
                        consent_id,
                        active: true,
                        granted_at: None,
                        revoked_at: None,
                    }))
                }
            })
            .await
            .map_err(|()| anyhow::anyhow!("lookup failed"))?;
        filled += 1;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    // Let moka's housekeeping settle before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = procs::rss_kib(pid);
    anyhow::ensure!(cache.stats().misses == filled, "every fill is one lookup");
    drop(cache);
    Ok(ConsentMemory {
        entries: filled,
        bytes: after.saturating_sub(before) * 1024,
        fill_secs,
    })
}

/// Durable first openings per second straight into the outbox (no HTTP, no DVV).
#[derive(Debug, Clone, Copy)]
pub struct OutboxRate {
    /// Openings recorded.
    pub openings: usize,
    /// Concurrent recorders.
    pub concurrency: usize,
    /// Openings per second.
    pub per_sec: f64,
}

/// Records `openings` distinct first openings from `concurrency` tasks into a fresh outbox in a
/// temporary directory (on the same disk as the system temporary directory).
pub async fn outbox_rate(openings: usize, concurrency: usize) -> anyhow::Result<OutboxRate> {
    let dir = tempfile::tempdir()?;
    let outbox = Outbox::open_in(dir.path()).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (outbox, next) = (outbox.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= openings {
                    return Ok::<_, anyhow::Error>(());
                }
                let recorded = outbox.record_opening("consent-bench", n as i64 + 1).await?;
                anyhow::ensure!(
                    recorded.newly_recorded,
                    "a distinct message is a new opening"
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        outbox.stats().await?.pending == openings as u64,
        "every opening is pending in the store"
    );
    Ok(OutboxRate {
        openings,
        concurrency,
        per_sec: openings as f64 / secs.max(1e-9),
    })
}
