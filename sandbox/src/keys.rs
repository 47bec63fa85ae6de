//! The data directory's state key: an HMAC key that makes opaque ids and tokens stable across
//! restarts yet unforgeable.
//!
//! Consent ids and event ids are derived from it (so they survive a restart without being
//! stored and never reveal the identity code they stand for), and continuation tokens are
//! authenticated with it (so a tampered or foreign token is recognised and answered 400).

use std::path::Path;

use anyhow::Context;
use aws_lc_rs::hmac;

use crate::fsutil::{self, Mode};

/// The HMAC-SHA256 key kept in `DIR/state.key`.
#[derive(Clone)]
pub struct StateKey(hmac::Key);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

impl StateKey {
    /// Loads the key from `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let bytes = if path.exists() {
            let text = fsutil::read_string(path)?;
            hex::decode(text.trim()).with_context(|| format!("parsing {}", path.display()))?
        } else {
            let bytes: [u8; 32] = rand::random();
            fsutil::write_atomic(path, hex::encode(bytes).as_bytes(), Mode::Private)?;
            bytes.to_vec()
        };
        anyhow::ensure!(
            bytes.len() >= 32,
            "{} holds too short a key",
            path.display()
        );
        Ok(Self::from_bytes(&bytes))
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// HMAC over the parts, each length-prefixed so that no two part lists collide.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}
