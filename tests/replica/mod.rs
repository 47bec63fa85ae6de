//! Gateway processes sharing one PostgreSQL store, for the tests that run several replicas
//! (`tests/replicas.rs`, `tests/store_failures.rs`): spawning one with the shared settings, waiting
//! until it is ready, calling its operator API.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use crate::common::{Answer, Harness};
use crate::receiver::Receiver;
use crate::support;

/// One gateway process.
pub struct Replica {
    pub name: String,
    pub child: Option<tokio::process::Child>,
    pub api: String,
    pub admin: String,
    pub log: PathBuf,
}

impl Replica {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn owns(&self) -> bool {
        self.log_text().contains("now owns the events feed")
    }

    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL");
            let _ = child.wait().await;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The environment every replica shares (webhooks to `receiver`, the feed polled quickly,
/// PostgreSQL with short takeover and claim periods, consent answers cached for two minutes so
/// only the feed and its notifications can close a window quickly).
pub fn shared_env(h: &Harness, receiver: &Receiver, url: &str) -> Vec<(String, String)> {
    let secret = h.dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{}\n", support::SECRET)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ca = h.info["caCert"].as_str().unwrap().to_owned();
    [
        ("IKKUNA_STORE_BACKEND", "postgres"),
        ("IKKUNA_STORE_URL", url),
        ("IKKUNA_STORE_OWNER_RETRY_MS", "200"),
        ("IKKUNA_STORE_CLAIM_MS", "2000"),
        ("IKKUNA_STORE_POOL_SIZE", "8"),
        ("IKKUNA_WEBHOOKS_ENDPOINTS", &receiver.url),
        ("IKKUNA_WEBHOOKS_SECRET_FILE", &secret.display().to_string()),
        ("IKKUNA_WEBHOOKS_CA_CERT", &ca),
        ("IKKUNA_WEBHOOKS_INITIAL_BACKOFF_MS", "50"),
        ("IKKUNA_WEBHOOKS_MAX_BACKOFF_MS", "300"),
        ("IKKUNA_WEBHOOKS_TIMEOUT_MS", "3000"),
        ("IKKUNA_EVENTS_POLL_INTERVAL_MS", "200"),
        ("IKKUNA_EVENTS_MAX_BACKOFF_MS", "1000"),
        ("IKKUNA_EVENTS_START", "retention"),
        ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "120"),
        ("IKKUNA_CONSENT_NEGATIVE_TTL_SECS", "120"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn spawn_replica(h: &Harness, env: &[(String, String)], n: usize) -> Replica {
    let name = format!("replica-{n}");
    let (api, admin) = (free_port(), free_port());
    let dir = h.dir.path().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("gateway.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ikkuna"));
    cmd.arg("run")
        .arg("--config")
        .arg(h.config_path())
        .env("IKKUNA_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("IKKUNA_SERVER_LISTEN", format!("127.0.0.1:{api}"))
        .env("IKKUNA_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("IKKUNA_STORE_DATA_DIR", dir.join("data"))
        .env("IKKUNA_AUDIT_FILE", dir.join("audit.log"))
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Replica {
        name,
        child: Some(cmd.spawn().expect("gateway starts")),
        api: format!("https://127.0.0.1:{api}"),
        admin: format!("http://127.0.0.1:{admin}"),
        log,
    }
}

pub async fn wait_ready(h: &Harness, r: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(a) = h.get_plain(&format!("{}/readyz", r.admin)).await {
            if a.status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready:\n{}",
            r.name,
            r.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator-API call to one replica.
pub async fn call(h: &Harness, r: &Replica, path: &str, token: &str) -> Answer {
    let req = http::Request::builder()
        .uri(format!("{}{path}", r.api))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), h.client.request(req))
        .await
        .expect("answer in time")
        .expect("replica answers");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}
