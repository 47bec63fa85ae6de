//! `[events]`, `[webhooks]` and `[ledger]`: the events feed consumer, the signed webhooks to the
//! operator and the compensation ledger's retention. Validated here (stage two) and their files
//! checked by [`check_files`] (stage three), beside the other sections.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::raw::{RawEvents, RawLedger, RawWebhooks};
use crate::config::secret::SecretFile;
use crate::config::Config;

/// Shortest accepted webhook secret, in bytes (a 256-bit HMAC key).
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 32;
/// Default `ledger.retention_days`: a full compensation year plus a margin for late checks.
pub const DEFAULT_LEDGER_RETENTION_DAYS: u64 = 400;

/// Where the events feed starts when the store holds no position yet (first start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// Skip what happened before the first start: read to the end of the feed, applying
    /// revocations to the cache but sending no webhooks for the backlog.
    Latest,
    /// Deliver everything DVV still retains (up to 60 days) as webhooks.
    Retention,
}

/// `[events]`: how DVV's events feed is read.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Wait between polls when the feed has nothing new (the revocation delay while DVV is up).
    pub poll_interval: Duration,
    /// Longest wait between polls after failures (the backoff doubles up to it).
    pub max_backoff: Duration,
    /// Where a first start begins.
    pub start: FeedStart,
}

/// `[webhooks]`: signed deliveries of feed events to the operator's endpoints.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// The operator's HTTPS endpoints; empty means webhooks are off.
    pub endpoints: Vec<Url>,
    /// The HMAC-SHA256 key signing every delivery (required when there are endpoints).
    pub secret: Option<SecretFile>,
    /// A CA (PEM) trusted for the endpoints instead of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Longest time to open a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Longest time for one delivery attempt, connect to response headers.
    pub timeout: Duration,
    /// Failed attempts after which a delivery is parked.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each further failure.
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// `[ledger]`: how long opening records are kept.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Delivered openings older than this are pruned (pending and parked ones never are).
    pub retention: Duration,
}

impl Checker {
    pub(super) fn events(&mut self, raw: RawEvents) -> Option<EventsConfig> {
        let poll_interval = self.millis(
            "events.poll_interval_ms",
            raw.poll_interval_ms,
            1_000,
            10..=60_000,
        );
        let max_backoff = self.millis(
            "events.max_backoff_ms",
            raw.max_backoff_ms,
            30_000,
            10..=3_600_000,
        );
        let start = match raw.start.as_deref().map(str::trim) {
            None | Some("latest") => Some(FeedStart::Latest),
            Some("retention") => Some(FeedStart::Retention),
            Some(_) => {
                self.invalid("events.start", "must be \"latest\" or \"retention\"");
                None
            }
        };
        if let (Some(poll), Some(max)) = (poll_interval, max_backoff) {
            if max < poll {
                self.invalid(
                    "events.max_backoff_ms",
                    "must not be less than events.poll_interval_ms",
                );
            }
        }
        Some(EventsConfig {
            poll_interval: poll_interval?,
            max_backoff: max_backoff?,
            start: start?,
        })
    }

    pub(super) fn webhooks(&mut self, raw: RawWebhooks) -> Option<WebhooksConfig> {
        let mut endpoints = Vec::new();
        let mut endpoints_ok = true;
        for text in raw.endpoints.unwrap_or_default() {
            match self.https_url("webhooks.endpoints", Some(text)) {
                Some(url) if !endpoints.contains(&url) => endpoints.push(url),
                Some(_) => {}
                None => endpoints_ok = false,
            }
        }
        let secret = match raw.secret_file {
            Some(path) => self
                .nonempty_path("webhooks.secret_file", path)
                .map(|p| Some(SecretFile::unread(p))),
            None if !endpoints.is_empty() => {
                self.errors.push(ConfigError::Missing {
                    field: "webhooks.secret_file",
                });
                None
            }
            None => Some(None),
        };
        let ca_cert = match raw.ca_cert {
            Some(path) => self.nonempty_path("webhooks.ca_cert", path).map(Some),
            None => Some(None),
        };
        let connect_timeout = self.millis(
            "webhooks.connect_timeout_ms",
            raw.connect_timeout_ms,
            3_000,
            1..=60_000,
        );
        let timeout = self.millis("webhooks.timeout_ms", raw.timeout_ms, 10_000, 1..=120_000);
        let max_attempts = self.count("webhooks.max_attempts", raw.max_attempts, 30, 1..=100);
        let initial_backoff = self.millis(
            "webhooks.initial_backoff_ms",
            raw.initial_backoff_ms,
            1_000,
            1..=3_600_000,
        );
        let max_backoff = self.millis(
            "webhooks.max_backoff_ms",
            raw.max_backoff_ms,
            3_600_000,
            1..=86_400_000,
        );
        let concurrency = self.count("webhooks.concurrency", raw.concurrency, 4, 1..=256);
        if let (Some(connect), Some(total)) = (connect_timeout, timeout) {
            if connect > total {
                self.invalid(
                    "webhooks.connect_timeout_ms",
                    "must not exceed webhooks.timeout_ms",
                );
            }
        }
        if let (Some(first), Some(max)) = (initial_backoff, max_backoff) {
            if max < first {
                self.invalid(
                    "webhooks.max_backoff_ms",
                    "must not be less than webhooks.initial_backoff_ms",
                );
            }
        }
        if !endpoints_ok {
            return None;
        }
        Some(WebhooksConfig {
            endpoints,
            secret: secret?,
            ca_cert: ca_cert?,
            connect_timeout: connect_timeout?,
            timeout: timeout?,
            max_attempts: u32::try_from(max_attempts?).ok()?,
            initial_backoff: initial_backoff?,
            max_backoff: max_backoff?,
            concurrency: usize::try_from(concurrency?).ok()?,
        })
    }

    pub(super) fn ledger(&mut self, raw: RawLedger) -> Option<LedgerConfig> {
        let days = self.count(
            "ledger.retention_days",
            raw.retention_days,
            DEFAULT_LEDGER_RETENTION_DAYS,
            31..=3_650,
        );
        Some(LedgerConfig {
            retention: Duration::from_secs(days? * 86_400),
        })
    }
}

/// Stage three for these sections: the webhook secret is read (and must be long enough) and the
/// webhook CA must hold certificates. Returns the problems found.
pub(crate) fn check_files(config: &mut Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let webhooks = &mut config.webhooks;
    if let Some(secret) = &mut webhooks.secret {
        let path = secret.path().to_path_buf();
        let result = match secret.load() {
            Ok(material) if trimmed(material.expose()).len() >= MIN_WEBHOOK_SECRET_BYTES => Ok(()),
            Ok(_) => Err(format!(
                "must hold at least {MIN_WEBHOOK_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            )),
            Err(error) => Err(format!("cannot read: {error}")),
        };
        if let Err(reason) = result {
            errors.push(ConfigError::File {
                field: "webhooks.secret_file",
                path,
                reason,
            });
        }
    }
    if let Some(ca) = &webhooks.ca_cert {
        if let Err(reason) = certificates(ca) {
            errors.push(ConfigError::File {
                field: "webhooks.ca_cert",
                path: ca.clone(),
                reason,
            });
        }
    }
    errors
}

/// The secret without surrounding whitespace (a trailing newline from `echo` is not key).
pub fn trimmed(secret: &[u8]) -> &[u8] {
    let start = secret
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(secret.len());
    let end = secret
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &secret[start..end.max(start)]
}

fn certificates(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = std::fs::read(path).map_err(|error| format!("cannot read: {error}"))?;
    let mut count = 0usize;
    for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|_| "holds a malformed PEM certificate".to_owned())?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::trimmed;
    use crate::config::{no_env, Config, FeedStart};

    use super::super::MINIMAL_TOML as BASE;

    #[test]
    fn defaults_leave_webhooks_off() {
        let config = Config::from_toml_str(BASE, &no_env).expect("valid");
        assert!(config.webhooks.endpoints.is_empty());
        assert!(config.webhooks.secret.is_none());
        assert_eq!(config.events.start, FeedStart::Latest);
        assert_eq!(config.events.poll_interval.as_millis(), 1_000);
        assert_eq!(config.ledger.retention.as_secs(), 400 * 86_400);
        assert_eq!(config.webhooks.max_attempts, 30);
    }

    #[test]
    fn endpoints_need_https_and_a_secret() {
        let text = format!("{BASE}[webhooks]\nendpoints = [\"http://op.example/hook\"]\n");
        let errors = Config::from_toml_str(&text, &no_env).expect_err("invalid");
        assert!(errors.names("webhooks.endpoints"), "{errors}");
        let text = format!("{BASE}[webhooks]\nendpoints = [\"https://op.example/hook\"]\n");
        let errors = Config::from_toml_str(&text, &no_env).expect_err("invalid");
        assert!(errors.names("webhooks.secret_file"), "{errors}");
    }

    #[test]
    fn env_overrides_and_ranges() {
        let env = |name: &str| match name {
            "IKKUNA_WEBHOOKS_ENDPOINTS" => Some("https://a.example/h, https://b.example/h".into()),
            "IKKUNA_WEBHOOKS_SECRET_FILE" => Some("/x/secret".into()),
            "IKKUNA_EVENTS_START" => Some("retention".into()),
            "IKKUNA_LEDGER_RETENTION_DAYS" => Some("3".into()),
            _ => None,
        };
        let errors = Config::from_toml_str(BASE, &env).expect_err("retention too short");
        assert!(errors.names("ledger.retention_days"), "{errors}");
        let env2 = |name: &str| match name {
            "IKKUNA_LEDGER_RETENTION_DAYS" => None,
            other => env(other),
        };
        let config = Config::from_toml_str(BASE, &env2).expect("valid");
        assert_eq!(config.webhooks.endpoints.len(), 2);
        assert_eq!(config.events.start, FeedStart::Retention);
        let debug = format!("{:?}", config.webhooks);
        assert!(debug.contains("not loaded") || debug.contains("redacted"));
    }

    #[test]
    fn secrets_are_trimmed() {
        assert_eq!(trimmed(b"  abc\n"), b"abc");
        assert_eq!(trimmed(b"\n\n"), b"");
        assert_eq!(trimmed(b""), b"");
    }
}
