//! Fuzzes configuration parsing: `Config::from_toml_str`, the TOML → raw sections → environment
//! overrides → validated `Config` pipeline (no file system access), with a fixed environment.
//!
//! The first input byte picks which fixed environment variables are set; the rest is the file.
//! Properties: no panic; a refusal lists at least one error, each naming a field or section (or
//! the syntax); parsing is deterministic; an environment value is never echoed in an error (only
//! the variable's name is), checked with a value that cannot parse.
#![no_main]

use ikkuna::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

/// A value for `server.max_connections` that is not a number, so its override is refused.
const CANARY: &str = "env-canary-q7vx";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let env = move |name: &str| -> Option<String> {
        match name {
            "IKKUNA_SERVER_MAX_CONNECTIONS" if flags & 1 != 0 => Some(CANARY.to_owned()),
            "IKKUNA_ADMIN_LISTEN" if flags & 2 != 0 => Some("127.0.0.1:19090".to_owned()),
            "IKKUNA_ASSERTIONS_ALGORITHMS" if flags & 4 != 0 => Some("ES256, EdDSA,,".to_owned()),
            "IKKUNA_CONSENT_REVOCATION_BOUND_SECS" if flags & 8 != 0 => Some(" 60 ".to_owned()),
            "IKKUNA_WEBHOOKS_ENABLED" if flags & 16 != 0 => Some("maybe".to_owned()),
            _ => None,
        }
    };
    let first = Config::from_toml_str(text, &env);
    let again = Config::from_toml_str(text, &env);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "deterministic"),
        (Err(a), Err(b)) => assert_eq!(a, b, "deterministic"),
        _ => panic!("the same text and environment gave different outcomes"),
    }
    match first {
        Ok(config) => {
            assert!(
                flags & 1 == 0,
                "a refused environment override still validated"
            );
            assert!(
                flags & 16 == 0,
                "a refused environment override still validated"
            );
            if flags & 2 != 0 {
                assert_eq!(config.admin.listen.to_string(), "127.0.0.1:19090");
            }
        }
        Err(errors) => {
            assert!(errors.iter().next().is_some(), "a refusal names no error");
            let shown = errors.to_string();
            if !text.contains(CANARY) {
                assert!(!shown.contains(CANARY), "an environment value was echoed");
                assert!(!format!("{errors:?}").contains(CANARY));
            }
            let syntax = errors
                .iter()
                .any(|e| matches!(e, ConfigError::Syntax { .. }));
            if flags & 1 != 0 && !syntax {
                assert!(errors.names("server.max_connections"));
            }
        }
    }
});
