//! Helpers for the events, webhooks and ledger tests: a gateway started with webhooks pointing at
//! a real HTTPS receiver, DVV clients acting as either provider, the gateway's CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ikkuna::dvv::{DvvClient, Event};

use crate::common::Harness;
use crate::receiver::Receiver;

/// The HMAC key the tests configure (64 hex characters, as `openssl rand -hex 32` writes).
pub const SECRET: &str = "6b1f0c3e9d2a4b5c8e7f60123456789abcdef0123456789abcdef0123456789a";

/// A sandbox, a webhook receiver answering `status`, and the gateway configured to deliver to it
/// (plus the extra `env`).
pub async fn start_with_receiver(env: &[(&str, &str)], status: u16) -> (Harness, Receiver) {
    let mut h = Harness::with_sandbox().await;
    let info = h.info.clone();
    let path = |key: &str| PathBuf::from(info[key].as_str().expect(key));
    let receiver = Receiver::start(&path("gatewayCert"), &path("gatewayKey"), status).await;
    let secret = h.dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut gateway_env: Vec<(String, String)> = vec![
        ("IKKUNA_WEBHOOKS_ENDPOINTS".into(), receiver.url.clone()),
        (
            "IKKUNA_WEBHOOKS_SECRET_FILE".into(),
            secret.display().to_string(),
        ),
        (
            "IKKUNA_WEBHOOKS_CA_CERT".into(),
            path("caCert").display().to_string(),
        ),
        ("IKKUNA_WEBHOOKS_INITIAL_BACKOFF_MS".into(), "50".into()),
        ("IKKUNA_WEBHOOKS_MAX_BACKOFF_MS".into(), "300".into()),
        ("IKKUNA_WEBHOOKS_TIMEOUT_MS".into(), "3000".into()),
        ("IKKUNA_EVENTS_POLL_INTERVAL_MS".into(), "200".into()),
        ("IKKUNA_EVENTS_MAX_BACKOFF_MS".into(), "1000".into()),
        // The seed has no events: "retention" means every event of the test, whenever the first
        // poll happens ("latest" could skip the first ones on a slow machine).
        ("IKKUNA_EVENTS_START".into(), "retention".into()),
    ];
    for (k, v) in env {
        gateway_env.retain(|(key, _)| key != k);
        gateway_env.push((k.to_string(), v.to_string()));
    }
    h.gateway_env = gateway_env;
    h.start_gateway().await;
    (h, receiver)
}

/// A DVV client acting as `provider` ("provider-a" is the gateway's own identity), built from
/// the sandbox's gateway configuration with the provider's credentials swapped in.
pub fn dvv_client(h: &Harness, provider: &str) -> DvvClient {
    let text = std::fs::read_to_string(h.config_path()).expect("ikkuna.toml");
    let text = text.replace("provider-a", provider);
    let config = ikkuna::config::Config::from_toml_str(&text, &ikkuna::config::no_env)
        .expect("the sandbox configuration is valid");
    DvvClient::new(&config.dvv).expect("dvv client")
}

/// Every event of `provider`'s feed from the start of retention.
pub async fn feed(h: &Harness, provider: &str) -> Vec<Event> {
    let client = dvv_client(h, provider);
    let mut token: Option<String> = None;
    let mut all = Vec::new();
    loop {
        let page = tokio::time::timeout(Duration::from_secs(20), client.events(token.as_deref()))
            .await
            .expect("feed answers in time")
            .expect("feed page")
            .value;
        let n = page.events.len();
        all.extend(page.events);
        token = Some(page.continuation_token);
        if n == 0 {
            return all;
        }
    }
}

/// Runs the gateway binary's CLI with `args` and `--config`, in the gateway's environment;
/// returns (success, stdout, stderr).
pub async fn cli(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ikkuna"));
    cmd.args(args)
        .arg("--config")
        .arg(h.config_path())
        .kill_on_drop(true);
    for (k, v) in &h.gateway_env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("cli finishes in time")
        .expect("cli runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The gateway's data directory (from its configuration).
pub fn data_dir(h: &Harness) -> PathBuf {
    let text = std::fs::read_to_string(h.config_path()).expect("ikkuna.toml");
    let cfg: toml::Table = text.parse().expect("toml");
    PathBuf::from(cfg["store"]["data_dir"].as_str().expect("data_dir"))
}

/// A query on the gateway's store, read-only, for checks the CLI does not show.
pub fn store_count(dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("ikkuna.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("store opens");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

/// The consent id of `citizen` as the gateway sees it.
pub async fn consent_id(h: &Harness, citizen: &str) -> String {
    h.call("GET", "/v1/consent", Some(&h.token(citizen)))
        .await
        .json()["consentId"]
        .as_str()
        .expect("consentId")
        .to_owned()
}

/// Starts the gateway binary without waiting for it to be ready (to kill it mid-work).
pub fn spawn_gateway_unready(h: &mut Harness) {
    h.spawn_gateway();
}
