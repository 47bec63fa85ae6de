//! The citizen's name in the audit trail: HMAC-SHA256 of the identity code under a secret key
//! from a file. Stable across restarts and replicas that share the key, so an auditor holding the
//! key can find one citizen's entries (`ikkuna audit pseudonym`); meaningless without it.

use hmac::{Hmac, Mac};
use ikkuna_hetu::IdentityCode;
use sha2::Sha256;

/// Shortest accepted key: 32 bytes (256 bits).
pub const MIN_KEY_BYTES: usize = 32;

/// Derives pseudonyms under the configured key. `Debug` never shows the key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<redacted>)")
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the audit pseudonym key must hold at least {MIN_KEY_BYTES} bytes")]
pub struct KeyTooShort;

impl Pseudonymizer {
    /// A pseudonymizer under `key` (the file's bytes, surrounding whitespace ignored).
    pub fn new(key: &[u8]) -> Result<Self, KeyTooShort> {
        let key = key.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort);
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| KeyTooShort)?;
        Ok(Self { mac })
    }

    /// The citizen's pseudonym: lowercase hex of HMAC-SHA256(key, identity code).
    pub fn pseudonym(&self, citizen: &IdentityCode) -> String {
        let mut mac = self.mac.clone();
        mac.update(citizen.reveal().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_never_the_code() {
        let id: IdentityCode = "010190-999W".parse().expect("valid test code");
        let a = Pseudonymizer::new(&[7u8; 32]).expect("key");
        let b = Pseudonymizer::new(&[8u8; 32]).expect("key");
        assert_eq!(a.pseudonym(&id), a.pseudonym(&id));
        assert_ne!(a.pseudonym(&id), b.pseudonym(&id));
        assert_eq!(a.pseudonym(&id).len(), 64);
        assert!(!a.pseudonym(&id).contains("010190"));
        assert!(Pseudonymizer::new(b"short").is_err());
        assert!(!format!("{a:?}").contains('7'));
    }
}
