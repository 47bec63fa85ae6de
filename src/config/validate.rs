//! Stage two: raw values to typed ones. Defaults are applied here, ranges are checked here, and
//! every error is collected (named by its field) before giving up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::error::{ConfigError, ConfigErrors};
use super::raw::{RawAdmin, RawAssertions, RawConfig, RawConsent, RawDvv, RawServer, RawStore};
use super::secret::SecretFile;
use super::{
    AdminConfig, AssertionsConfig, Config, ConsentConfig, DvvConfig, Env, JwksSource, ServerConfig,
    StoreConfig,
};

pub(super) mod operations;
pub(super) mod pipelines;
pub(super) mod reminders;
pub(super) mod store;

/// Suomi.fi Messages, where a citizen can always read their authority mail (`dvv.fallback_url`).
const DEFAULT_FALLBACK_URL: &str = "https://www.suomi.fi/viestit";

/// The smallest configuration that validates, shared by the section validators' tests.
#[cfg(test)]
const MINIMAL_TOML: &str = r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "/x/gateway.pem"
tls_key_file = "/x/gateway.key"
[admin]
listen = "127.0.0.1:0"
[dvv]
base_url = "https://127.0.0.1:1"
provider_id = "provider-a"
ca_cert = "/x/ca.pem"
client_cert = "/x/client.pem"
client_key_file = "/x/client.key"
assertion_key_file = "/x/assertion.key"
consent_service_url = "https://127.0.0.1:2/consent-service"
[assertions]
issuer = "https://identity.example"
jwks_file = "/x/jwks.json"
[store]
data_dir = "/x/data"
"#;

/// Default `assertions.audience`.
pub const DEFAULT_AUDIENCE: &str = "ikkuna";
/// Default `assertions.algorithms`: asymmetric algorithms only.
pub const DEFAULT_ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];
/// Default `assertions.accepted_acr`: substantial and high, Finnish and eIDAS URIs.
pub const DEFAULT_ACCEPTED_ACR: &[&str] = &[
    "http://ftn.ficora.fi/2017/loa2",
    "http://ftn.ficora.fi/2017/loa3",
    "http://eidas.europa.eu/LoA/substantial",
    "http://eidas.europa.eu/LoA/high",
];
/// Upper bound of `assertions.leeway_secs`.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Default longest citizen-assertion lifetime, in seconds: the 10 minutes the operator API
/// promises (README, `docs/operator-api.yaml`) and the verifier's own default.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 600;
/// Upper bound of `consent.revocation_bound_secs`: a revocation is honoured within minutes at worst.
pub const MAX_REVOCATION_BOUND_SECS: u64 = 300;

/// Parses, overrides and validates a document; `base` resolves relative paths.
pub(crate) fn validate_text(
    text: &str,
    env: Env<'_>,
    base: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let raw = RawConfig::parse(text, env, &mut errors);
    let mut check = Checker {
        errors,
        base: base.map(Path::to_path_buf),
        unparsed: raw.unparsed.clone(),
    };
    let config = check.config(raw);
    match config {
        Some(config) if check.errors.is_empty() => Ok(config),
        Some(_) => Err(ConfigErrors(check.errors)),
        None if check.errors.is_empty() => Err(ConfigErrors(vec![ConfigError::Syntax {
            message: "the configuration could not be validated".to_owned(),
        }])),
        None => Err(ConfigErrors(check.errors)),
    }
}

/// Collects errors while turning raw values into typed ones. Each helper records what is wrong
/// with its field and returns `None` for it, so all fields are checked before giving up.
struct Checker {
    errors: Vec<ConfigError>,
    base: Option<PathBuf>,
    /// Sections whose parse error is already reported: their missing keys are not repeated.
    unparsed: Vec<&'static str>,
}

impl Checker {
    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let server = self.server(raw.server);
        let admin = self.admin(raw.admin);
        let dvv = self.dvv(raw.dvv);
        let assertions = self.assertions(raw.assertions);
        let consent = self.consent(raw.consent);
        let store = self.store(raw.store);
        let events = self.events(raw.events);
        let webhooks = self.webhooks(raw.webhooks);
        let ledger = self.ledger(raw.ledger);
        let audit = self.audit(raw.audit);
        let limits = self.limits(raw.limits);
        let log = self.log(raw.log);
        let reminders = self.reminders(raw.reminders, dvv.as_ref());
        let config = Config {
            server: server?,
            admin: admin?,
            dvv: dvv?,
            assertions: assertions?,
            consent: consent?,
            store: store?,
            events: events?,
            webhooks: webhooks?,
            ledger: ledger?,
            audit: audit?,
            limits: limits?,
            log: log?,
            reminders: reminders?,
        };
        self.cross_checks(&config);
        Some(config)
    }

    fn server(&mut self, raw: RawServer) -> Option<ServerConfig> {
        let listen = self.socket_addr("server.listen", raw.listen);
        let tls_cert = self.path("server.tls_cert", raw.tls_cert);
        let tls_key = self.path("server.tls_key_file", raw.tls_key_file);
        let client_ca = self.optional_path("server.client_ca", raw.client_ca);
        let request_timeout = self.millis(
            "server.request_timeout_ms",
            raw.request_timeout_ms,
            30_000,
            1..=3_600_000,
        );
        let drain_timeout = self.millis(
            "server.drain_timeout_ms",
            raw.drain_timeout_ms,
            30_000,
            1..=3_600_000,
        );
        let header_read_timeout = self.millis(
            "server.header_read_timeout_ms",
            raw.header_read_timeout_ms,
            10_000,
            1..=600_000,
        );
        let tls_handshake_timeout = self.millis(
            "server.tls_handshake_timeout_ms",
            raw.tls_handshake_timeout_ms,
            10_000,
            1..=600_000,
        );
        let max_connections = self.count(
            "server.max_connections",
            raw.max_connections,
            10_000,
            1..=1_000_000,
        );
        let max_concurrent_requests = self.count(
            "server.max_concurrent_requests",
            raw.max_concurrent_requests,
            2048,
            1..=1_000_000,
        );
        let write_idle_timeout = self.millis(
            "server.write_idle_timeout_ms",
            raw.write_idle_timeout_ms,
            30_000,
            1..=600_000,
        );
        let idle_timeout = self.millis(
            "server.idle_timeout_ms",
            raw.idle_timeout_ms,
            60_000,
            1..=3_600_000,
        );
        Some(ServerConfig {
            listen: listen?,
            tls_cert: tls_cert?,
            tls_key: SecretFile::unread(tls_key?),
            client_ca,
            request_timeout: request_timeout?,
            drain_timeout: drain_timeout?,
            header_read_timeout: header_read_timeout?,
            tls_handshake_timeout: tls_handshake_timeout?,
            max_connections: usize::try_from(max_connections?).ok()?,
            max_concurrent_requests: usize::try_from(max_concurrent_requests?).ok()?,
            write_idle_timeout: write_idle_timeout?,
            idle_timeout: idle_timeout?,
        })
    }

    fn admin(&mut self, raw: RawAdmin) -> Option<AdminConfig> {
        let listen = self.socket_addr("admin.listen", raw.listen);
        let max_connections = self.count(
            "admin.max_connections",
            raw.max_connections,
            64,
            1..=100_000,
        );
        Some(AdminConfig {
            listen: listen?,
            max_connections: usize::try_from(max_connections?).ok()?,
        })
    }

    fn dvv(&mut self, raw: RawDvv) -> Option<DvvConfig> {
        let base_url = self
            .https_url("dvv.base_url", raw.base_url)
            .and_then(|url| self.base_url(url));
        let provider_id = self.token("dvv.provider_id", raw.provider_id);
        let ca_cert = self.path("dvv.ca_cert", raw.ca_cert);
        let client_cert = self.path("dvv.client_cert", raw.client_cert);
        let client_key = self.path("dvv.client_key_file", raw.client_key_file);
        let assertion_key = self.path("dvv.assertion_key_file", raw.assertion_key_file);
        let assertion_kid = match raw.assertion_kid {
            Some(kid) => self.token("dvv.assertion_kid", Some(kid)).map(Some),
            None => Some(None),
        };
        let consent_service_url =
            self.https_url("dvv.consent_service_url", raw.consent_service_url);
        let fallback_url = self.https_url(
            "dvv.fallback_url",
            Some(
                raw.fallback_url
                    .unwrap_or_else(|| DEFAULT_FALLBACK_URL.to_owned()),
            ),
        );
        let connect_timeout = self.millis(
            "dvv.connect_timeout_ms",
            raw.connect_timeout_ms,
            3_000,
            1..=60_000,
        );
        let call_timeout = self.millis(
            "dvv.call_timeout_ms",
            raw.call_timeout_ms,
            10_000,
            1..=300_000,
        );
        let body_idle_timeout = self.millis(
            "dvv.body_idle_timeout_ms",
            raw.body_idle_timeout_ms,
            15_000,
            1..=600_000,
        );
        let max_retries = self.count("dvv.max_retries", raw.max_retries, 3, 0..=10);
        let token_renew_before = self.secs(
            "dvv.token_renew_before_secs",
            raw.token_renew_before_secs,
            60,
            0..=3_600,
        );
        let pool_idle_per_host = self.count(
            "dvv.pool_idle_per_host",
            raw.pool_idle_per_host,
            64,
            0..=100_000,
        );
        let max_attachment_streams = self.count(
            "dvv.max_attachment_streams",
            raw.max_attachment_streams,
            256,
            1..=100_000,
        );
        if let (Some(connect), Some(call)) = (connect_timeout, call_timeout) {
            if connect > call {
                self.invalid(
                    "dvv.connect_timeout_ms",
                    "must not exceed dvv.call_timeout_ms",
                );
            }
        }
        Some(DvvConfig {
            base_url: base_url?,
            provider_id: provider_id?,
            ca_cert: ca_cert?,
            client_cert: client_cert?,
            client_key: SecretFile::unread(client_key?),
            assertion_key: SecretFile::unread(assertion_key?),
            assertion_kid: assertion_kid?,
            consent_service_url: consent_service_url?,
            fallback_url: fallback_url?,
            connect_timeout: connect_timeout?,
            call_timeout: call_timeout?,
            body_idle_timeout: body_idle_timeout?,
            max_retries: u32::try_from(max_retries?).ok()?,
            token_renew_before: token_renew_before?,
            pool_idle_per_host: usize::try_from(pool_idle_per_host?).ok()?,
            max_attachment_streams: usize::try_from(max_attachment_streams?).ok()?,
        })
    }

    fn assertions(&mut self, raw: RawAssertions) -> Option<AssertionsConfig> {
        let issuer = self.text("assertions.issuer", raw.issuer);
        let audience = self.text(
            "assertions.audience",
            Some(raw.audience.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned())),
        );
        let jwks = self.jwks(raw.jwks_file, raw.jwks_url, raw.jwks_ca);
        let jwks_refresh = self.secs(
            "assertions.jwks_refresh_secs",
            raw.jwks_refresh_secs,
            300,
            10..=86_400,
        );
        let algorithms = self.algorithms(raw.algorithms);
        let leeway = self.secs(
            "assertions.leeway_secs",
            raw.leeway_secs,
            30,
            0..=MAX_LEEWAY_SECS,
        );
        let max_lifetime = self.secs(
            "assertions.max_lifetime_secs",
            raw.max_lifetime_secs,
            DEFAULT_MAX_LIFETIME_SECS,
            1..=86_400,
        );
        let accepted_acr = self.acr(raw.accepted_acr);
        let allowed_claims = self.allowed_claims(raw.allowed_claims);
        Some(AssertionsConfig {
            issuer: issuer?,
            audience: audience?,
            jwks: jwks?,
            jwks_refresh: jwks_refresh?,
            algorithms: algorithms?,
            leeway: leeway?,
            max_lifetime: max_lifetime?,
            accepted_acr: accepted_acr?,
            allowed_claims: allowed_claims?,
        })
    }

    fn consent(&mut self, raw: RawConsent) -> Option<ConsentConfig> {
        let revocation_bound = self.secs(
            "consent.revocation_bound_secs",
            raw.revocation_bound_secs,
            30,
            1..=MAX_REVOCATION_BOUND_SECS,
        );
        let negative_ttl = self.secs(
            "consent.negative_ttl_secs",
            raw.negative_ttl_secs,
            5,
            0..=MAX_REVOCATION_BOUND_SECS,
        );
        let cache_capacity = self.count(
            "consent.cache_capacity",
            raw.cache_capacity,
            100_000,
            1..=100_000_000,
        );
        Some(ConsentConfig {
            revocation_bound: revocation_bound?,
            negative_ttl: negative_ttl?,
            cache_capacity: cache_capacity?,
        })
    }

    fn store(&mut self, raw: RawStore) -> Option<StoreConfig> {
        let backend = self.store_backend(&raw);
        let data_dir = self.path("store.data_dir", raw.data_dir);
        Some(StoreConfig {
            data_dir: data_dir?,
            backend: backend?,
        })
    }

    /// Rules that involve more than one field.
    fn cross_checks(&mut self, config: &Config) {
        let (server, admin) = (config.server.listen, config.admin.listen);
        if server.port() != 0 && server == admin {
            self.invalid("admin.listen", "must differ from server.listen");
        }
        if config.consent.negative_ttl > config.consent.revocation_bound {
            self.invalid(
                "consent.negative_ttl_secs",
                "must not exceed consent.revocation_bound_secs",
            );
        }
    }

    // ---- helpers: each records its field's error and returns None ----

    fn invalid(&mut self, field: &'static str, reason: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            field,
            reason: reason.into(),
        });
    }

    fn required<T>(&mut self, field: &'static str, value: Option<T>) -> Option<T> {
        let section = field.split('.').next().unwrap_or(field);
        if value.is_none() && !self.unparsed.contains(&section) {
            self.errors.push(ConfigError::Missing { field });
        }
        value
    }

    fn text(&mut self, field: &'static str, value: Option<String>) -> Option<String> {
        let value = self.required(field, value)?;
        if value.trim().is_empty() {
            self.invalid(field, "must not be empty");
            return None;
        }
        if value.chars().any(char::is_control) {
            self.invalid(field, "must not contain control characters");
            return None;
        }
        Some(value)
    }

    /// A short identifier: printable ASCII without spaces.
    fn token(&mut self, field: &'static str, value: Option<String>) -> Option<String> {
        let value = self.text(field, value)?;
        if value.len() > 256 || !value.chars().all(|c| c.is_ascii_graphic()) {
            self.invalid(
                field,
                "must be 1-256 printable ASCII characters without spaces",
            );
            return None;
        }
        Some(value)
    }

    fn socket_addr(&mut self, field: &'static str, value: Option<String>) -> Option<SocketAddr> {
        let value = self.required(field, value)?;
        match value.trim().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.invalid(field, "must be an IP address and port, e.g. 127.0.0.1:8443");
                None
            }
        }
    }

    fn resolve(&self, path: PathBuf) -> PathBuf {
        match &self.base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        }
    }

    fn path(&mut self, field: &'static str, value: Option<PathBuf>) -> Option<PathBuf> {
        let value = self.required(field, value)?;
        self.nonempty_path(field, value)
    }

    fn optional_path(&mut self, field: &'static str, value: Option<PathBuf>) -> Option<PathBuf> {
        self.nonempty_path(field, value?)
    }

    fn nonempty_path(&mut self, field: &'static str, value: PathBuf) -> Option<PathBuf> {
        if value.as_os_str().is_empty() {
            self.invalid(field, "must not be empty");
            return None;
        }
        Some(self.resolve(value))
    }

    fn https_url(&mut self, field: &'static str, value: Option<String>) -> Option<Url> {
        let value = self.required(field, value)?;
        let url = match Url::parse(value.trim()) {
            Ok(url) => url,
            Err(error) => {
                self.invalid(field, format!("must be an absolute URL ({error})"));
                return None;
            }
        };
        if url.scheme() != "https" {
            self.invalid(field, "must be https");
            return None;
        }
        if url.host().is_none() {
            self.invalid(field, "must name a host");
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.invalid(field, "must not carry credentials");
            return None;
        }
        Some(url)
    }

    /// The DVV base URL: no query or fragment, and a path ending in `/` so that the contract's
    /// relative paths join under it.
    fn base_url(&mut self, mut url: Url) -> Option<Url> {
        if url.query().is_some() || url.fragment().is_some() {
            self.invalid("dvv.base_url", "must not have a query or fragment");
            return None;
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
    }

    fn number(
        &mut self,
        field: &'static str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let value = value.unwrap_or(default);
        if !range.contains(&value) {
            self.invalid(
                field,
                format!("must be in {}..={}", range.start(), range.end()),
            );
            return None;
        }
        Some(value)
    }

    fn count(
        &mut self,
        field: &'static str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        self.number(field, value, default, range)
    }

    fn millis(
        &mut self,
        field: &'static str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<Duration> {
        self.number(field, value, default, range)
            .map(Duration::from_millis)
    }

    fn secs(
        &mut self,
        field: &'static str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<Duration> {
        self.number(field, value, default, range)
            .map(Duration::from_secs)
    }

    fn jwks(
        &mut self,
        file: Option<PathBuf>,
        url: Option<String>,
        ca: Option<PathBuf>,
    ) -> Option<JwksSource> {
        match (file, url) {
            (Some(_), Some(_)) => {
                self.invalid(
                    "assertions.jwks_file",
                    "set either jwks_file or jwks_url, not both",
                );
                None
            }
            (None, None) => {
                if !self.unparsed.contains(&"assertions") {
                    self.invalid(
                        "assertions.jwks_file",
                        "one of jwks_file or jwks_url is required",
                    );
                }
                None
            }
            (Some(file), None) => {
                if ca.is_some() {
                    self.invalid("assertions.jwks_ca", "only applies with jwks_url");
                }
                self.nonempty_path("assertions.jwks_file", file)
                    .map(JwksSource::File)
            }
            (None, Some(url)) => {
                let url = self.https_url("assertions.jwks_url", Some(url));
                let ca = match ca {
                    Some(ca) => Some(self.nonempty_path("assertions.jwks_ca", ca)?),
                    None => None,
                };
                Some(JwksSource::Url { url: url?, ca })
            }
        }
    }

    fn algorithms(&mut self, value: Option<Vec<String>>) -> Option<Vec<Algorithm>> {
        const FIELD: &str = "assertions.algorithms";
        let names =
            value.unwrap_or_else(|| DEFAULT_ALGORITHMS.iter().map(|s| (*s).to_owned()).collect());
        if names.is_empty() {
            self.invalid(FIELD, "must list at least one algorithm");
            return None;
        }
        let mut algorithms = Vec::with_capacity(names.len());
        let mut ok = true;
        for name in &names {
            match parse_algorithm(name) {
                Ok(algorithm) if !algorithms.contains(&algorithm) => algorithms.push(algorithm),
                Ok(_) => {}
                Err(reason) => {
                    self.invalid(FIELD, reason);
                    ok = false;
                }
            }
        }
        ok.then_some(algorithms)
    }

    fn acr(&mut self, value: Option<Vec<String>>) -> Option<Vec<String>> {
        const FIELD: &str = "assertions.accepted_acr";
        let values = value.unwrap_or_else(|| {
            DEFAULT_ACCEPTED_ACR
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        });
        if values.is_empty() {
            self.invalid(FIELD, "must list at least one assurance level");
            return None;
        }
        if values
            .iter()
            .any(|v| v.trim().is_empty() || v.chars().any(char::is_control))
        {
            self.invalid(FIELD, "must not contain empty values");
            return None;
        }
        Some(values)
    }

    /// `assertions.allowed_claims`: absent means no strict mode; present, a list of claim names
    /// none of which may itself act for someone else.
    fn allowed_claims(&mut self, value: Option<Vec<String>>) -> Option<Option<Vec<String>>> {
        const FIELD: &str = "assertions.allowed_claims";
        let Some(values) = value else {
            return Some(None);
        };
        if values
            .iter()
            .any(|v| v.trim().is_empty() || v.chars().any(char::is_control))
        {
            self.invalid(FIELD, "must not contain empty values");
            return None;
        }
        if let Some(name) = values
            .iter()
            .find(|v| crate::citizen::names_representation(v))
        {
            self.invalid(
                FIELD,
                format!("{name:?} names a representation (acting for someone else), which is always refused"),
            );
            return None;
        }
        Some(Some(values))
    }
}

/// An accepted citizen-assertion algorithm: asymmetric only.
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "NONE" {
        return Err("\"none\" is refused: assertions must be signed".to_owned());
    }
    if upper.starts_with("HS") {
        return Err(format!(
            "{name} is refused: HMAC keys are shared secrets, only asymmetric algorithms are accepted"
        ));
    }
    match name.trim() {
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        "EdDSA" => Ok(Algorithm::EdDSA),
        _ => Err(format!("{name} is not a known asymmetric JWS algorithm")),
    }
}
