//! `[audit]`, `[limits]` and `[log]`: the audit trail, the rate limits and the log output.
//! Validated here (stage two); the audit pseudonym key is read by [`check_files`] (stage three),
//! and [`insecure_secret_files`] lists key files that others may read, which refuses start-up.

use std::path::PathBuf;

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::raw::{RawAudit, RawLimits, RawLog};
use crate::config::secret::SecretFile;
use crate::config::Config;
use crate::telemetry::LogFormat;

/// Shortest accepted audit pseudonym key, in bytes.
pub const MIN_AUDIT_KEY_BYTES: usize = crate::audit::pseudonym::MIN_KEY_BYTES;

/// `[audit]`: the tamper-evident audit trail.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The active audit file; `None` turns the trail off (a warning at start).
    pub file: Option<PathBuf>,
    /// The HMAC key naming citizens by pseudonym (required with `file`).
    pub pseudonym_key: Option<SecretFile>,
    /// Rotate past this many bytes (0: never by size).
    pub max_file_bytes: u64,
    /// Rotate when the UTC day changes.
    pub rotate_daily: bool,
    /// `fdatasync` each batch of records.
    pub fsync: bool,
}

/// `[limits]`: request rates; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The limiter settings.
    pub settings: crate::limits::LimitSettings,
    /// How often idle limiter states are dropped.
    pub housekeeping_secs: u64,
}

/// `[log]`: log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON lines (production) or text.
    pub format: LogFormat,
    /// Filter directive (`info`, `ikkuna=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Checker {
    pub(super) fn audit(&mut self, raw: RawAudit) -> Option<AuditConfig> {
        let file = match raw.file {
            Some(path) => Some(self.nonempty_path("audit.file", path)?),
            None => None,
        };
        let pseudonym_key = match (raw.pseudonym_key_file, &file) {
            (Some(path), _) => Some(SecretFile::unread(
                self.nonempty_path("audit.pseudonym_key_file", path)?,
            )),
            (None, Some(_)) => {
                self.errors.push(ConfigError::Missing {
                    field: "audit.pseudonym_key_file",
                });
                return None;
            }
            (None, None) => None,
        };
        let max_file_bytes = self.count(
            "audit.max_file_bytes",
            raw.max_file_bytes,
            100 * 1024 * 1024,
            0..=1 << 40,
        )?;
        if max_file_bytes != 0 && max_file_bytes < 4096 {
            self.invalid(
                "audit.max_file_bytes",
                "must be 0 (no size rotation) or at least 4096",
            );
            return None;
        }
        Some(AuditConfig {
            file,
            pseudonym_key,
            max_file_bytes,
            rotate_daily: raw.rotate_daily.unwrap_or(true),
            fsync: raw.fsync.unwrap_or(true),
        })
    }

    pub(super) fn limits(&mut self, raw: RawLimits) -> Option<LimitsConfig> {
        let mut rate = |field: &'static str, value: Option<u64>, default: u64| {
            self.count(field, value, default, 0..=1_000_000)
                .and_then(|v| u32::try_from(v).ok())
        };
        let citizen_per_minute = rate("limits.citizen_per_minute", raw.citizen_per_minute, 120);
        let citizen_burst = rate("limits.citizen_burst", raw.citizen_burst, 30);
        let client_per_second = rate("limits.client_per_second", raw.client_per_second, 200);
        let client_burst = rate("limits.client_burst", raw.client_burst, 400);
        let dvv_per_second = rate("limits.dvv_per_second", raw.dvv_per_second, 500);
        let dvv_burst = rate("limits.dvv_burst", raw.dvv_burst, 1000);
        let housekeeping_secs = self.count(
            "limits.housekeeping_secs",
            raw.housekeeping_secs,
            60,
            1..=3_600,
        );
        Some(LimitsConfig {
            settings: crate::limits::LimitSettings {
                citizen_per_minute: citizen_per_minute?,
                citizen_burst: citizen_burst?,
                client_per_second: client_per_second?,
                client_burst: client_burst?,
                dvv_per_second: dvv_per_second?,
                dvv_burst: dvv_burst?,
            },
            housekeeping_secs: housekeeping_secs?,
        })
    }

    pub(super) fn log(&mut self, raw: RawLog) -> Option<LogConfig> {
        let format = match raw.format.as_deref().map(str::trim) {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(_) => {
                self.invalid("log.format", "must be \"json\" or \"text\"");
                return None;
            }
        };
        let level = raw.level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.invalid(
                "log.level",
                "must be a log filter such as \"info\" or \"ikkuna=debug,info\"",
            );
            return None;
        }
        Some(LogConfig { format, level })
    }
}

/// Stage three for these sections: the audit pseudonym key is read and must be long enough.
pub(crate) fn check_files(config: &mut Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(key) = &mut config.audit.pseudonym_key {
        let path = key.path().to_path_buf();
        let result = match key.load() {
            Ok(material) if material.expose().trim_ascii().len() >= MIN_AUDIT_KEY_BYTES => Ok(()),
            Ok(_) => Err(format!(
                "must hold at least {MIN_AUDIT_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            )),
            Err(error) => Err(format!("cannot read: {error}")),
        };
        if let Err(reason) = result {
            errors.push(ConfigError::File {
                field: "audit.pseudonym_key_file",
                path,
                reason,
            });
        }
    }
    errors
}

/// Key files that group or others may read (or write): the gateway refuses to start with them,
/// since a key anyone on the machine can read is no longer a secret.
pub fn insecure_secret_files(config: &Config) -> Vec<ConfigError> {
    let mut files: Vec<(&'static str, PathBuf)> = vec![
        (
            "server.tls_key_file",
            config.server.tls_key.path().to_path_buf(),
        ),
        (
            "dvv.client_key_file",
            config.dvv.client_key.path().to_path_buf(),
        ),
        (
            "dvv.assertion_key_file",
            config.dvv.assertion_key.path().to_path_buf(),
        ),
    ];
    if let Some(key) = &config.audit.pseudonym_key {
        files.push(("audit.pseudonym_key_file", key.path().to_path_buf()));
    }
    if let Some(secret) = &config.webhooks.secret {
        files.push(("webhooks.secret_file", secret.path().to_path_buf()));
    }
    files.extend(super::store::secret_files(config));
    files
        .into_iter()
        .filter_map(|(field, path)| {
            let reason = exposed(&path)?;
            Some(ConfigError::File {
                field,
                path,
                reason,
            })
        })
        .collect()
}

#[cfg(unix)]
fn exposed(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!("is accessible by group or others (mode {mode:03o}); make it readable by the gateway's user only (chmod 600)")
    })
}

#[cfg(not(unix))]
fn exposed(_path: &std::path::Path) -> Option<String> {
    None
}
