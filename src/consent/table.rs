//! The consent cache's table: a bounded map from citizen key to decision, with each answer's life
//! checked on read from when its lookup started, and concurrent lookups for one citizen coalesced
//! into one.
//!
//! Purpose-built rather than a general cache crate because an entry is small (a 32-byte key, the
//! decision, its epoch and start time) and a general cache's per-entry bookkeeping (access and
//! write order lists, timer wheel nodes, a shared key) was three quarters of its memory: a
//! million cached citizens took 457 bytes each. Here an entry is one slot of a hash table and
//! the consent id's string.
//!
//! At capacity, expired answers go first, then an arbitrary one (the key is a keyed hash, so
//! which citizen is forgotten is arbitrary, and a forgotten citizen costs one lookup).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::pseudonym::CitizenKey;
use super::ConsentDecision;

/// Most shards (locks), so that checks for different citizens seldom wait for each other.
const MAX_SHARDS: usize = 16;

/// Fewest answers per shard: a small cache is one shard, so its bound and its choice of what to
/// forget are exact over the whole cache, not per shard.
const MIN_PER_SHARD: usize = 4096;

/// One cached answer and when its lookup started (wall time and epoch).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub decision: ConsentDecision,
    pub epoch: u64,
    pub started: Instant,
}

/// How a lookup ended, shared with the callers that waited for it. The error is the caller's
/// own type, erased so the table need not be generic over it.
type Outcome = Result<Entry, Arc<dyn Any + Send + Sync>>;

/// An answer as the table holds it: the start as milliseconds since the table's origin (8 bytes
/// instead of an `Instant`'s 16; rounded down, so an answer never lives longer than its TTL).
struct Held {
    decision: ConsentDecision,
    epoch: u64,
    started_ms: u64,
}

/// A key's slot: an answer, or a lookup in flight that others wait for.
enum Slot {
    Ready(Held),
    Flight(watch::Receiver<Option<Outcome>>),
}

/// Hashes a [`CitizenKey`] by its first eight bytes: the key is already a keyed hash, uniform
/// and secret, so hashing it again would only cost time.
#[derive(Default)]
struct KeyBytes(u64);

impl Hasher for KeyBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    // The array's length prefix carries nothing.
    fn write_usize(&mut self, _: usize) {}
}

type Shard = HashMap<CitizenKey, Slot, BuildHasherDefault<KeyBytes>>;

/// The bounded, coalescing table behind [`super::ConsentCache`].
pub(super) struct Table {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    origin: Instant,
    positive: Duration,
    negative: Duration,
}

/// What a caller does about a key whose slot holds no live answer.
enum Role {
    /// Wait for the lookup in flight.
    Wait(watch::Receiver<Option<Outcome>>),
    /// Look up, holding the slot's flight.
    Lead(
        watch::Sender<Option<Outcome>>,
        watch::Receiver<Option<Outcome>>,
    ),
}

/// Whether the caller's lookup ran or it was answered without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Cached,
    LookedUp,
}

impl Table {
    /// Room for `capacity` answers; active ones live `positive`, others `negative`, both counted
    /// from their lookup's start.
    pub fn new(capacity: u64, positive: Duration, negative: Duration) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        let shards = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity / shards,
            origin: Instant::now(),
            positive,
            negative,
        }
    }

    fn shard(&self, key: &CitizenKey) -> MutexGuard<'_, Shard> {
        let bytes = key.to_bytes();
        let index = usize::from(bytes[8]) % self.shards.len();
        // A panic while holding the lock cannot leave a slot half-written (each change is one
        // insert or remove), so a poisoned shard is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, held: &Held, now: Instant) -> bool {
        let ttl = match held.decision {
            ConsentDecision::Active { .. } => self.positive,
            _ => self.negative,
        };
        now.saturating_duration_since(self.started(held)) < ttl
    }

    fn started(&self, held: &Held) -> Instant {
        self.origin + Duration::from_millis(held.started_ms)
    }

    fn hold(&self, entry: Entry) -> Held {
        let since = entry.started.saturating_duration_since(self.origin);
        Held {
            decision: entry.decision,
            epoch: entry.epoch,
            started_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn entry(&self, held: &Held) -> Entry {
        Entry {
            decision: held.decision.clone(),
            epoch: held.epoch,
            started: self.started(held),
        }
    }

    /// The live answer for `key`, or the one `lookup` gives. Callers that arrive while a lookup
    /// for the key is in flight wait for it and share its outcome, error included; if that
    /// lookup is abandoned (its caller went away), one of them looks up instead. Errors are not
    /// kept.
    pub async fn get_or_lookup<E, Fut>(
        &self,
        key: CitizenKey,
        lookup: impl FnOnce() -> Fut,
    ) -> Result<(Entry, Source), E>
    where
        Fut: Future<Output = Result<Entry, E>>,
        E: Clone + Send + Sync + 'static,
    {
        loop {
            // One look at the slot, under its lock, decides: answer from it, wait for the lookup
            // in it, or take it for a lookup of our own.
            let role = {
                let mut shard = self.shard(&key);
                match shard.get(&key) {
                    Some(Slot::Ready(held)) if self.live(held, Instant::now()) => {
                        return Ok((self.entry(held), Source::Cached));
                    }
                    Some(Slot::Flight(receiver)) => Role::Wait(receiver.clone()),
                    _ => {
                        let (sender, receiver) = watch::channel(None);
                        self.make_room(&mut shard, &key);
                        shard.insert(key, Slot::Flight(receiver.clone()));
                        Role::Lead(sender, receiver)
                    }
                }
            };
            let mut receiver = match role {
                Role::Wait(receiver) => receiver,
                Role::Lead(sender, receiver) => {
                    let mut flight = FlightGuard {
                        table: self,
                        key,
                        receiver,
                        sender: Some(sender),
                    };
                    return match lookup().await {
                        Ok(entry) => {
                            flight.finish(Ok(entry.clone()), Some(entry.clone()));
                            Ok((entry, Source::LookedUp))
                        }
                        Err(error) => {
                            flight.finish(Err(Arc::new(error.clone())), None);
                            Err(error)
                        }
                    };
                }
            };
            // The sender is dropped unanswered when the lookup is abandoned: try again.
            let outcome = receiver
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|o| o.clone());
            match outcome {
                Some(Ok(entry)) => return Ok((entry, Source::Cached)),
                Some(Err(error)) => {
                    if let Some(error) = error.downcast_ref::<E>() {
                        return Err(error.clone());
                    }
                }
                None => {}
            }
        }
    }

    /// Frees a slot for a new key in a full shard: expired answers first, then an arbitrary
    /// answer. Lookups in flight are never dropped.
    fn make_room(&self, shard: &mut Shard, key: &CitizenKey) {
        if shard.len() < self.per_shard || shard.contains_key(key) {
            return;
        }
        let now = Instant::now();
        shard.retain(|_, slot| match slot {
            Slot::Ready(held) => self.live(held, now),
            Slot::Flight(_) => true,
        });
        if shard.len() < self.per_shard {
            return;
        }
        let victim = shard
            .iter()
            .find(|(_, slot)| matches!(slot, Slot::Ready(_)))
            .map(|(k, _)| *k);
        if let Some(victim) = victim {
            shard.remove(&victim);
        }
    }

    /// Forgets the answer for `key` (a lookup in flight finishes; the caller's epochs decide
    /// whether its answer is used).
    pub fn invalidate(&self, key: &CitizenKey) {
        let mut shard = self.shard(key);
        if matches!(shard.get(key), Some(Slot::Ready(_))) {
            shard.remove(key);
        }
    }

    /// Answers held (lookups in flight not counted; expired answers until they are replaced or
    /// swept at capacity).
    pub fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                shard
                    .values()
                    .filter(|slot| matches!(slot, Slot::Ready(_)))
                    .count() as u64
            })
            .sum()
    }
}

/// The leading caller's hold on its lookup's slot: on finishing it stores the answer and tells
/// the waiters; dropped unfinished (the caller went away mid-lookup), it frees the slot so a
/// waiter can look up instead.
struct FlightGuard<'a> {
    table: &'a Table,
    key: CitizenKey,
    receiver: watch::Receiver<Option<Outcome>>,
    sender: Option<watch::Sender<Option<Outcome>>>,
}

impl FlightGuard<'_> {
    /// Whether the key's slot is still this lookup's flight (an invalidation or a sweep may have
    /// replaced it since).
    fn holds(&self, shard: &Shard) -> bool {
        matches!(shard.get(&self.key),
            Some(Slot::Flight(r)) if r.same_channel(&self.receiver))
    }

    fn finish(&mut self, outcome: Outcome, keep: Option<Entry>) {
        {
            let mut shard = self.table.shard(&self.key);
            if self.holds(&shard) {
                match keep {
                    Some(entry) => {
                        let held = self.table.hold(entry);
                        shard.insert(self.key, Slot::Ready(held));
                    }
                    None => {
                        shard.remove(&self.key);
                    }
                }
            }
        }
        if let Some(sender) = self.sender.take() {
            // No waiter is fine.
            let _ = sender.send(Some(outcome));
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.sender.is_none() {
            return;
        }
        let mut shard = self.table.shard(&self.key);
        if self.holds(&shard) {
            shard.remove(&self.key);
        }
        // The sender drops with the guard: waiters see the lookup abandoned and retry.
    }
}
