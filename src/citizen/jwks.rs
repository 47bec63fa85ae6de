//! Keeps the trusted key set fresh: re-read every `refresh` interval, and on an unknown `kid` at
//! most once per cooldown window, so a flood of forged `kid`s cannot become a refresh storm.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::error::JwksError;
use super::fetch::JwksFetcher;
use super::keys::KeySet;
use super::settings::{JwksSource, VerifierSettings};

/// Where the document is read from.
enum Loader {
    File(std::path::PathBuf),
    Url(Box<JwksFetcher>),
}

impl Loader {
    async fn load(&self) -> Result<KeySet, JwksError> {
        let bytes = match self {
            Loader::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|source| JwksError::Read {
                        path: path.clone(),
                        source,
                    })?
            }
            Loader::Url(fetcher) => fetcher.fetch().await?.to_vec(),
        };
        KeySet::parse(&bytes)
    }
}

/// When the next refresh is due; guarded by the refresh lock so only one refresh runs at a time.
struct RefreshClock {
    next_periodic: Instant,
    last_unknown_kid_refresh: Option<Instant>,
}

/// The current key set and the policy for replacing it.
pub(crate) struct JwksStore {
    loader: Loader,
    current: RwLock<Arc<KeySet>>,
    clock: tokio::sync::Mutex<RefreshClock>,
    refresh_every: Duration,
    unknown_kid_cooldown: Duration,
    generation: AtomicU64,
    reloads: AtomicU64,
    status: super::settings::KeysStatus,
}

impl JwksStore {
    /// Loads the key set once; fails if it cannot be read or holds no usable key.
    pub(crate) async fn load(settings: &VerifierSettings) -> Result<Self, JwksError> {
        let loader = match &settings.jwks {
            JwksSource::File(path) => Loader::File(path.clone()),
            JwksSource::Url { url, ca_file } => Loader::Url(Box::new(JwksFetcher::new(
                url,
                ca_file.as_deref(),
                settings.fetch_timeout,
            )?)),
        };
        let status = settings.keys_status.clone();
        let (keys, next_periodic) = match loader.load().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "citizen assertion keys loaded");
                status.note(true);
                (keys, Instant::now() + settings.refresh)
            }
            // A URL that does not answer (yet) is a dependency being down, not a configuration
            // error: start without keys (every assertion is refused, `/readyz` says why) and
            // load them as soon as the URL answers.
            Err(error @ (JwksError::Fetch(_) | JwksError::Parse | JwksError::NoUsableKeys))
                if matches!(loader, Loader::Url(_)) =>
            {
                tracing::error!(kind = error.kind(), %error, "citizen assertion keys not loaded at start; retrying");
                status.note(false);
                (KeySet::default(), Instant::now())
            }
            Err(error) => return Err(error),
        };
        Ok(Self {
            loader,
            current: RwLock::new(Arc::new(keys)),
            clock: tokio::sync::Mutex::new(RefreshClock {
                next_periodic,
                last_unknown_kid_refresh: None,
            }),
            refresh_every: settings.refresh,
            unknown_kid_cooldown: settings.unknown_kid_cooldown,
            generation: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            status,
        })
    }

    /// The key set holding `kid`, refreshing first when the periodic refresh is due, and once
    /// more when `kid` is unknown and no unknown-`kid` refresh happened within the cooldown.
    pub(crate) async fn key_set_for(&self, kid: &str) -> Option<Arc<KeySet>> {
        self.refresh_if_due().await;
        let generation = self.generation.load(Ordering::Acquire);
        let keys = self.snapshot();
        if keys.get(kid).is_some() {
            return Some(keys);
        }
        let mut clock = self.clock.lock().await;
        if self.generation.load(Ordering::Acquire) == generation {
            let now = Instant::now();
            let cooling = clock
                .last_unknown_kid_refresh
                .is_some_and(|at| now.duration_since(at) < self.unknown_kid_cooldown);
            if cooling {
                return None;
            }
            clock.last_unknown_kid_refresh = Some(now);
            self.reload(&mut clock).await;
        }
        drop(clock);
        let keys = self.snapshot();
        keys.get(kid).is_some().then_some(keys)
    }

    /// Re-reads the key set now, whatever the schedule. Keeps the old set on failure.
    pub(crate) async fn refresh_now(&self) -> Result<(), JwksError> {
        let mut clock = self.clock.lock().await;
        self.try_reload(&mut clock).await
    }

    /// How many times the key set was re-read after the initial load.
    pub(crate) fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    async fn refresh_if_due(&self) {
        // Only one caller refreshes; everyone else goes on with the current keys.
        let Ok(mut clock) = self.clock.try_lock() else {
            return;
        };
        if Instant::now() >= clock.next_periodic {
            self.reload(&mut clock).await;
        }
    }

    async fn reload(&self, clock: &mut RefreshClock) {
        if let Err(error) = self.try_reload(clock).await {
            tracing::warn!(kind = error.kind(), %error, "citizen assertion keys not refreshed; keeping the previous set");
        }
    }

    async fn try_reload(&self, clock: &mut RefreshClock) -> Result<(), JwksError> {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        match self.loader.load().await {
            Ok(keys) => {
                clock.next_periodic = Instant::now() + self.refresh_every;
                if !self.status.loaded() {
                    tracing::info!(keys = keys.len(), "citizen assertion keys loaded");
                }
                self.install(keys);
                self.status.note(true);
                Ok(())
            }
            Err(error) => {
                self.status.note(false);
                // Retry sooner than a full interval, but never faster than the cooldown.
                clock.next_periodic =
                    Instant::now() + self.refresh_every.min(self.unknown_kid_cooldown);
                Err(error)
            }
        }
    }

    fn install(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut guard) => *guard = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}
