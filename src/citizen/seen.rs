//! Signatures already verified, so a citizen's session does not pay for the same ECDSA/RSA
//! verification on every call.
//!
//! An operator's backend re-sends one assertion for every call of a citizen's session (inbox,
//! message, attachment…), and the public-key verification is the dearest step of a request. This
//! cache remembers that the exact bytes of one token verified under one key set. It stores only a
//! SHA-256 digest of the token (never the token) and the key set it verified under: a hit counts
//! only while that same key set is current, so a key rotation or removal ends it at once. Claims
//! (expiry, audience, subject…) are still checked on every call; only the signature is remembered.

use std::sync::Arc;
use std::time::Duration;

use super::derived::Derived;
use super::keys::KeySet;

/// Most remembered signatures; each entry is about a hundred bytes.
const CAPACITY: u64 = 100_000;

/// Digests of tokens whose signature verified, each with the key set that verified it and the
/// names derived from its citizen (see `derived`).
pub(crate) struct VerifiedSignatures {
    entries: moka::sync::Cache<[u8; 32], (Arc<KeySet>, Arc<Derived>)>,
}

impl VerifiedSignatures {
    /// A cache whose entries live no longer than the longest acceptable assertion lifetime.
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// The digest a token is remembered by (SHA-256; every call of a session computes it).
    pub(crate) fn digest(token: &str) -> [u8; 32] {
        crate::digest::sha256(token.as_bytes())
    }

    /// When this token's signature already verified under exactly `keys`: its derived names.
    pub(crate) fn get(&self, digest: &[u8; 32], keys: &Arc<KeySet>) -> Option<Arc<Derived>> {
        self.entries
            .get(digest)
            .filter(|(verified_under, _)| Arc::ptr_eq(verified_under, keys))
            .map(|(_, derived)| derived)
    }

    /// True when the digest is remembered under any key set (tests only).
    #[cfg(test)]
    pub(crate) fn remembers_any(&self, digest: &[u8; 32]) -> bool {
        self.entries.contains_key(digest)
    }

    /// Remembers that the token's signature verified under `keys`, with its derived names.
    pub(crate) fn insert(&self, digest: [u8; 32], keys: &Arc<KeySet>, derived: Arc<Derived>) {
        self.entries.insert(digest, (Arc::clone(keys), derived));
    }
}
