//! What was certified: the gateway binary (path, version, commit, SHA-256) and the configuration
//! checked, with every secret removed, so a report names exactly the build and settings it
//! vouches for.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Shown where a value could not be learnt.
const UNKNOWN: &str = "unknown";

/// The certified gateway and its configuration.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// The binary's path (mode 1: the one launched; mode 2: the listening process's executable).
    pub binary: String,
    /// First line of `BINARY --version`.
    pub version: String,
    /// The source commit the binary reports (`commit …` in its version text).
    pub commit: String,
    /// SHA-256 of the binary file.
    pub sha256: String,
    /// The configuration file checked.
    pub configuration_file: String,
    /// Its text with every secret value removed.
    pub configuration: String,
    /// Environment overrides applied at launch, secrets removed.
    pub overrides: Vec<String>,
}

impl Subject {
    /// Describes `binary` (when known) and `config` plus `env` overrides.
    pub fn describe(
        binary: Option<&Path>,
        config: Option<&Path>,
        env: &[(String, String)],
    ) -> Self {
        let mut s = Subject {
            binary: UNKNOWN.to_owned(),
            version: UNKNOWN.to_owned(),
            commit: UNKNOWN.to_owned(),
            sha256: UNKNOWN.to_owned(),
            configuration_file: "not given".to_owned(),
            configuration: String::new(),
            overrides: env
                .iter()
                .map(|(k, v)| format!("{k}={}", redact_value(k, v)))
                .collect(),
        };
        if let Some(bin) = binary {
            s.binary = bin.display().to_string();
            if let Ok(bytes) = std::fs::read(bin) {
                s.sha256 = hex::encode(Sha256::digest(&bytes));
            }
            if let Ok(out) = Command::new(bin).arg("--version").output() {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if let Some(first) = text.lines().next().filter(|l| !l.trim().is_empty()) {
                    s.version = first.trim().to_owned();
                }
                s.commit = commit_in(&text).unwrap_or_else(|| {
                    "not reported by the binary (`--version` names no commit)".to_owned()
                });
            }
        }
        if let Some(c) = config {
            s.configuration_file = c.display().to_string();
            s.configuration = std::fs::read_to_string(c)
                .map(|t| redact_config(&t))
                .unwrap_or_else(|e| format!("(unreadable: {e})"));
        }
        s
    }
}

/// A commit id in version text: a 7-to-40-digit hex word after the word `commit`.
fn commit_in(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ':' | '='))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|w| {
        (w[0].eq_ignore_ascii_case("commit")
            && (7..=40).contains(&w[1].len())
            && w[1].chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| w[1].to_owned())
    })
}

/// Whether a key names a secret value (not a path to one).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.contains("secret")
        || k.contains("password")
        || k.contains("token")
        || k.contains("passphrase"))
        && !k.ends_with("_file")
}

/// A value with secrets removed: secret keys lose their value, URLs lose their user info.
pub fn redact_value(key: &str, value: &str) -> String {
    if secret_key(key) {
        return "(removed)".to_owned();
    }
    match (value.find("://"), value.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://(removed)@{}", &value[..scheme], &value[at + 1..])
        }
        _ => value.to_owned(),
    }
}

/// A TOML configuration with each secret value removed, line by line (comments kept).
pub fn redact_config(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) if !line.trim_start().starts_with('#') => {
                let key = k.trim();
                let redacted = redact_value(key, v.trim().trim_matches('"'));
                if redacted == v.trim().trim_matches('"') {
                    line.to_owned()
                } else {
                    format!("{k}= \"{redacted}\"")
                }
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_credentials_in_urls_are_removed_and_paths_kept() {
        let text = "[store]\nurl = \"postgres://ikkuna:hunter2@db/ikkuna\"\n[webhooks]\nsecret = \"abc\"\nsecret_file = \"/etc/s\"\n# secret = \"x\"\n";
        let r = redact_config(text);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(!r.contains("\"abc\""), "{r}");
        assert!(r.contains("secret_file = \"/etc/s\""), "{r}");
        assert!(r.contains("postgres://(removed)@db/ikkuna"), "{r}");
        assert_eq!(redact_value("IKKUNA_WEBHOOKS_SECRET", "x"), "(removed)");
    }

    #[test]
    fn a_commit_is_found_in_version_text() {
        assert_eq!(
            commit_in("ikkuna 0.1.0 (commit 0123abcd)").as_deref(),
            Some("0123abcd")
        );
        assert_eq!(commit_in("ikkuna 0.1.0"), None);
    }
}
