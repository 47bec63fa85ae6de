//! `[store]` beyond the data directory: which backend holds the durable state (the embedded
//! SQLite file, the default, or a PostgreSQL database shared by several replicas) and how to
//! reach it. Validated here (stage two); the password file is read by [`check_files`] (stage
//! three) and, like every secret file, must not be readable by others.

use std::time::Duration;

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::raw::RawStore;
use crate::config::secret::SecretFile;
use crate::config::Config;

/// Default `store.pool_size`: connections each replica keeps to PostgreSQL.
pub const DEFAULT_POOL_SIZE: u64 = 16;
/// Default `store.owner_retry_ms`: how often a replica that does not own the singleton work (the
/// events feed, the webhook dispatcher) tries to take it over.
pub const DEFAULT_OWNER_RETRY_MS: u64 = 1_000;

/// Default `store.owner_lease_ms`: how long the owner's lease on the singleton work lasts without
/// renewal. An owner that lost its connection or was frozen is replaced within about this plus
/// `store.owner_retry_ms`.
pub const DEFAULT_OWNER_LEASE_MS: u64 = 10_000;

/// Default `store.claim_ms`: how long a replica's claim on a due row lasts (longer than one
/// delivery attempt with its retries).
pub const DEFAULT_CLAIM_MS: u64 = 60_000;

/// Where the durable state lives.
#[derive(Debug, Clone, Default)]
pub enum StoreBackend {
    /// The embedded SQLite file in `store.data_dir`: one gateway process per data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL database every replica shares.
    Postgres(Box<PostgresConfig>),
}

/// `store.sslmode`: whether and how the connection to PostgreSQL is encrypted (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (loopback or a Unix socket only; say so explicitly).
    Disable,
    /// TLS, with any server certificate accepted: encrypted, but not protected from an active
    /// man in the middle.
    Require,
    /// TLS, the server's certificate checked against `store.ssl_root_cert` (or the system's
    /// roots) and the host name in `store.url`. The default.
    VerifyFull,
}

impl SslMode {
    /// The setting's value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// TLS towards PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// `store.sslmode` (or `sslmode` in the URL); default verify-full.
    pub mode: SslMode,
    /// `store.ssl_root_cert`: the CA (bundle) the server's certificate must chain to; the
    /// system's roots when absent.
    pub root_cert: Option<std::path::PathBuf>,
    /// `store.ssl_cert` and `store.ssl_key_file`: the client certificate and its key, presented
    /// when the server asks for one (`cert` authentication).
    pub client: Option<(std::path::PathBuf, SecretFile)>,
}

/// `[store] backend = "postgres"`: the shared database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A `postgresql://user@host:port/database` URL (or libpq key=value string) without a
    /// password; a `sslmode` in it is taken out and read as `store.sslmode`.
    pub url: String,
    /// TLS towards the server.
    pub tls: PostgresTls,
    /// The password, read from a file like every other secret; `None` for trust/peer setups.
    pub password: Option<SecretFile>,
    /// Connections each replica keeps.
    pub pool_size: usize,
    /// How often a replica that does not own the singleton work tries to take it over: with the
    /// time PostgreSQL needs to notice a dead session, the bound on a takeover.
    pub owner_retry: Duration,
    /// How long the owner's lease on the singleton work lasts without renewal: an owner that lost
    /// its connection or was frozen stops acting as owner when it runs out, and another replica
    /// takes over within about this plus `owner_retry`.
    pub owner_lease: Duration,
    /// How long a replica's claim on a due opening or webhook delivery lasts: a replica killed
    /// mid-delivery delays those rows by at most this.
    pub claim: Duration,
}

impl Checker {
    /// The backend and its connection settings.
    pub(super) fn store_backend(&mut self, raw: &RawStore) -> Option<StoreBackend> {
        let backend = raw.backend.as_deref().map(str::trim).unwrap_or("sqlite");
        match backend {
            "sqlite" => {
                for (field, set) in [
                    ("store.url", raw.url.is_some()),
                    ("store.password_file", raw.password_file.is_some()),
                    ("store.sslmode", raw.sslmode.is_some()),
                    ("store.ssl_root_cert", raw.ssl_root_cert.is_some()),
                    ("store.ssl_cert", raw.ssl_cert.is_some()),
                    ("store.ssl_key_file", raw.ssl_key_file.is_some()),
                ] {
                    if set {
                        self.invalid(field, "applies only with store.backend = \"postgres\"");
                    }
                }
                Some(StoreBackend::Sqlite)
            }
            "postgres" => {
                let (url, url_mode) = match self.postgres_url(raw.url.clone()) {
                    Some((url, mode)) => (Some(url), mode),
                    None => (None, None),
                };
                let tls = self.postgres_tls(raw, url_mode);
                let password = match raw.password_file.clone() {
                    Some(path) => self
                        .nonempty_path("store.password_file", path)
                        .map(|p| Some(SecretFile::unread(p))),
                    None => Some(None),
                };
                let pool_size = self.count(
                    "store.pool_size",
                    raw.pool_size,
                    DEFAULT_POOL_SIZE,
                    2..=1_000,
                );
                let owner_retry = self.millis(
                    "store.owner_retry_ms",
                    raw.owner_retry_ms,
                    DEFAULT_OWNER_RETRY_MS,
                    50..=60_000,
                );
                let owner_lease = self.millis(
                    "store.owner_lease_ms",
                    raw.owner_lease_ms,
                    DEFAULT_OWNER_LEASE_MS,
                    1_000..=600_000,
                );
                let claim = self.millis(
                    "store.claim_ms",
                    raw.claim_ms,
                    DEFAULT_CLAIM_MS,
                    500..=600_000,
                );
                Some(StoreBackend::Postgres(Box::new(PostgresConfig {
                    claim: claim?,
                    owner_lease: owner_lease?,
                    tls: tls?,
                    url: url?,
                    password: password?,
                    pool_size: usize::try_from(pool_size?).unwrap_or(16),
                    owner_retry: owner_retry?,
                })))
            }
            _ => {
                self.invalid("store.backend", "must be \"sqlite\" or \"postgres\"");
                None
            }
        }
    }

    /// A connection string tokio-postgres accepts, naming a database and carrying no password,
    /// with any `sslmode` taken out (tokio-postgres knows no `verify-full`) and returned apart.
    fn postgres_url(&mut self, value: Option<String>) -> Option<(String, Option<String>)> {
        let value = self.text("store.url", value)?;
        let (value, mode) = split_sslmode(value.trim());
        for key in ["sslrootcert", "sslcert", "sslkey"] {
            if value.contains(&format!("{key}=")) {
                self.invalid(
                    "store.url",
                    "must not carry sslrootcert, sslcert or sslkey: use store.ssl_root_cert, \
                     store.ssl_cert and store.ssl_key_file",
                );
                return None;
            }
        }
        let parsed: tokio_postgres::Config = match value.parse() {
            Ok(parsed) => parsed,
            Err(_) => {
                // The driver's message may echo the string (and a password in it): not repeated.
                self.invalid(
                    "store.url",
                    "must be a PostgreSQL connection URL, e.g. postgresql://ikkuna@db:5432/ikkuna",
                );
                return None;
            }
        };
        if parsed.get_password().is_some() {
            self.invalid(
                "store.url",
                "must not carry a password: put it in store.password_file",
            );
            return None;
        }
        if parsed.get_hosts().is_empty() {
            self.invalid("store.url", "must name a host");
            return None;
        }
        if parsed.get_dbname().is_none() {
            self.invalid("store.url", "must name a database");
            return None;
        }
        Some((value, mode))
    }

    /// `store.sslmode` (agreeing with a `sslmode` in the URL), the CA file and the client
    /// certificate.
    fn postgres_tls(&mut self, raw: &RawStore, url_mode: Option<String>) -> Option<PostgresTls> {
        let key = raw.sslmode.as_deref().map(str::trim);
        let from_url = url_mode.as_deref();
        if let (Some(key), Some(from_url)) = (key, from_url) {
            if key != from_url {
                self.invalid("store.sslmode", "disagrees with sslmode in store.url");
                return None;
            }
        }
        let mode = match key.or(from_url).unwrap_or("verify-full") {
            "disable" => SslMode::Disable,
            "require" => SslMode::Require,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                self.invalid(
                    "store.sslmode",
                    "must be \"disable\", \"require\" or \"verify-full\"",
                );
                return None;
            }
        };
        let root_cert = match raw.ssl_root_cert.clone() {
            Some(path) => Some(self.nonempty_path("store.ssl_root_cert", path)?),
            None => None,
        };
        let client = match (raw.ssl_cert.clone(), raw.ssl_key_file.clone()) {
            (Some(cert), Some(key)) => Some((
                self.nonempty_path("store.ssl_cert", cert)?,
                SecretFile::unread(self.nonempty_path("store.ssl_key_file", key)?),
            )),
            (None, None) => None,
            (Some(_), None) => {
                self.invalid("store.ssl_key_file", "is required with store.ssl_cert");
                return None;
            }
            (None, Some(_)) => {
                self.invalid("store.ssl_cert", "is required with store.ssl_key_file");
                return None;
            }
        };
        if mode == SslMode::Disable && (root_cert.is_some() || client.is_some()) {
            self.invalid(
                "store.sslmode",
                "is \"disable\" but TLS files are configured (store.ssl_root_cert, store.ssl_cert)",
            );
            return None;
        }
        Some(PostgresTls {
            mode,
            root_cert,
            client,
        })
    }
}

/// Takes `sslmode=...` out of a connection URL's query (`?sslmode=require&...`) or a libpq
/// key=value string; returns the rest and the mode's value.
fn split_sslmode(value: &str) -> (String, Option<String>) {
    if let Some((base, query)) = value.split_once('?') {
        let mut mode = None;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("sslmode=") {
                Some(v) => {
                    mode = Some(v.to_owned());
                    false
                }
                None => !pair.is_empty(),
            })
            .collect();
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        return (url, mode);
    }
    if value.contains("://") {
        return (value.to_owned(), None);
    }
    let mut mode = None;
    let rest: Vec<&str> = value
        .split_whitespace()
        .filter(|pair| match pair.strip_prefix("sslmode=") {
            Some(v) => {
                mode = Some(v.to_owned());
                false
            }
            None => true,
        })
        .collect();
    (rest.join(" "), mode)
}

/// Stage three: the PostgreSQL password file is read now, so a missing one fails the start.
pub(crate) fn check_files(config: &mut Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let StoreBackend::Postgres(pg) = &mut config.store.backend {
        if let Some(secret) = &mut pg.password {
            let path = secret.path().to_path_buf();
            let result = match secret.load() {
                Ok(material) if !super::pipelines::trimmed(material.expose()).is_empty() => Ok(()),
                Ok(_) => Err("is empty".to_owned()),
                Err(error) => Err(format!("cannot read: {error}")),
            };
            if let Err(reason) = result {
                errors.push(ConfigError::File {
                    field: "store.password_file",
                    path,
                    reason,
                });
            }
        }
    }
    errors
}

/// The password file and the client key, for the check that refuses secret files others can
/// read.
pub(crate) fn secret_files(config: &Config) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut files = Vec::new();
    if let StoreBackend::Postgres(pg) = &config.store.backend {
        if let Some(secret) = &pg.password {
            files.push(("store.password_file", secret.path().to_path_buf()));
        }
        if let Some((_, key)) = &pg.tls.client {
            files.push(("store.ssl_key_file", key.path().to_path_buf()));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{no_env, Config, StoreBackend};

    use super::super::MINIMAL_TOML as BASE;

    fn with_store(extra: &str) -> String {
        format!("{BASE}{extra}\n")
    }

    #[test]
    fn sqlite_is_the_default() {
        let config = Config::from_toml_str(BASE, &no_env).unwrap();
        assert!(matches!(config.store.backend, StoreBackend::Sqlite));
    }

    #[test]
    fn postgres_needs_a_url_without_password() {
        let ok = with_store(
            "backend = \"postgres\"\nurl = \"postgresql://ikkuna@127.0.0.1:5432/ikkuna\"\npassword_file = \"/p\"",
        );
        let config = Config::from_toml_str(&ok, &no_env).unwrap();
        let StoreBackend::Postgres(pg) = &config.store.backend else {
            panic!("postgres expected");
        };
        assert_eq!(pg.pool_size, 16);
        assert!(pg.password.is_some());

        let missing = with_store("backend = \"postgres\"");
        let errors = Config::from_toml_str(&missing, &no_env).unwrap_err();
        assert!(errors.names("store.url"), "{errors}");

        let leaky = with_store("backend = \"postgres\"\nurl = \"postgresql://u:hunter2@h/db\"");
        let errors = Config::from_toml_str(&leaky, &no_env).unwrap_err();
        assert!(errors.names("store.url"), "{errors}");
        assert!(!errors.to_string().contains("hunter2"), "{errors}");

        let unknown = with_store("backend = \"mysql\"");
        let errors = Config::from_toml_str(&unknown, &no_env).unwrap_err();
        assert!(errors.names("store.backend"), "{errors}");

        let stray = with_store("url = \"postgresql://u@h/db\"");
        let errors = Config::from_toml_str(&stray, &no_env).unwrap_err();
        assert!(errors.names("store.url"), "{errors}");
    }

    #[cfg(unix)]
    #[test]
    fn the_password_file_is_read_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("postgres.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = with_store(&format!(
            "backend = \"postgres\"\nurl = \"postgresql://ikkuna@h/db\"\npassword_file = \"{}\"",
            file.display()
        ));
        let mut config = Config::from_toml_str(&text, &no_env).unwrap();
        let exposed = crate::config::insecure_secret_files(&config);
        assert!(
            exposed
                .iter()
                .any(|e| e.to_string().contains("store.password_file")),
            "{exposed:?}"
        );
        assert!(super::check_files(&mut config).is_empty());
        std::fs::write(&file, "\n").unwrap();
        let mut config = Config::from_toml_str(&text, &no_env).unwrap();
        let errors = super::check_files(&mut config);
        assert!(
            errors[0].to_string().contains("store.password_file"),
            "{errors:?}"
        );
        assert!(!errors[0].to_string().contains("s3cret"));
    }

    #[test]
    fn env_selects_the_shared_backend() {
        let vars: HashMap<&str, &str> = [
            ("IKKUNA_STORE_BACKEND", "postgres"),
            (
                "IKKUNA_STORE_URL",
                "host=/tmp/pg port=5433 user=ikkuna dbname=ikkuna",
            ),
            ("IKKUNA_STORE_OWNER_RETRY_MS", "200"),
        ]
        .into_iter()
        .collect();
        let env = move |name: &str| vars.get(name).map(|v| (*v).to_owned());
        let config = Config::from_toml_str(BASE, &env).unwrap();
        let StoreBackend::Postgres(pg) = &config.store.backend else {
            panic!("postgres expected");
        };
        assert_eq!(pg.owner_retry.as_millis(), 200);
        assert!(pg.password.is_none());
    }

    fn postgres(extra: &str) -> Result<crate::config::PostgresConfig, String> {
        let text = with_store(&format!("backend = \"postgres\"\n{extra}"));
        match Config::from_toml_str(&text, &no_env) {
            Ok(config) => match config.store.backend {
                StoreBackend::Postgres(pg) => Ok(*pg),
                StoreBackend::Sqlite => Err("sqlite".into()),
            },
            Err(errors) => Err(errors.to_string()),
        }
    }

    #[test]
    fn tls_defaults_to_verify_full_and_the_lease_to_ten_seconds() {
        let pg = postgres("url = \"postgresql://ikkuna@db.example/ikkuna\"").unwrap();
        assert_eq!(pg.tls.mode, crate::config::SslMode::VerifyFull);
        assert!(pg.tls.root_cert.is_none() && pg.tls.client.is_none());
        assert_eq!(
            pg.owner_lease.as_millis(),
            u128::from(super::DEFAULT_OWNER_LEASE_MS)
        );
        assert_eq!(super::DEFAULT_OWNER_LEASE_MS, 10_000);
        let short =
            postgres("url = \"postgresql://ikkuna@h/db\"\nowner_lease_ms = 999").unwrap_err();
        assert!(short.contains("store.owner_lease_ms"), "{short}");
    }

    #[test]
    fn sslmode_comes_from_the_key_or_the_url_and_must_agree() {
        let pg = postgres("url = \"postgresql://ikkuna@h/db?sslmode=require&application_name=x\"")
            .unwrap();
        assert_eq!(pg.tls.mode, crate::config::SslMode::Require);
        assert_eq!(pg.url, "postgresql://ikkuna@h/db?application_name=x");
        let pg = postgres("url = \"host=h user=ikkuna dbname=db sslmode=disable\"").unwrap();
        assert_eq!(pg.tls.mode, crate::config::SslMode::Disable);
        assert!(!pg.url.contains("sslmode"));
        let pg = postgres("url = \"postgresql://ikkuna@h/db\"\nsslmode = \"disable\"").unwrap();
        assert_eq!(pg.tls.mode, crate::config::SslMode::Disable);
        for (extra, field) in [
            (
                "url = \"postgresql://ikkuna@h/db?sslmode=require\"\nsslmode = \"disable\"",
                "store.sslmode",
            ),
            ("url = \"postgresql://ikkuna@h/db\"\nsslmode = \"prefer\"", "store.sslmode"),
            (
                "url = \"postgresql://ikkuna@h/db?sslmode=verify-ca\"",
                "store.sslmode",
            ),
            (
                "url = \"postgresql://ikkuna@h/db?sslrootcert=/ca.pem\"",
                "store.url",
            ),
            (
                "url = \"postgresql://ikkuna@h/db\"\nssl_cert = \"/c.pem\"",
                "store.ssl_key_file",
            ),
            (
                "url = \"postgresql://ikkuna@h/db\"\nsslmode = \"disable\"\nssl_root_cert = \"/ca.pem\"",
                "store.sslmode",
            ),
        ] {
            let errors = postgres(extra).unwrap_err();
            assert!(errors.contains(field), "{extra}: {errors}");
        }
        let stray =
            Config::from_toml_str(&with_store("sslmode = \"require\""), &no_env).unwrap_err();
        assert!(stray.names("store.sslmode"), "{stray}");
    }

    #[cfg(unix)]
    #[test]
    fn the_client_key_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = with_store(&format!(
            "backend = \"postgres\"\nurl = \"postgresql://ikkuna@h/db\"\n\
             ssl_root_cert = \"/ca.pem\"\nssl_cert = \"/c.pem\"\nssl_key_file = \"{}\"",
            key.display()
        ));
        let config = Config::from_toml_str(&text, &no_env).unwrap();
        let StoreBackend::Postgres(pg) = &config.store.backend else {
            panic!("postgres expected");
        };
        assert!(pg.tls.client.is_some() && pg.tls.root_cert.is_some());
        let exposed = crate::config::insecure_secret_files(&config);
        assert!(
            exposed
                .iter()
                .any(|e| e.to_string().contains("store.ssl_key_file")),
            "{exposed:?}"
        );
    }
}
