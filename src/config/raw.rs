//! Stage one: the file as written. Every key is optional here (defaults and requirements are the
//! validator's job), unknown keys are refused by `#[serde(deny_unknown_fields)]`, and every key can
//! be overridden by an `IKKUNA_<SECTION>_<KEY>` environment variable.
//!
//! Each section is parsed on its own, so one typo does not hide the errors of other sections.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::ConfigError;
use super::Env;

/// A value that an environment variable may override. Lists are comma-separated.
pub(crate) trait FromEnv: Sized {
    /// Parses the variable's text, or says why it cannot (never echoing the text).
    fn from_env(text: &str) -> Result<Self, &'static str>;
}

impl FromEnv for String {
    fn from_env(text: &str) -> Result<Self, &'static str> {
        Ok(text.to_owned())
    }
}

impl FromEnv for PathBuf {
    fn from_env(text: &str) -> Result<Self, &'static str> {
        Ok(PathBuf::from(text))
    }
}

impl FromEnv for u64 {
    fn from_env(text: &str) -> Result<Self, &'static str> {
        text.trim()
            .parse()
            .map_err(|_| "must be a non-negative integer")
    }
}

impl FromEnv for bool {
    fn from_env(text: &str) -> Result<Self, &'static str> {
        match text.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err("must be true or false"),
        }
    }
}

impl FromEnv for Vec<String> {
    fn from_env(text: &str) -> Result<Self, &'static str> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// The environment variable that overrides `section.key`.
pub(crate) fn env_var(section: &str, key: &str) -> String {
    format!(
        "IKKUNA_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Maps a TOML error of one section to a [`ConfigError`] naming that section.
fn section_error(section: &'static str, text: &str, error: &toml::de::Error) -> ConfigError {
    ConfigError::Section {
        section,
        message: toml_message(text, error),
    }
}

/// A TOML error as "line L, column C: message", without the parser's excerpt of the offending
/// line and without any quoted value: a secret pasted under a wrong key, or where a number
/// belongs, never reaches the terminal or a log.
pub(crate) fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = redact_quoted(error.message().trim_end()).replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let start = floor_char_boundary(text, span.start);
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let line_text = text[start..].split('\n').next().unwrap_or("");
            let line_text = format!("{}{line_text}", before.rsplit('\n').next().unwrap_or(""));
            match key_of(&line_text) {
                Some(key) => format!("line {line}, column {column}, key `{key}`: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The key a `key = value` line assigns (its text before `=`), when it is a plain key name: the
/// part of the line an error may repeat, unlike the value.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some(key)
}

/// Replaces every double-quoted part of a parser message (serde quotes string values there,
/// while key names are in backticks) with `"…"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            out.push_str("\"…\"");
        } else {
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}

/// `IKKUNA_…` variables that Ikkuna's own tools read (tests, benchmarks, deployment checks): not
/// configuration keys, so the gateway leaves them alone.
pub const TOOL_VARIABLES: &[&str] = &[
    "IKKUNA_GATEWAY_BIN",
    "IKKUNA_SANDBOX_BIN",
    "IKKUNA_PG_BINDIR",
    "IKKUNA_SOAK_SECS",
    "IKKUNA_DOCKER_BUILD",
    // The commit recorded by the build script: set by `cargo test` for the processes it starts,
    // and by container builds.
    "IKKUNA_COMMIT",
    // Read by the certification suite, inherited by the gateway it launches.
    "IKKUNA_CERTIFY_OMIT_ENV",
];

/// Every `IKKUNA_…` name among `names` that is neither a configuration key's variable nor one of
/// [`TOOL_VARIABLES`]: a misspelt override is an error, never silently ignored. Only names are
/// looked at; the values are never read, so none can be echoed.
pub(crate) fn unknown_variables<I, S>(names: I) -> Vec<ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let known: Vec<String> = KEYS
        .iter()
        .map(|(section, key)| env_var(section, key))
        .chain(TOOL_VARIABLES.iter().map(|v| (*v).to_owned()))
        .collect();
    let mut unknown: Vec<String> = names
        .into_iter()
        .map(|name| name.as_ref().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("IKKUNA_") && !known.contains(name))
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
        .into_iter()
        .map(|var| {
            let suggestion = nearest(&var, &known);
            ConfigError::UnknownEnv { var, suggestion }
        })
        .collect()
}

/// The known name closest to `name`, when it is close enough to be a typo of it: at most a
/// quarter of the shorter name's edits (two at least), and fewer than a third.
fn nearest(name: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| {
            let stem = candidate
                .len()
                .min(name.len())
                .saturating_sub("IKKUNA_".len());
            *distance <= (stem / 4).max(2) && *distance * 3 < stem
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.clone())
}

/// Declares the raw sections once: the structs, their key lists, per-section parsing and the
/// environment overrides all come from this one list, so they cannot drift apart.
macro_rules! raw_sections {
    ($(
        $(#[$section_meta:meta])*
        $section:ident => $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[$section_meta])*
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub(crate) struct $name {
                $( $(#[$field_meta])* pub(crate) $field: Option<$ty>, )*
            }

            impl $name {
                /// Parses this section out of the whole document (other sections are ignored here).
                fn parse(text: &str, errors: &mut Vec<ConfigError>) -> Option<Self> {
                    #[derive(Deserialize)]
                    struct Only {
                        #[serde(default)]
                        $section: Option<$name>,
                    }
                    match toml::from_str::<Only>(text) {
                        Ok(only) => Some(only.$section.unwrap_or_default()),
                        Err(error) => {
                            errors.push(section_error(stringify!($section), text, &error));
                            None
                        }
                    }
                }

                /// Applies `IKKUNA_<SECTION>_<KEY>` overrides: the environment wins over the file.
                fn apply_env(&mut self, env: Env<'_>, errors: &mut Vec<ConfigError>) {
                    $(
                        let var = env_var(stringify!($section), stringify!($field));
                        if let Some(text) = env(&var) {
                            match <$ty as FromEnv>::from_env(&text) {
                                Ok(value) => self.$field = Some(value),
                                Err(reason) => errors.push(ConfigError::Env {
                                    field: concat!(stringify!($section), ".", stringify!($field)),
                                    var,
                                    reason: reason.to_owned(),
                                }),
                            }
                        }
                    )*
                }
            }
        )*

        /// The whole file as written, section by section.
        #[derive(Debug, Default)]
        pub(crate) struct RawConfig {
            $( pub(crate) $section: $name, )*
            /// Sections that could not be parsed: their keys are not reported missing again.
            pub(crate) unparsed: Vec<&'static str>,
        }

        /// The known sections, in file order.
        pub(crate) const SECTIONS: &[&str] = &[$(stringify!($section)),*];

        /// Every `section.key`: the configuration's keys, whose `IKKUNA_<SECTION>_<KEY>` variables
        /// are the only configuration variables.
        pub(crate) const KEYS: &[(&str, &str)] = &[$( $( (stringify!($section), stringify!($field)), )* )*];

        /// Every `section.key`, for documentation tests.
        #[cfg(test)]
        pub(crate) fn all_keys() -> Vec<(&'static str, &'static str)> {
            KEYS.to_vec()
        }

        impl RawConfig {
            /// Parses the document and applies the environment, collecting every error.
            pub(crate) fn parse(text: &str, env: Env<'_>, errors: &mut Vec<ConfigError>) -> Self {
                match toml::from_str::<toml::Table>(text) {
                    Ok(table) => {
                        for name in table.keys() {
                            if !SECTIONS.contains(&name.as_str()) {
                                errors.push(ConfigError::UnknownSection { section: name.clone() });
                            }
                        }
                    }
                    Err(error) => {
                        errors.push(ConfigError::Syntax {
                            message: toml_message(text, &error),
                        });
                        return Self {
                            unparsed: SECTIONS.to_vec(),
                            ..Self::default()
                        };
                    }
                }
                let mut raw = Self::default();
                $(
                    match $name::parse(text, errors) {
                        Some(section) => raw.$section = section,
                        None => raw.unparsed.push(stringify!($section)),
                    }
                )*
                $( raw.$section.apply_env(env, errors); )*
                raw
            }
        }
    };
}

raw_sections! {
    /// `[server]`: the operator API listener.
    server => RawServer {
        listen: String,
        tls_cert: PathBuf,
        tls_key_file: PathBuf,
        client_ca: PathBuf,
        request_timeout_ms: u64,
        drain_timeout_ms: u64,
        header_read_timeout_ms: u64,
        tls_handshake_timeout_ms: u64,
        max_connections: u64,
        max_concurrent_requests: u64,
        write_idle_timeout_ms: u64,
        idle_timeout_ms: u64,
    }
    /// `[admin]`: metrics and health listener.
    admin => RawAdmin {
        listen: String,
        max_connections: u64,
    }
    /// `[dvv]`: the upstream DVV backend and this operator's credentials there.
    dvv => RawDvv {
        base_url: String,
        provider_id: String,
        ca_cert: PathBuf,
        client_cert: PathBuf,
        client_key_file: PathBuf,
        assertion_key_file: PathBuf,
        assertion_kid: String,
        consent_service_url: String,
        connect_timeout_ms: u64,
        call_timeout_ms: u64,
        body_idle_timeout_ms: u64,
        max_retries: u64,
        token_renew_before_secs: u64,
        pool_idle_per_host: u64,
        max_attachment_streams: u64,
        fallback_url: String,
    }
    /// `[assertions]`: how citizen assertions from the operator's identity service are verified.
    assertions => RawAssertions {
        issuer: String,
        audience: String,
        jwks_file: PathBuf,
        jwks_url: String,
        jwks_ca: PathBuf,
        jwks_refresh_secs: u64,
        algorithms: Vec<String>,
        leeway_secs: u64,
        max_lifetime_secs: u64,
        accepted_acr: Vec<String>,
        allowed_claims: Vec<String>,
    }
    /// `[consent]`: the consent cache.
    consent => RawConsent {
        revocation_bound_secs: u64,
        negative_ttl_secs: u64,
        cache_capacity: u64,
    }
    /// `[store]`: the embedded store (openings outbox, ledger).
    store => RawStore {
        data_dir: PathBuf,
        backend: String,
        url: String,
        password_file: PathBuf,
        pool_size: u64,
        owner_retry_ms: u64,
        owner_lease_ms: u64,
        claim_ms: u64,
        sslmode: String,
        ssl_root_cert: PathBuf,
        ssl_cert: PathBuf,
        ssl_key_file: PathBuf,
    }
    /// `[events]`: the DVV events feed consumer.
    events => RawEvents {
        poll_interval_ms: u64,
        max_backoff_ms: u64,
        start: String,
    }
    /// `[webhooks]`: signed webhooks to the operator.
    webhooks => RawWebhooks {
        endpoints: Vec<String>,
        secret_file: PathBuf,
        ca_cert: PathBuf,
        connect_timeout_ms: u64,
        timeout_ms: u64,
        max_attempts: u64,
        initial_backoff_ms: u64,
        max_backoff_ms: u64,
        concurrency: u64,
    }
    /// `[ledger]`: retention of the opening records.
    ledger => RawLedger {
        retention_days: u64,
    }
    /// `[audit]`: the tamper-evident audit trail.
    audit => RawAudit {
        file: PathBuf,
        pseudonym_key_file: PathBuf,
        max_file_bytes: u64,
        rotate_daily: bool,
        fsync: bool,
    }
    /// `[limits]`: request rate limits.
    limits => RawLimits {
        citizen_per_minute: u64,
        citizen_burst: u64,
        client_per_second: u64,
        client_burst: u64,
        dvv_per_second: u64,
        dvv_burst: u64,
        housekeeping_secs: u64,
    }
    /// `[log]`: log output.
    log => RawLog {
        format: String,
        level: String,
    }
    /// `[reminders]`: reminders of unread messages.
    reminders => RawReminders {
        delay_hours: u64,
        receipt_delay_hours: u64,
        max_count: u64,
        poll_interval_ms: u64,
        clock_offset_secs: u64,
    }
}
