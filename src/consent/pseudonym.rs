//! Cache keys that are not identity codes: HMAC-SHA256 of the code under a random key that lives
//! only in this process's memory, so a heap dump or a debug print of the cache names nobody.

use hmac::{Hmac, Mac};
use ikkuna_hetu::IdentityCode;
use sha2::Sha256;

/// A citizen's key in the consent cache: a keyed hash of the identity code. Its `Debug` prints
/// only a short prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CitizenKey([u8; 32]);

impl std::fmt::Debug for CitizenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CitizenKey({})", hex::encode(&self.0[..4]))
    }
}

impl CitizenKey {
    /// The key's bytes (to be remembered beside a verified assertion).
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// A key remembered by [`Self::to_bytes`].
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// Derives [`CitizenKey`]s under one random per-process key.
#[derive(Clone)]
pub(crate) struct Keyer {
    mac: Hmac<Sha256>,
}

impl Keyer {
    /// A keyer with a fresh random key of one SHA-256 block (512 bits).
    pub(crate) fn random() -> Self {
        let key: [u8; 64] = rand::random();
        Self {
            mac: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into()),
        }
    }

    /// The citizen's key.
    pub(crate) fn key(&self, citizen: &IdentityCode) -> CitizenKey {
        let mut mac = self.mac.clone();
        mac.update(citizen.reveal().as_bytes());
        CitizenKey(mac.finalize().into_bytes().into())
    }
}
