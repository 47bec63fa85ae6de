use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::dvv::testing::Pki;

/// The shape `ikkuna-sandbox serve` writes, with placeholder paths.
const SANDBOX_SHAPE: &str = r#"
[server]                       # the operator API
listen = "127.0.0.1:41001"
tls_cert = "/abs/gateway.pem"
tls_key_file = "/abs/gateway.key"
# client_ca = "/abs/ca.pem"    # optional: require mTLS from the operator backend

[admin]
listen = "127.0.0.1:41002"

[dvv]
base_url = "https://127.0.0.1:41234"
provider_id = "provider-a"
ca_cert = "/abs/ca.pem"
client_cert = "/abs/providers/provider-a/client.pem"
client_key_file = "/abs/providers/provider-a/client.key"
assertion_key_file = "/abs/providers/provider-a/assertion.key"
consent_service_url = "https://127.0.0.1:41003/consent-service"   # where citizens manage consents

[assertions]
issuer = "https://identity.sandbox.ikkuna.invalid"
audience = "ikkuna"
jwks_file = "/abs/operator/jwks.json"

[store]
data_dir = "/abs/DIR/gateway"
"#;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(text, &no_env)
}

/// Replaces the line starting with `key =` in `text` (the first such line).
fn with_line(text: &str, key: &str, replacement: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|line| {
            if !done && line.trim_start().starts_with(&format!("{key} =")) {
                done = true;
                replacement.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn errors_of(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(_) => panic!("configuration unexpectedly valid"),
        Err(errors) => errors,
    }
}

#[test]
fn sandbox_shape_parses_with_defaults() {
    let config = parse(SANDBOX_SHAPE).expect("valid");
    assert_eq!(config.server.listen, "127.0.0.1:41001".parse().unwrap());
    assert_eq!(config.server.tls_key.path(), Path::new("/abs/gateway.key"));
    assert!(config.server.tls_key.loaded().is_none());
    assert_eq!(config.server.client_ca, None);
    assert_eq!(config.server.request_timeout, Duration::from_millis(30_000));
    assert_eq!(
        config.server.header_read_timeout,
        Duration::from_millis(10_000)
    );
    assert_eq!(
        config.server.tls_handshake_timeout,
        Duration::from_millis(10_000)
    );
    assert_eq!(config.server.max_connections, 10_000);
    assert_eq!(config.server.max_concurrent_requests, 2048);
    assert_eq!(
        config.server.write_idle_timeout,
        Duration::from_millis(30_000)
    );
    assert_eq!(config.server.idle_timeout, Duration::from_millis(60_000));
    assert_eq!(config.admin.max_connections, 64);
    assert_eq!(config.dvv.max_attachment_streams, 256);
    assert_eq!(
        config.dvv.fallback_url.as_str(),
        "https://www.suomi.fi/viestit"
    );
    assert_eq!(config.dvv.base_url.as_str(), "https://127.0.0.1:41234/");
    assert_eq!(config.dvv.provider_id, "provider-a");
    assert_eq!(config.dvv.assertion_kid, None);
    assert_eq!(config.dvv.connect_timeout, Duration::from_millis(3_000));
    assert_eq!(config.dvv.call_timeout, Duration::from_millis(10_000));
    assert_eq!(config.dvv.body_idle_timeout, Duration::from_millis(15_000));
    assert_eq!(config.dvv.max_retries, 3);
    assert_eq!(config.dvv.token_renew_before, Duration::from_secs(60));
    assert_eq!(config.dvv.pool_idle_per_host, 64);
    assert_eq!(config.assertions.audience, "ikkuna");
    assert_eq!(
        config.assertions.jwks,
        JwksSource::File(PathBuf::from("/abs/operator/jwks.json"))
    );
    assert_eq!(config.assertions.jwks_refresh, Duration::from_secs(300));
    assert_eq!(config.assertions.leeway, Duration::from_secs(30));
    assert_eq!(config.assertions.max_lifetime, Duration::from_secs(600));
    assert_eq!(config.assertions.allowed_claims, None);
    assert_eq!(config.server.drain_timeout, Duration::from_millis(30_000));
    assert_eq!(config.assertions.algorithms.len(), 5);
    assert_eq!(config.assertions.accepted_acr, DEFAULT_ACCEPTED_ACR);
    assert_eq!(config.consent.revocation_bound, Duration::from_secs(30));
    assert_eq!(config.consent.negative_ttl, Duration::from_secs(5));
    assert_eq!(config.consent.cache_capacity, 100_000);
    assert_eq!(config.store.data_dir, PathBuf::from("/abs/DIR/gateway"));
}

fn example_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ikkuna.example.toml");
    std::fs::read_to_string(path).expect("config/ikkuna.example.toml exists")
}

#[test]
fn example_template_parses() {
    let config = parse(&example_text()).expect("the production template is valid");
    assert_eq!(config.dvv.assertion_kid.as_deref(), Some("2026-01"));
    assert!(config.server.client_ca.is_some());
}

#[test]
fn example_template_documents_every_key() {
    let text = example_text();
    for (section, key) in raw::all_keys() {
        // Each key appears as `key =` (possibly commented out, for the jwks_file/jwks_url choice).
        let present = text.lines().any(|line| {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            line.starts_with(&format!("{key} ="))
        });
        assert!(present, "{section}.{key} is missing from the example");
    }
    for section in raw::SECTIONS {
        assert!(
            text.contains(&format!("[{section}]")),
            "[{section}] missing"
        );
    }
}

#[test]
fn example_template_files_are_reported_missing_by_check() {
    let mut config = parse(&example_text()).expect("valid");
    let errors = match config.load_files() {
        Ok(()) => panic!("placeholder files do not exist"),
        Err(errors) => errors,
    };
    for field in [
        "server.tls_cert",
        "server.tls_key_file",
        "server.client_ca",
        "dvv.ca_cert",
        "dvv.client_cert",
        "dvv.client_key_file",
        "dvv.assertion_key_file",
        "assertions.jwks_file",
    ] {
        assert!(errors.names(field), "{field} not reported: {errors}");
    }
}

#[test]
fn unknown_key_is_refused_and_named() {
    let text = SANDBOX_SHAPE.replace("provider_id =", "provider_idd =");
    let errors = errors_of(&text);
    let message = errors.to_string();
    assert!(errors.names("dvv"), "{message}");
    assert!(message.contains("provider_idd"), "{message}");
    assert_eq!(
        errors.0.len(),
        1,
        "the section's keys are not also reported missing: {message}"
    );
}

#[test]
fn unknown_section_is_refused() {
    let errors = errors_of(&format!("{SANDBOX_SHAPE}\n[srever]\nlisten = \"x\"\n"));
    assert!(errors.names("srever"), "{errors}");
}

#[test]
fn syntax_error_is_reported() {
    let errors = errors_of("[server\nlisten = 1");
    assert!(
        matches!(errors.0[0], ConfigError::Syntax { .. }),
        "{errors}"
    );
}

#[test]
fn wrong_type_is_named() {
    let text = with_line(
        SANDBOX_SHAPE,
        "data_dir",
        "data_dir = \"/d\"\nmax_retries = 1",
    );
    // max_retries in [store] is unknown there; in [dvv] a string is the wrong type.
    let errors = errors_of(&text);
    assert!(errors.names("store"), "{errors}");
    let text = with_line(
        SANDBOX_SHAPE,
        "provider_id",
        "provider_id = \"p\"\nmax_retries = \"three\"",
    );
    let errors = errors_of(&text);
    assert!(errors.names("dvv"), "{errors}");
    assert!(errors.to_string().contains("max_retries"), "{errors}");
}

#[test]
fn every_bad_value_is_named_at_once() {
    let mut text = SANDBOX_SHAPE.to_owned();
    for (key, line) in [
        ("base_url", "base_url = \"http://dvv.example\""),
        ("listen", "listen = \"not an address\""),
        ("consent_service_url", "consent_service_url = \"ftp://x\""),
        (
            "issuer",
            "issuer = \"\"\nalgorithms = [\"HS256\", \"none\", \"ES256\"]\nleeway_secs = 301",
        ),
    ] {
        text = with_line(&text, key, line);
    }
    text.push_str("\n[consent]\nrevocation_bound_secs = 0\ncache_capacity = 0\n");
    let errors = errors_of(&text);
    let message = errors.to_string();
    assert!(message.contains("dvv.base_url: must be https"), "{message}");
    for field in [
        "server.listen",
        "dvv.base_url",
        "dvv.consent_service_url",
        "assertions.issuer",
        "assertions.algorithms",
        "assertions.leeway_secs",
        "consent.revocation_bound_secs",
        "consent.cache_capacity",
    ] {
        assert!(errors.names(field), "{field} not named in: {message}");
    }
    let algorithm_errors = errors
        .iter()
        .filter(|e| e.field() == "assertions.algorithms")
        .count();
    assert_eq!(
        algorithm_errors, 2,
        "HS256 and none each refused: {message}"
    );
}

#[test]
fn missing_required_fields_are_each_named() {
    let errors = errors_of("");
    for field in [
        "server.listen",
        "server.tls_cert",
        "server.tls_key_file",
        "admin.listen",
        "dvv.base_url",
        "dvv.provider_id",
        "dvv.ca_cert",
        "dvv.client_cert",
        "dvv.client_key_file",
        "dvv.assertion_key_file",
        "dvv.consent_service_url",
        "assertions.issuer",
        "assertions.jwks_file",
        "store.data_dir",
    ] {
        assert!(errors.names(field), "{field} not named in: {errors}");
    }
}

#[test]
fn jwks_file_and_url_are_exclusive() {
    let both = with_line(
        SANDBOX_SHAPE,
        "jwks_file",
        "jwks_file = \"/j\"\njwks_url = \"https://idp.example/jwks\"",
    );
    assert!(errors_of(&both).names("assertions.jwks_file"));
    let url_only = with_line(
        SANDBOX_SHAPE,
        "jwks_file",
        "jwks_url = \"https://idp.example/jwks\"\njwks_ca = \"/ca.pem\"",
    );
    let config = parse(&url_only).expect("url alone is fine");
    assert!(matches!(
        config.assertions.jwks,
        JwksSource::Url { ca: Some(_), .. }
    ));
    let plain_http = with_line(
        SANDBOX_SHAPE,
        "jwks_file",
        "jwks_url = \"http://idp.example/jwks\"",
    );
    assert!(errors_of(&plain_http).names("assertions.jwks_url"));
    let ca_without_url = with_line(
        SANDBOX_SHAPE,
        "jwks_file",
        "jwks_file = \"/j\"\njwks_ca = \"/ca.pem\"",
    );
    assert!(errors_of(&ca_without_url).names("assertions.jwks_ca"));
}

#[test]
fn revocation_bound_range_and_cross_checks() {
    for (value, ok) in [("1", true), ("300", true), ("301", false), ("0", false)] {
        let text = format!(
            "{SANDBOX_SHAPE}\n[consent]\nrevocation_bound_secs = {value}\nnegative_ttl_secs = 1\n"
        );
        assert_eq!(parse(&text).is_ok(), ok, "revocation_bound_secs = {value}");
    }
    let text =
        format!("{SANDBOX_SHAPE}\n[consent]\nrevocation_bound_secs = 10\nnegative_ttl_secs = 20\n");
    assert!(errors_of(&text).names("consent.negative_ttl_secs"));
    let same_listen = SANDBOX_SHAPE.replace("127.0.0.1:41002", "127.0.0.1:41001");
    assert!(errors_of(&same_listen).names("admin.listen"));
    let text = with_line(
        SANDBOX_SHAPE,
        "provider_id",
        "provider_id = \"p\"\nconnect_timeout_ms = 20000\ncall_timeout_ms = 10000",
    );
    assert!(errors_of(&text).names("dvv.connect_timeout_ms"));
}

#[test]
fn base_url_is_normalised_and_checked() {
    let text = with_line(
        SANDBOX_SHAPE,
        "base_url",
        "base_url = \"https://dvv.example/api\"",
    );
    assert_eq!(
        parse(&text).unwrap().dvv.base_url.as_str(),
        "https://dvv.example/api/"
    );
    for bad in [
        "https://u:p@dvv.example",
        "https://dvv.example/?q=1",
        "dvv.example",
    ] {
        let text = with_line(SANDBOX_SHAPE, "base_url", &format!("base_url = \"{bad}\""));
        assert!(errors_of(&text).names("dvv.base_url"), "{bad}");
    }
}

#[test]
fn environment_overrides_win_over_the_file() {
    let env = env_of(&[
        ("IKKUNA_DVV_BASE_URL", "https://other.example:8443"),
        ("IKKUNA_SERVER_LISTEN", "127.0.0.1:9999"),
        ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "12"),
        ("IKKUNA_ASSERTIONS_ALGORITHMS", "ES256, EdDSA"),
        ("IKKUNA_DVV_ASSERTION_KID", "kid-7"),
    ]);
    let config = Config::from_toml_str(SANDBOX_SHAPE, &env).expect("valid");
    assert_eq!(config.dvv.base_url.as_str(), "https://other.example:8443/");
    assert_eq!(config.server.listen, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(config.consent.revocation_bound, Duration::from_secs(12));
    assert_eq!(
        config.assertions.algorithms,
        vec![
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::EdDSA
        ]
    );
    assert_eq!(config.dvv.assertion_kid.as_deref(), Some("kid-7"));
}

#[test]
fn environment_can_supply_a_missing_field_and_bad_values_are_named() {
    let text = with_line(SANDBOX_SHAPE, "provider_id", "");
    assert!(errors_of(&text).names("dvv.provider_id"));
    let env = env_of(&[("IKKUNA_DVV_PROVIDER_ID", "provider-b")]);
    let config = Config::from_toml_str(&text, &env).expect("env fills it");
    assert_eq!(config.dvv.provider_id, "provider-b");

    let env = env_of(&[("IKKUNA_DVV_MAX_RETRIES", "lots")]);
    let errors = Config::from_toml_str(SANDBOX_SHAPE, &env).unwrap_err();
    assert!(errors.names("dvv.max_retries"), "{errors}");
    assert!(errors.to_string().contains("IKKUNA_DVV_MAX_RETRIES"));
    assert!(
        !errors.to_string().contains("lots"),
        "values are not echoed"
    );
}

#[test]
fn every_key_has_an_environment_variable() {
    let keys = raw::all_keys();
    // ... + [audit] 5 + [limits] 7 + [log] 2 + [events] 3 + [webhooks] 9 + [ledger] 1, and
    // [store] 12 rather than 1 (+ backend, url, password_file, pool_size, owner_retry_ms,
    // owner_lease_ms, claim_ms, sslmode, ssl_root_cert, ssl_cert, ssl_key_file).
    // [server] 12 (+ drain_timeout_ms, write_idle_timeout_ms, idle_timeout_ms), [admin] 2
    // (+ max_connections), [dvv] 16 (+ max_attachment_streams, fallback_url), [assertions] 11
    // (+ allowed_claims).
    assert_eq!(
        keys.len(),
        12 + 2 + 16 + 11 + 3 + 12 + 5 + 7 + 2 + 3 + 9 + 1 + 5
    );
    assert_eq!(raw::env_var("dvv", "base_url"), "IKKUNA_DVV_BASE_URL");
    // Overriding every key at once with valid values yields a valid configuration.
    let values: HashMap<String, String> = keys
        .iter()
        .map(|(section, key)| {
            let value = match (*section, *key) {
                ("server", "listen") => "127.0.0.1:1",
                ("admin", "listen") => "127.0.0.1:2",
                (_, "base_url")
                | (_, "consent_service_url")
                | (_, "fallback_url")
                | (_, "jwks_url") => "https://h.example",
                (_, "jwks_file") => "",
                (_, "algorithms") => "ES256",
                (_, "accepted_acr") => "http://eidas.europa.eu/LoA/high",
                ("audit", "max_file_bytes") => "4096",
                ("audit", "rotate_daily") | ("audit", "fsync") => "true",
                ("log", "format") => "json",
                ("log", "level") => "info",
                ("events", "start") => "latest",
                ("webhooks", "endpoints") => "https://h.example/hook",
                ("webhooks", "concurrency") => "4",
                ("ledger", "retention_days") => "400",
                ("store", "backend") => "postgres",
                ("store", "url") => "postgresql://ikkuna@h.example/ikkuna",
                ("store", "owner_retry_ms") => "200",
                ("store", "claim_ms") => "2000",
                ("store", "owner_lease_ms") => "1000",
                ("store", "sslmode") => "verify-full",
                ("limits", _) => "7",
                ("reminders", "clock_offset_secs") => "0",
                ("reminders", "poll_interval_ms") => "100",
                ("reminders", _) => "7",
                (_, k) if k.ends_with("_ms") || k.ends_with("_secs") => "15",
                (_, "max_retries") => "2",
                (_, k)
                    if k.starts_with("max_")
                        || k.ends_with("capacity")
                        || k.starts_with("pool") =>
                {
                    "7"
                }
                _ => "/x",
            };
            (raw::env_var(section, key), value.to_owned())
        })
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let env = move |name: &str| values.get(name).cloned();
    let config = Config::from_toml_str("", &env).expect("environment alone suffices");
    assert_eq!(config.dvv.max_retries, 2);
    assert_eq!(config.server.max_connections, 7);
    assert_eq!(config.dvv.call_timeout, Duration::from_millis(15));
}

#[test]
fn load_reads_files_and_secrets_are_redacted() {
    let pki = Pki::generate();
    let path = pki.path("ikkuna.toml");
    pki.write("ikkuna.toml", &pki.config_toml("https://127.0.0.1:1"));
    let config = load(&path, &no_env).expect("loads");
    assert!(
        !config.store.data_dir.exists(),
        "loading creates no data directory (the gateway does, at start)"
    );
    let secret = config
        .dvv
        .assertion_key
        .loaded()
        .expect("loaded at load time");
    assert_eq!(secret.expose(), pki.assertion_key_pem.as_bytes());
    let debug = format!("{config:?}");
    assert!(debug.contains("<redacted>"));
    for pem in [
        &pki.assertion_key_pem,
        &pki.client_key_pem,
        &pki.server_key_pem,
    ] {
        let body_line = pem.lines().nth(1).expect("pem body");
        assert!(
            !debug.contains(body_line),
            "secret material in Debug output"
        );
    }
    assert_eq!(format!("{secret:?}"), "<redacted>");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let pki = Pki::generate();
    let text = pki
        .config_toml("https://127.0.0.1:1")
        .replace(&format!("{}/", pki.root().display()), "");
    pki.write("ikkuna.toml", &text);
    let config = load(&pki.path("ikkuna.toml"), &no_env).expect("relative paths resolve");
    assert_eq!(config.dvv.ca_cert, pki.path("ca.pem"));
}

#[test]
fn file_problems_are_each_named() {
    let pki = Pki::generate();
    pki.write("client.pem", "not a certificate");
    pki.write("assertion.key", &pki.client_cert_pem);
    pki.write("jwks.json", "{\"keys\": []}");
    pki.write("data", "a file, not a directory");
    pki.write("ikkuna.toml", &pki.config_toml("https://127.0.0.1:1"));
    let errors = load(&pki.path("ikkuna.toml"), &no_env).unwrap_err();
    for field in [
        "dvv.client_cert",
        "dvv.assertion_key_file",
        "assertions.jwks_file",
        "store.data_dir",
    ] {
        assert!(errors.names(field), "{field} not named: {errors}");
    }
    assert_eq!(errors.0.len(), 4, "{errors}");
}

#[test]
fn assertion_key_must_be_p256() {
    let pki = Pki::generate();
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    pki.write("assertion.key", &p384.serialize_pem());
    pki.write("ikkuna.toml", &pki.config_toml("https://127.0.0.1:1"));
    let errors = load(&pki.path("ikkuna.toml"), &no_env).unwrap_err();
    assert!(errors.names("dvv.assertion_key_file"), "{errors}");
}

#[test]
fn missing_config_file_is_reported() {
    let errors = load(Path::new("/nonexistent/ikkuna.toml"), &no_env).unwrap_err();
    assert!(matches!(errors.0[0], ConfigError::Read { .. }));
}

/// `(section, key, value)` for every "(default X)" the example template writes in the comment
/// just above a key, where X is a literal (number, boolean or quoted string).
fn documented_defaults_of_example(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut comment = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            comment.clear();
        } else if let Some(c) = line.strip_prefix('#') {
            comment.push(' ');
            comment.push_str(c);
        } else if let Some((key, _)) = line.split_once(" =") {
            if let Some(value) = literal_default(&comment) {
                out.push((section.clone(), key.trim().to_owned(), value));
            }
            comment.clear();
        } else {
            comment.clear();
        }
    }
    out
}

/// The X of the first "(default X" in `text`, when X is a literal.
fn literal_default(text: &str) -> Option<String> {
    let rest = &text[text.find("(default ")? + "(default ".len()..];
    let end = rest.find([')', ',', ';', ':']).unwrap_or(rest.len());
    let value = rest[..end].trim();
    let literal = value.parse::<f64>().is_ok()
        || value == "true"
        || value == "false"
        || (value.len() > 2 && value.starts_with('"') && value.ends_with('"'));
    literal.then(|| value.trim_matches('"').to_owned())
}

/// `(section, key, value)` for every "`key` (default X)" in the README's configuration table.
fn documented_defaults_of_readme(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let table = text
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Configuration section");
    for row in table.lines().filter(|l| l.starts_with("| `[")) {
        let section = row
            .trim_start_matches("| `[")
            .split(']')
            .next()
            .unwrap_or_default()
            .to_owned();
        for piece in row.split('`').collect::<Vec<_>>().windows(2) {
            let (key, after) = (piece[0], piece[1]);
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
                if let Some(value) = after
                    .strip_prefix(" (default ")
                    .and_then(|_| literal_default(after))
                {
                    out.push((section.clone(), key.to_owned(), value));
                }
            }
        }
    }
    out
}

/// Setting a key to its documented default through the environment changes nothing in the
/// validated configuration: the documentation tells the truth.
fn assert_is_default(source: &str, section: &str, key: &str, value: &str) {
    let base = format!("{:?}", parse(SANDBOX_SHAPE).expect("valid"));
    let var = format!(
        "IKKUNA_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    );
    let env = env_of(&[(var.as_str(), value)]);
    let with = Config::from_toml_str(SANDBOX_SHAPE, &env)
        .unwrap_or_else(|e| panic!("{source}: {section}.{key} = {value} is refused: {e}"));
    assert_eq!(
        format!("{with:?}"),
        base,
        "{source} documents {section}.{key} = {value} as the default, but the validated default differs"
    );
}

#[test]
fn documented_defaults_are_the_validated_defaults() {
    let example = documented_defaults_of_example(&example_text());
    let readme_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    let readme = documented_defaults_of_readme(&readme_text);
    for (source, found) in [
        ("config/ikkuna.example.toml", &example),
        ("README.md", &readme),
    ] {
        for (section, key, value) in found.iter() {
            assert_is_default(source, section, key, value);
        }
    }
    // The parsers found what they should, so this cannot pass by reading nothing.
    assert!(
        example.len() >= 35,
        "example defaults found: {}",
        example.len()
    );
    for wanted in [
        ("server", "request_timeout_ms"),
        ("server", "drain_timeout_ms"),
        ("server", "max_concurrent_requests"),
        ("assertions", "max_lifetime_secs"),
    ] {
        for (source, found) in [("example", &example), ("README", &readme)] {
            assert!(
                found
                    .iter()
                    .any(|(s, k, _)| (s.as_str(), k.as_str()) == wanted),
                "{source} documents the default of {}.{}",
                wanted.0,
                wanted.1
            );
        }
    }
    // The verifier's own default lifetime is the configuration's.
    let lifetime = crate::citizen::VerifierSettings::new(
        "i",
        "a",
        crate::citizen::JwksSource::File("/x".into()),
    )
    .max_lifetime;
    assert_eq!(
        Duration::from_secs(DEFAULT_MAX_LIFETIME_SECS),
        lifetime,
        "config and verifier agree on the assertion lifetime"
    );
    let operator_api = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operator-api.yaml"),
    )
    .expect("docs/operator-api.yaml");
    assert!(
        operator_api.contains("10 minutes") && readme_text.contains("10 minutes"),
        "the operator API documents promise 10 minutes = DEFAULT_MAX_LIFETIME_SECS"
    );
    assert_eq!(DEFAULT_MAX_LIFETIME_SECS, 600);
}

#[test]
fn allowed_claims_are_checked() {
    let env = env_of(&[("IKKUNA_ASSERTIONS_ALLOWED_CLAIMS", "jti,amr")]);
    let config = Config::from_toml_str(SANDBOX_SHAPE, &env).expect("valid");
    assert_eq!(
        config.assertions.allowed_claims,
        Some(vec!["jti".to_owned(), "amr".to_owned()])
    );
    let env = env_of(&[("IKKUNA_ASSERTIONS_ALLOWED_CLAIMS", "jti,acting_for")]);
    let errors = Config::from_toml_str(SANDBOX_SHAPE, &env).unwrap_err();
    assert!(
        errors.to_string().contains("assertions.allowed_claims"),
        "{errors}"
    );
}

#[test]
fn a_data_dir_that_cannot_be_created_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"").expect("file");
    for (data_dir, reason) in [
        (file.join("sub"), "cannot be created"),
        (file.clone(), "is not a directory"),
    ] {
        let text = with_line(
            &example_text(),
            "data_dir",
            &format!("data_dir = \"{}\"", data_dir.display()),
        );
        let mut config = parse(&text).expect("valid");
        let errors = config.load_files().expect_err("invalid");
        let line = errors
            .iter()
            .find(|e| e.field() == "store.data_dir")
            .unwrap_or_else(|| panic!("store.data_dir not reported for {data_dir:?}: {errors}"))
            .to_string();
        assert!(line.contains(reason), "{line}");
    }
}

#[test]
fn load_files_creates_no_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("not/yet/there");
    let text = with_line(
        &example_text(),
        "data_dir",
        &format!("data_dir = \"{}\"", data_dir.display()),
    );
    let mut config = parse(&text).expect("valid");
    let errors = config
        .load_files()
        .expect_err("placeholder key files are missing");
    assert!(
        !errors.names("store.data_dir"),
        "a creatable directory is fine: {errors}"
    );
    assert!(
        !tmp.path().join("not").exists(),
        "the check created {data_dir:?}"
    );

    // The production template's data directory is never created by a test either.
    let production = Path::new("/var/lib/ikkuna");
    let existed = production.exists();
    let mut config = parse(&example_text()).expect("valid");
    let _ = config.load_files();
    assert_eq!(
        production.exists(),
        existed,
        "load_files created {production:?}"
    );
}

#[test]
fn no_value_under_an_unknown_or_mistyped_key_is_echoed() {
    const SECRET: &str = "s3cr3t-pasted-value";
    for text in [
        format!("{SANDBOX_SHAPE}client_secret = \"{SECRET}\"\n"),
        SANDBOX_SHAPE.replace("[admin]", &format!("[admin]\nclient_secret = \"{SECRET}\"")),
        with_line(
            SANDBOX_SHAPE,
            "provider_id",
            &format!("provider_id = {SECRET}"),
        ),
        format!("{SANDBOX_SHAPE}\n[consent]\nrevocation_bound_secs = \"{SECRET}\"\n"),
        format!("{SANDBOX_SHAPE}\n[oauth]\nsecret = \"{SECRET}\"\n"),
    ] {
        let errors = errors_of(&text);
        let message = errors.to_string();
        assert!(!message.contains("s3cr3t"), "value echoed: {message}");
    }
    let text = SANDBOX_SHAPE.replace("[admin]", &format!("[admin]\nclient_secret = \"{SECRET}\""));
    let line = text
        .lines()
        .position(|l| l.starts_with("client_secret"))
        .expect("inserted")
        + 1;
    let message = errors_of(&text).to_string();
    assert!(
        message.contains("client_secret") && message.contains(&format!("line {line}, column 1")),
        "the key and its position are named: {message}"
    );
}

#[test]
fn unknown_ikkuna_variables_are_errors_with_a_suggestion() {
    let errors = unknown_variables([
        "PATH",
        "IKKUNA_DVV_BASE_URL",
        "IKKUNA_SANDBOX_BIN",
        "IKKUNA_DVV_BASE_ULR",
        "IKKUNA_CONSENT_REVOCATION_BOUND",
        "IKKUNA_SOMETHING_ELSE_ENTIRELY",
    ]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("IKKUNA_DVV_BASE_ULR")
            && l.contains("did you mean IKKUNA_DVV_BASE_URL?")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("IKKUNA_CONSENT_REVOCATION_BOUND ")
                && l.contains("did you mean IKKUNA_CONSENT_REVOCATION_BOUND_SECS?")),
        "{lines:#?}"
    );
    let far = lines
        .iter()
        .find(|l| l.contains("IKKUNA_SOMETHING_ELSE_ENTIRELY"))
        .expect("reported");
    assert!(!far.contains("did you mean"), "{far}");
    // Every configuration key's own variable is known.
    assert!(unknown_variables(
        raw::all_keys()
            .into_iter()
            .map(|(section, key)| raw::env_var(section, key))
    )
    .is_empty());
}

#[test]
fn reminders_default_to_suomi_fi_and_are_bounded() {
    let config = parse(SANDBOX_SHAPE).expect("valid");
    assert_eq!(
        config.reminders,
        RemindersConfig {
            delay: Duration::from_secs(7 * 86_400),
            receipt_delay: Duration::from_secs(3 * 86_400),
            max_count: 1,
            poll_interval: Duration::from_secs(10),
            clock_offset: Duration::ZERO,
        }
    );
    let env = env_of(&[
        ("IKKUNA_REMINDERS_DELAY_HOURS", "24"),
        ("IKKUNA_REMINDERS_RECEIPT_DELAY_HOURS", "12"),
        ("IKKUNA_REMINDERS_MAX_COUNT", "3"),
        ("IKKUNA_REMINDERS_POLL_INTERVAL_MS", "200"),
    ]);
    let config = Config::from_toml_str(SANDBOX_SHAPE, &env).expect("valid");
    assert_eq!(config.reminders.delay, Duration::from_secs(86_400));
    assert_eq!(config.reminders.receipt_delay, Duration::from_secs(43_200));
    assert_eq!(config.reminders.max_count, 3);
    assert_eq!(config.reminders.poll_interval, Duration::from_millis(200));
    for (var, value) in [
        ("IKKUNA_REMINDERS_DELAY_HOURS", "0"),
        ("IKKUNA_REMINDERS_RECEIPT_DELAY_HOURS", "9000"),
        ("IKKUNA_REMINDERS_MAX_COUNT", "11"),
        ("IKKUNA_REMINDERS_POLL_INTERVAL_MS", "10"),
    ] {
        let env = env_of(&[(var, value)]);
        let errors = Config::from_toml_str(SANDBOX_SHAPE, &env)
            .expect_err(var)
            .to_string();
        assert!(errors.contains("reminders."), "{var}: {errors}");
    }
}

#[test]
fn a_reminder_clock_offset_is_for_a_local_sandbox_only() {
    // The sandbox shape talks to DVV on loopback: a test may run the clock ahead.
    let env = env_of(&[("IKKUNA_REMINDERS_CLOCK_OFFSET_SECS", "604800")]);
    let config = Config::from_toml_str(SANDBOX_SHAPE, &env).expect("valid on loopback");
    assert_eq!(config.reminders.clock_offset, Duration::from_secs(604_800));
    // Against any other DVV (production) it is refused, not ignored.
    let remote = with_line(
        SANDBOX_SHAPE,
        "base_url",
        r#"base_url = "https://dvv.example.fi""#,
    );
    parse(&remote).expect("valid without an offset");
    let errors = Config::from_toml_str(&remote, &env)
        .expect_err("an offset against a remote DVV")
        .to_string();
    assert!(errors.contains("reminders.clock_offset_secs"), "{errors}");
    // The production template keeps it at zero.
    assert_eq!(
        parse(&example_text())
            .expect("valid")
            .reminders
            .clock_offset,
        Duration::ZERO
    );
}

#[test]
fn fallback_url_is_configurable_and_must_be_https() {
    let env = env_of(&[("IKKUNA_DVV_FALLBACK_URL", "https://messages.example/read")]);
    let config = Config::from_toml_str(SANDBOX_SHAPE, &env).expect("valid");
    assert_eq!(
        config.dvv.fallback_url.as_str(),
        "https://messages.example/read"
    );
    let env = env_of(&[("IKKUNA_DVV_FALLBACK_URL", "http://messages.example/read")]);
    let errors = Config::from_toml_str(SANDBOX_SHAPE, &env).unwrap_err();
    assert!(errors.names("dvv.fallback_url"), "{errors}");
}
