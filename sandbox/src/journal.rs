//! The append-only journal of mutations, `DIR/journal.jsonl`.
//!
//! The seed is the state at first start; every later change (consents, new messages, openings,
//! receipt confirmations) is one JSON line appended here and replayed on the next start, so
//! state survives restarts without rewriting any file per change. Events are derived from the
//! same records during replay, so the feed survives too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::{BodyFormat, MessageServiceType, ReplyAllowedBy};
use crate::notifications::Notifications;
use crate::time::{self, Timestamp};

/// One mutation of the sandbox state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Record {
    /// A citizen granted (or re-granted) a provider a consent.
    ConsentGranted {
        /// Identity code.
        citizen: String,
        /// Provider id.
        provider: String,
        /// When.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// A citizen revoked a provider's consent.
    ConsentRevoked {
        /// Identity code.
        citizen: String,
        /// Provider id.
        provider: String,
        /// When.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// A message was delivered.
    MessageCreated {
        /// The message with its ids.
        message: NewMessage,
        /// When (its `createdAt`).
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// A provider reported an opening.
    OpeningReported {
        /// Reporting provider.
        provider: String,
        /// Message opened.
        message_id: i64,
        /// The provider's idempotency key.
        opening_id: String,
        /// When the citizen opened it, as reported.
        #[serde(with = "time::as_string")]
        opened_at: Timestamp,
        /// When the report arrived.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// A citizen confirmed receipt of a verifiable message through a provider.
    ReceiptConfirmed {
        /// Provider that relayed the confirmation.
        provider: String,
        /// Message confirmed.
        message_id: i64,
        /// When.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// DVV released a message's content (body or attachment) to a provider for the first time:
    /// the earliest moment that provider's citizen can have opened it.
    ContentReleased {
        /// The provider it was released to.
        provider: String,
        /// The message.
        message_id: i64,
        /// When.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// An opening was deleted through the admin API (to plant a reconciliation discrepancy).
    OpeningDeleted {
        /// The reporting provider.
        provider: String,
        /// Its idempotency key.
        opening_id: String,
        /// When.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
    /// A citizen's reply to a message arrived complete through a provider.
    ReplyReceived {
        /// Provider that relayed it.
        provider: String,
        /// The consent it came through (scopes the idempotency key).
        consent_id: String,
        /// The provider's idempotency key.
        idempotency_key: String,
        /// The reply.
        reply: NewReply,
        /// When it arrived.
        #[serde(with = "time::as_string")]
        at: Timestamp,
    },
}

/// A citizen's reply as journaled: its text and, of each file, only what describes it (the
/// sandbox, like DVV's stand-in for storage, keeps no file bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewReply {
    /// The reply's id (from the message id sequence).
    pub id: i64,
    /// The message replied to.
    pub message_id: i64,
    /// The text.
    pub body: String,
    /// The files.
    pub files: Vec<ReplyFile>,
}

/// One file of a reply.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplyFile {
    /// File name as uploaded.
    pub name: String,
    /// Media type as uploaded.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A message as journaled, ids included.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    /// Message id.
    pub id: i64,
    /// Recipient identity code.
    pub citizen: String,
    /// Sending organisation.
    pub sender_name: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Text or Markdown.
    pub body_format: BodyFormat,
    /// Normal or Verifiable.
    pub message_service_type: MessageServiceType,
    /// Attachments with ids.
    pub attachments: Vec<NewAttachment>,
    /// The sender's notification settings (journals written before they existed: the defaults).
    #[serde(default)]
    pub notifications: Notifications,
    /// Who may reply (older journals: no one).
    #[serde(default)]
    pub reply_allowed_by: ReplyAllowedBy,
    /// The citizen's reply this message answers, if it is an answer.
    #[serde(default)]
    pub in_reply_to_message_id: Option<i64>,
}

/// An attachment as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAttachment {
    /// Attachment id.
    pub id: i64,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// The open journal file, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal and returns the records already in it.
    ///
    /// A final line without its newline is the trace of a crash in mid-write: it is cut off
    /// with a warning. Any other line that does not parse is an error, because skipping it
    /// would silently lose state.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Vec<Record>)> {
        let mut records = Vec::new();
        if path.exists() {
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let complete = match bytes.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => 0,
            };
            if complete < bytes.len() {
                tracing::warn!(
                    bytes = bytes.len() - complete,
                    "journal ends in a torn line; cutting it off"
                );
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(complete as u64)?;
            }
            for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let record: Record = serde_json::from_slice(line).map_err(|e| {
                    anyhow::anyhow!(
                        "{} line {} is corrupt ({} at column {})",
                        path.display(),
                        n + 1,
                        e.classify_name(),
                        e.column()
                    )
                })?;
                records.push(record);
            }
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((
            Self {
                file,
                path: path.to_owned(),
            },
            records,
        ))
    }

    /// Appends one record as one line with a single write, so a crash leaves at worst a torn
    /// final line. The write reaches the kernel before this returns (it survives the process
    /// being killed); it is not fsync-ed, which a sandbox does not need.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(at: &str) -> Record {
        Record::ConsentGranted {
            citizen: "010190-936V".into(),
            provider: "provider-a".into(),
            at: time::parse(at).unwrap(),
        }
    }

    #[test]
    fn round_trips_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (mut j, records) = Journal::open(&path).unwrap();
            assert!(records.is_empty());
            j.append(&grant("2026-11-01T00:00:00Z")).unwrap();
            j.append(&grant("2026-11-02T00:00:00Z")).unwrap();
        }
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"type":"consentRev"#);
        fs::write(&path, &bytes).unwrap();
        let (mut j, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        j.append(&grant("2026-11-03T00:00:00Z")).unwrap();
        drop(j);
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, "garbage\n").unwrap();
        assert!(Journal::open(&path).is_err());
    }
}
