//! Configuration: one TOML file, every key overridable by an `IKKUNA_<SECTION>_<KEY>` environment
//! variable, validated completely before anything starts.
//!
//! Three stages, so each can be tested alone:
//! 1. `raw`: the file as written (unknown keys refused), with environment overrides applied;
//! 2. `validate`: typed values, defaults and ranges, every error collected and named by field;
//! 3. `files`: the files the configuration names are read and checked (certificates parse, keys
//!    are keys, the data directory is writable) and secrets are loaded.
//!
//! [`load`] runs all three; [`Config::from_toml_str`] runs the first two (no file system access),
//! which is what unit tests and `check-config --no-files` style tooling want.

mod error;
mod files;
mod raw;
mod secret;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub use error::{ConfigError, ConfigErrors};
pub use raw::TOOL_VARIABLES;
pub use secret::{Secret, SecretFile};
pub use validate::operations::{
    insecure_secret_files, AuditConfig, LimitsConfig, LogConfig, MIN_AUDIT_KEY_BYTES,
};
pub use validate::pipelines::{
    trimmed as trimmed_secret, EventsConfig, FeedStart, LedgerConfig, WebhooksConfig,
    DEFAULT_LEDGER_RETENTION_DAYS, MIN_WEBHOOK_SECRET_BYTES,
};
pub use validate::reminders::{
    RemindersConfig, DEFAULT_RECEIPT_REMINDER_DELAY_HOURS, DEFAULT_REMINDER_DELAY_HOURS,
    DEFAULT_REMINDER_MAX_COUNT,
};
pub use validate::store::{
    PostgresConfig, PostgresTls, SslMode, StoreBackend, DEFAULT_OWNER_LEASE_MS,
    DEFAULT_OWNER_RETRY_MS, DEFAULT_POOL_SIZE,
};
pub use validate::{
    DEFAULT_ACCEPTED_ACR, DEFAULT_ALGORITHMS, DEFAULT_AUDIENCE, DEFAULT_MAX_LIFETIME_SECS,
    MAX_LEEWAY_SECS, MAX_REVOCATION_BOUND_SECS,
};

/// Where configuration values from outside the file come from: a lookup by variable name.
/// Production passes [`process_env`]; tests pass a closure over a map and never touch the process
/// environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for production use with [`load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// No environment at all: the file alone decides.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Reads, validates and checks the configuration at `path`, reading every file it names and
/// loading its secrets. Relative paths in the file are relative to the file's directory. Every
/// problem found is reported, not only the first.
pub fn load(path: &Path, env: Env<'_>) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError::Read {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }])
    })?;
    let base = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let mut config = validate::validate_text(&text, env, base)?;
    config.load_files()?;
    Ok(config)
}

/// [`load`] with the process environment, which must hold no unknown `IKKUNA_…` variable: what
/// the `ikkuna` command uses. Every problem is reported, the file's and the environment's.
pub fn load_from_process(path: &Path) -> Result<Config, ConfigErrors> {
    let unknown = unknown_variables(std::env::vars_os().map(|(name, _)| name));
    match load(path, &process_env) {
        Ok(config) if unknown.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(unknown)),
        Err(ConfigErrors(mut errors)) => {
            errors.extend(unknown);
            Err(ConfigErrors(errors))
        }
    }
}

/// The errors for `names` (environment variable names) that start with `IKKUNA_` but name no
/// configuration key nor one of [`TOOL_VARIABLES`], each with a "did you mean" when a known name
/// is a few edits away. Values are never looked at.
pub fn unknown_variables<I, S>(names: I) -> Vec<ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    raw::unknown_variables(names)
}

/// The validated configuration of one gateway process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The operator API listener.
    pub server: ServerConfig,
    /// The metrics and health listener.
    pub admin: AdminConfig,
    /// The upstream DVV backend.
    pub dvv: DvvConfig,
    /// Verification of citizen assertions.
    pub assertions: AssertionsConfig,
    /// The consent cache.
    pub consent: ConsentConfig,
    /// The embedded store.
    pub store: StoreConfig,
    /// The DVV events feed consumer.
    pub events: EventsConfig,
    /// Signed webhooks to the operator.
    pub webhooks: WebhooksConfig,
    /// Retention of the compensation ledger.
    pub ledger: LedgerConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Request rate limits.
    pub limits: LimitsConfig,
    /// Log output.
    pub log: LogConfig,
    /// Reminders of unread messages.
    pub reminders: RemindersConfig,
}

impl Config {
    /// Parses and validates a configuration document without touching the file system (paths
    /// are kept as written; secrets are not read). Use [`Config::load_files`] or [`load`] to check
    /// the files too.
    pub fn from_toml_str(text: &str, env: Env<'_>) -> Result<Self, ConfigErrors> {
        validate::validate_text(text, env, None)
    }

    /// Reads every file the configuration names, checks that each holds what it should, loads
    /// the secrets, and checks that the data directory is writable or can be created (without
    /// creating it: the gateway does at start). Reports every problem found.
    pub fn load_files(&mut self) -> Result<(), ConfigErrors> {
        files::check(self)
    }
}

/// `[server]`: the operator API, served over TLS.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the operator API listens on.
    pub listen: SocketAddr,
    /// The server certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// The server's private key (PEM).
    pub tls_key: SecretFile,
    /// When set, operator backends must present a client certificate issued by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// Longest time one operator request may take: the whole of a non-streaming answer, the time
    /// to the first byte of a streamed one (504 after it).
    pub request_timeout: Duration,
    /// How long a stop (SIGTERM) waits for requests and streams in flight before closing them.
    pub drain_timeout: Duration,
    /// Longest time to receive a request's headers (slowloris defence).
    pub header_read_timeout: Duration,
    /// Longest time for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Open connections accepted at once; further ones wait.
    pub max_connections: usize,
    /// Requests processed at once; further ones are shed.
    pub max_concurrent_requests: usize,
    /// A response whose client has not accepted a byte for this long is cut: the connection's
    /// writes (both protocols) and each attachment stream (HTTP/2 streams one by one).
    pub write_idle_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive and
    /// HTTP/2 alike).
    pub idle_timeout: Duration,
}

/// `[admin]`: the listener for `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Address the admin listener binds (keep it on a private interface).
    pub listen: SocketAddr,
    /// Open admin connections at once; a silent one holds its slot only until its deadlines.
    pub max_connections: usize,
}

/// `[dvv]`: the upstream DVV backend and this operator's credentials there.
#[derive(Debug, Clone)]
pub struct DvvConfig {
    /// The backend's base URL (https); the contract's paths are appended to it.
    pub base_url: Url,
    /// This operator's provider id at DVV (`iss` and `sub` of the client assertion).
    pub provider_id: String,
    /// The only CA trusted for the DVV server certificate (PEM).
    pub ca_cert: PathBuf,
    /// The operator's client certificate chain for mutual TLS (PEM).
    pub client_cert: PathBuf,
    /// The private key of the client certificate (PEM).
    pub client_key: SecretFile,
    /// The ES256 private key (PKCS#8 PEM) that signs `private_key_jwt` client assertions.
    pub assertion_key: SecretFile,
    /// The `kid` header of client assertions, when DVV knows several keys of this operator.
    pub assertion_kid: Option<String>,
    /// Where citizens grant and revoke consents (linked in "no consent" answers).
    pub consent_service_url: Url,
    /// Suomi.fi Messages, where the citizen can always read the mail (linked in every refusal
    /// that leaves the citizen without mail here: no consent, revoked, DVV unavailable).
    pub fallback_url: Url,
    /// Longest time to open a TCP connection to DVV.
    pub connect_timeout: Duration,
    /// Deadline of one logical call to DVV, retries included.
    pub call_timeout: Duration,
    /// Longest silence tolerated while streaming a body from DVV.
    pub body_idle_timeout: Duration,
    /// Retries of one idempotent call after a 5xx or network error.
    pub max_retries: u32,
    /// How long before its expiry the access token is renewed.
    pub token_renew_before: Duration,
    /// Idle pooled connections kept to DVV.
    pub pool_idle_per_host: usize,
    /// Attachment downloads from DVV at once. Each runs on a connection of its own (a bulkhead:
    /// see SECURITY.md), so this bounds those connections; further downloads are refused 503.
    pub max_attachment_streams: usize,
}

/// Where the operator identity service's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk (re-read every refresh interval).
    File(PathBuf),
    /// A JWKS document fetched over https.
    Url {
        /// The JWKS URL.
        url: Url,
        /// A CA (PEM) to trust for it instead of the system roots.
        ca: Option<PathBuf>,
    },
}

/// `[assertions]`: verification of the citizen assertions the operator backend presents.
#[derive(Debug, Clone)]
pub struct AssertionsConfig {
    /// Required `iss`: the operator's identity service.
    pub issuer: String,
    /// Required `aud`: this gateway.
    pub audience: String,
    /// The verification keys.
    pub jwks: JwksSource,
    /// How often the keys are refreshed.
    pub jwks_refresh: Duration,
    /// Accepted signature algorithms (asymmetric only: never `none`, never HMAC).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Longest accepted assertion lifetime (`exp - iat`).
    pub max_lifetime: Duration,
    /// Accepted `acr` values (assurance levels).
    pub accepted_acr: Vec<String>,
    /// Strict mode: when set, an assertion holding any top-level claim outside this list (and the
    /// claims the verifier itself reads) is refused.
    pub allowed_claims: Option<Vec<String>>,
}

/// `[consent]`: the per-replica consent cache.
#[derive(Debug, Clone)]
pub struct ConsentConfig {
    /// Longest time a cached "consent active" may outlive a revocation at DVV.
    pub revocation_bound: Duration,
    /// How long a "no consent" answer is cached.
    pub negative_ttl: Duration,
    /// Most cached consent decisions.
    pub cache_capacity: u64,
}

/// `[store]`: the embedded store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the openings outbox and ledger (never content).
    pub data_dir: PathBuf,
    /// Where the durable state lives: the SQLite file in `data_dir` (default) or PostgreSQL.
    pub backend: StoreBackend,
}

#[cfg(test)]
mod tests;
