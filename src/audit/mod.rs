//! The audit trail: one JSON line per access (consent check, inbox list, message read,
//! attachment, receipt confirmation, and every refusal of them), chained by hashes so that any
//! edited, removed, inserted or reordered line is found by `ikkuna audit verify`.
//!
//! Lines hold ids, times, outcomes, DVV's trace id and the citizen as a keyed pseudonym
//! (HMAC-SHA256 under a configured secret) — never content, tokens or identity codes. Writing
//! happens on a dedicated thread ([`writer`]); an access is answered as a success only after its
//! line is written, otherwise it is answered 503 and nothing is released.

pub mod cli;
pub mod pseudonym;
pub mod record;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use ikkuna_hetu::IdentityCode;

pub use pseudonym::Pseudonymizer;
pub use record::{Access, Action, Line, Outcome, PartEvidence, ReplyEvidence};
pub use writer::{AuditError, WriterSettings};

/// The configured audit trail, or a disabled one that records nothing.
#[derive(Clone, Debug)]
pub struct AuditLog {
    inner: Option<Enabled>,
}

#[derive(Clone, Debug)]
struct Enabled {
    pseudonyms: Pseudonymizer,
    writer: writer::WriterHandle,
    file: PathBuf,
}

impl AuditLog {
    /// An audit trail that records nothing (when `[audit]` is not configured).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Opens the audit file (resuming its chain) and starts the writer thread.
    pub fn open(settings: WriterSettings, pseudonyms: Pseudonymizer) -> Result<Self, AuditError> {
        let file = settings.file.clone();
        let (writer, _thread) = writer::start(settings)?;
        Ok(Self {
            inner: Some(Enabled {
                pseudonyms,
                writer,
                file,
            }),
        })
    }

    /// Whether accesses are recorded.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The active audit file, when enabled.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.inner.as_ref().map(|e| e.file.as_path())
    }

    /// The citizen's keyed pseudonym for the audit record (`None` when the trail is disabled).
    pub fn pseudonym(&self, citizen: &IdentityCode) -> Option<String> {
        self.inner
            .as_ref()
            .map(|enabled| enabled.pseudonyms.pseudonym(citizen))
    }

    /// Logs the chain's head (outside the audit file): the anchor against which a cut-off or
    /// edited tail is found. Called at stop; rotations log it too.
    pub fn log_head(&self, when: &str) {
        if let Some(enabled) = &self.inner {
            let (next_seq, head) = enabled.writer.head();
            tracing::info!(chain_seq = next_seq, chain_head = %head, when, "audit chain head");
        }
    }

    /// Appends one access and waits until it is written. Disabled: always `Ok`.
    pub async fn record(&self, access: Access) -> Result<(), AuditError> {
        match &self.inner {
            Some(enabled) => enabled.writer.append(access).await.map(drop),
            None => Ok(()),
        }
    }
}

/// Opens the audit trail `[audit]` describes: disabled (with a warning) when no file is set.
pub fn from_config(config: &crate::config::AuditConfig) -> anyhow::Result<AuditLog> {
    use anyhow::Context;
    let (Some(file), Some(key)) = (&config.file, &config.pseudonym_key) else {
        tracing::warn!("audit.file is not set: accesses are NOT recorded in an audit trail");
        return Ok(AuditLog::disabled());
    };
    let material = key
        .read()
        .context("audit.pseudonym_key_file: cannot read")?;
    let pseudonyms = Pseudonymizer::new(material.expose()).context("audit.pseudonym_key_file")?;
    let settings = WriterSettings {
        file: file.clone(),
        max_file_bytes: config.max_file_bytes,
        rotate_daily: config.rotate_daily,
        fsync: config.fsync,
    };
    AuditLog::open(settings, pseudonyms).with_context(|| format!("audit.file: {}", file.display()))
}
