//! Recording mode for auditors: unique canary strings in every title, body and attachment.
//!
//! With canaries on, every message title and body (seeded or delivered through the admin API)
//! carries a string that starts with a per-data-directory prefix, and every 64 KiB chunk of every
//! attachment starts with one. A certification suite that later finds the prefix in a gateway's
//! files, logs or metrics has found content that was persisted or leaked. The prefix is random,
//! made on first use and kept in `DIR/canaries.json`, so it stays stable across restarts.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::seed::Seed;

/// File in the data directory that names the prefix.
pub const CANARY_FILE: &str = "canaries.json";

/// The canary source of one sandbox data directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Canaries {
    /// Every canary starts with it: `CNRY` and 16 hex digits.
    pub prefix: String,
}

impl Canaries {
    /// Reads `DIR/canaries.json`, creating it with a fresh random prefix the first time.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CANARY_FILE);
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()));
        }
        let canaries = Self {
            prefix: format!("CNRY{}", hex::encode(rand::random::<[u8; 8]>())),
        };
        fsutil::write_atomic(
            &path,
            &serde_json::to_vec_pretty(&canaries)?,
            fsutil::Mode::Public,
        )?;
        Ok(canaries)
    }

    /// Reads the prefix of a data directory in recording mode; `None` when it has none.
    pub fn read(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(CANARY_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A title carrying a canary.
    pub fn title(&self, title: &str, n: u64) -> String {
        format!("{title} [{}-t{n}]", self.prefix)
    }

    /// A body carrying a canary.
    pub fn body(&self, body: &str, n: u64) -> String {
        format!("{body}\n\n{}-b{n}", self.prefix)
    }

    /// The bytes that start chunk `index` of an attachment.
    pub fn chunk_marker(&self, message_id: i64, attachment_id: i64, index: u64) -> Vec<u8> {
        format!("{}-a{message_id}.{attachment_id}.{index}:", self.prefix).into_bytes()
    }

    /// Puts canaries into every seeded title and body.
    pub fn mark_seed(&self, seed: &mut Seed) {
        for (n, m) in seed.messages.iter_mut().enumerate() {
            m.title = self.title(&m.title, n as u64);
            m.body = self.body(&m.body, n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_stable_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = Canaries::load_or_create(dir.path()).unwrap();
        let b = Canaries::load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.prefix.starts_with("CNRY") && a.prefix.len() == 20);
        assert_eq!(Canaries::read(dir.path()), Some(a.clone()));
        assert!(a.title("Hello", 3).contains(&a.prefix));
        assert!(a.body("Hi", 3).ends_with("-b3"));
    }
}
