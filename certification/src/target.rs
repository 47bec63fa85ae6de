//! The deployment under test: where its operator API, admin listener, files and process are, and
//! the conformance backend it talks to. Mode 1 launches both; mode 2 is given them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::http::Http;

/// Longest wait for a started gateway to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A gateway process the suite started and may kill and restart.
pub struct GatewayProcess {
    /// The gateway binary.
    pub bin: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Environment overrides (`IKKUNA_…`).
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go.
    pub log_file: PathBuf,
    /// The admin listener, polled for `/readyz`.
    pub admin_url: String,
    child: Option<tokio::process::Child>,
}

impl GatewayProcess {
    /// A process description; not started yet.
    pub fn new(
        bin: PathBuf,
        config: PathBuf,
        env: Vec<(String, String)>,
        log_file: PathBuf,
        admin_url: String,
    ) -> Self {
        Self {
            bin,
            config,
            env,
            log_file,
            admin_url,
            child: None,
        }
    }

    /// Spawns `bin run --config CONFIG` with the environment plus `extra`, output appended to `log`.
    pub fn spawn(
        &self,
        extra: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<tokio::process::Child> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        for (k, v) in self.env.iter().chain(extra) {
            cmd.env(k, v);
        }
        cmd.spawn()
            .with_context(|| format!("starting {}", self.bin.display()))
    }

    /// Starts the gateway and waits until its `/readyz` answers 200.
    pub async fn start(&mut self, http: &Http) -> anyhow::Result<()> {
        let child = self.spawn(&[], &self.log_file.clone())?;
        self.child = Some(child);
        let url = format!("{}/readyz", self.admin_url);
        wait_until(http, &url, READY_TIMEOUT, &mut self.child).await
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Whether a started process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .map(|c| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false)
    }
}

/// Polls `url` until it answers 200, the child exits, or `limit` passes.
pub async fn wait_until(
    http: &Http,
    url: &str,
    limit: Duration,
    child: &mut Option<tokio::process::Child>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(a) = http.admin(url, "GET", None).await {
            if a.status == 200 {
                return Ok(());
            }
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                anyhow::bail!("the gateway exited ({status}) before {url} answered 200");
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{url} did not answer 200 within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The conformance backend: a sandbox in recording mode, known by its data directory.
pub struct Backend {
    /// Its data directory.
    pub dir: PathBuf,
    /// `sandbox.json`.
    pub info: Value,
    /// Its admin API.
    pub admin_url: String,
    /// The canary prefix of its recording mode, when on.
    pub canary_prefix: Option<String>,
}

impl Backend {
    /// Reads a backend's `sandbox.json` and `canaries.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("sandbox.json");
        let info: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let admin_url = info["adminUrl"]
            .as_str()
            .context("sandbox.json has no adminUrl")?
            .to_owned();
        let canary_prefix = ikkuna_sandbox::canary::Canaries::read(dir).map(|c| c.prefix);
        Ok(Self {
            dir: dir.to_owned(),
            info,
            admin_url,
            canary_prefix,
        })
    }

    /// A path named in `sandbox.json`.
    pub fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        self.info[key]
            .as_str()
            .map(PathBuf::from)
            .with_context(|| format!("sandbox.json has no {key}"))
    }
}

/// Everything the suite knows about the deployment under test.
pub struct Target {
    /// The operator API, e.g. `https://127.0.0.1:8443`.
    pub gateway_url: String,
    /// The gateway's admin listener (`/healthz`, `/readyz`, `/metrics`), when known.
    pub admin_url: Option<String>,
    /// The gateway's data directory.
    pub data_dir: PathBuf,
    /// Its log file, when known.
    pub log_file: Option<PathBuf>,
    /// Its audit file, when it has one.
    pub audit_file: Option<PathBuf>,
    /// The key behind the audit trail's pseudonyms, when the auditor holds it.
    pub audit_key: Option<PathBuf>,
    /// The configured consent revocation bound.
    pub revocation_bound: Duration,
    /// The gateway process, when the suite started it (mode 1).
    pub process: tokio::sync::Mutex<Option<GatewayProcess>>,
    /// A scratch directory for the suite's own files.
    pub work_dir: PathBuf,
    /// The conformance backend.
    pub backend: Backend,
}

/// Reads `[audit] file` and `[audit] pseudonym_key_file` of a gateway configuration, resolved
/// against its directory.
pub fn read_audit_config(config: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let Ok(text) = std::fs::read_to_string(config) else {
        return (None, None);
    };
    let Ok(cfg) = text.parse::<toml::Table>() else {
        return (None, None);
    };
    let base = config.parent().unwrap_or(Path::new("."));
    let get = |key: &str| {
        cfg.get("audit")
            .and_then(|a| a.get(key))
            .and_then(|v| v.as_str())
            .map(|p| base.join(p))
    };
    (get("file"), get("pseudonym_key_file"))
}

/// Reads the gateway configuration's admin listener and data directory.
pub fn read_gateway_config(config: &Path) -> anyhow::Result<(String, PathBuf)> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let cfg: toml::Table = text.parse().context("gateway config is not TOML")?;
    let admin = cfg
        .get("admin")
        .and_then(|a| a.get("listen"))
        .and_then(|v| v.as_str())
        .context("gateway config has no admin.listen")?;
    let data = cfg
        .get("store")
        .and_then(|a| a.get("data_dir"))
        .and_then(|v| v.as_str())
        .context("gateway config has no store.data_dir")?;
    Ok((format!("http://{admin}"), PathBuf::from(data)))
}
