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

    /// The process id of the running gateway, if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
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

/// What the suite knows of the deployment's configuration: the values its cases measure
/// against. Mode 1 sets them; mode 2 reads them from the configuration file given (or assumes the
/// documented defaults, and says so in the report).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The configured consent revocation bound.
    pub revocation_bound: Duration,
    /// Longest accepted assertion lifetime (`exp` minus `iat`/`nbf`).
    pub max_lifetime_secs: i64,
    /// Clock leeway allowed on assertion times.
    pub leeway_secs: i64,
    /// The assurance levels the deployment accepts.
    pub accepted_acr: Vec<String>,
    /// Deadline from accept to a complete request head (every protocol).
    pub header_read_timeout: Duration,
    /// Deadline for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// A response body the client does not read for this long is cut.
    pub write_idle_timeout: Duration,
    /// The admin listener's connection cap.
    pub admin_max_connections: usize,
    /// Whether the operator listener requires a client certificate.
    pub client_cert_required: bool,
    /// The store backend (`sqlite` or `postgres`): which syncs durability means.
    pub store_backend: String,
    /// How long after a message arrives its first unread-message reminder falls due on the
    /// gateway's reminder clock: `reminders.delay_hours` less `reminders.clock_offset_secs`.
    pub reminder_wait: Duration,
    /// Most reminders per message (`reminders.max_count`; 0: reminders off).
    pub reminder_max_count: i64,
    /// Where each value came from, for the report.
    pub provenance: Vec<String>,
}

/// The four strong identification levels (substantial and high, Finnish and eIDAS names).
pub const STRONG_LEVELS: [&str; 4] = [
    "http://ftn.ficora.fi/2017/loa2",
    "http://ftn.ficora.fi/2017/loa3",
    "http://eidas.europa.eu/LoA/substantial",
    "http://eidas.europa.eu/LoA/high",
];

impl Settings {
    /// The documented defaults of the configuration template.
    pub fn defaults(revocation_bound: Duration) -> Self {
        Self {
            revocation_bound,
            max_lifetime_secs: 600,
            leeway_secs: 30,
            accepted_acr: STRONG_LEVELS.iter().map(|s| (*s).to_owned()).collect(),
            header_read_timeout: Duration::from_millis(10_000),
            tls_handshake_timeout: Duration::from_millis(10_000),
            write_idle_timeout: Duration::from_millis(30_000),
            admin_max_connections: 64,
            client_cert_required: false,
            store_backend: "sqlite".to_owned(),
            reminder_wait: Duration::from_secs(168 * 3_600),
            reminder_max_count: 1,
            provenance: Vec::new(),
        }
    }

    /// Overrides from a gateway configuration file and `IKKUNA_<SECTION>_<KEY>` values.
    pub fn read(mut self, config: Option<&Path>, env: &[(String, String)]) -> Self {
        let table = config
            .and_then(|c| std::fs::read_to_string(c).ok())
            .and_then(|t| t.parse::<toml::Table>().ok())
            .unwrap_or_default();
        let lookup = |section: &str, key: &str| -> Option<toml::Value> {
            let var = format!("IKKUNA_{}_{}", section, key).to_uppercase();
            if let Some((_, v)) = env.iter().find(|(k, _)| *k == var) {
                return Some(
                    v.parse::<i64>()
                        .map(toml::Value::Integer)
                        .unwrap_or_else(|_| toml::Value::String(v.clone())),
                );
            }
            table.get(section).and_then(|s| s.get(key)).cloned()
        };
        let mut notes: Vec<String> = Vec::new();
        let mut note = |what: &str, v: &dyn std::fmt::Display| {
            notes.push(format!("{what} = {v} (from the configuration checked)"));
        };
        let int = |section: &str, key: &str| lookup(section, key).and_then(|v| v.as_integer());
        let s = &mut self;
        if let Some(v) = int("assertions", "max_lifetime_secs") {
            s.max_lifetime_secs = v;
            note("assertions.max_lifetime_secs", &v);
        }
        if let Some(v) = int("assertions", "leeway_secs") {
            s.leeway_secs = v;
            note("assertions.leeway_secs", &v);
        }
        if let Some(list) = lookup("assertions", "accepted_acr").and_then(|v| v.as_array().cloned())
        {
            s.accepted_acr = list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            note("assertions.accepted_acr", &s.accepted_acr.join(", "));
        }
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        if let Some(v) = int("server", "header_read_timeout_ms") {
            s.header_read_timeout = ms(v);
            note("server.header_read_timeout_ms", &v);
        }
        if let Some(v) = int("server", "tls_handshake_timeout_ms") {
            s.tls_handshake_timeout = ms(v);
            note("server.tls_handshake_timeout_ms", &v);
        }
        if let Some(v) = int("server", "write_idle_timeout_ms") {
            s.write_idle_timeout = ms(v);
            note("server.write_idle_timeout_ms", &v);
        }
        if let Some(v) = int("admin", "max_connections") {
            s.admin_max_connections = v.max(1) as usize;
            note("admin.max_connections", &v);
        }
        if let Some(v) = int("consent", "revocation_bound_secs") {
            s.revocation_bound = Duration::from_secs(v.max(0) as u64);
            note("consent.revocation_bound_secs", &v);
        }
        if let Some(v) = lookup("store", "backend").and_then(|v| v.as_str().map(str::to_owned)) {
            note("store.backend", &v);
            s.store_backend = v;
        }
        let delay_hours = int("reminders", "delay_hours");
        let offset_secs = int("reminders", "clock_offset_secs");
        if let Some(v) = delay_hours {
            note("reminders.delay_hours", &v);
        }
        if let Some(v) = offset_secs {
            note("reminders.clock_offset_secs", &v);
        }
        if delay_hours.is_some() || offset_secs.is_some() {
            let delay = delay_hours.map_or(s.reminder_wait.as_secs(), |h| h.max(0) as u64 * 3_600);
            let offset = offset_secs.unwrap_or(0).max(0) as u64;
            s.reminder_wait = Duration::from_secs(delay.saturating_sub(offset));
        }
        if let Some(v) = int("reminders", "max_count") {
            s.reminder_max_count = v;
            note("reminders.max_count", &v);
        }
        if lookup("server", "client_ca").is_some() {
            s.client_cert_required = true;
            note("server.client_ca", &"set");
        }
        self.provenance.extend(notes);
        self
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
    /// The configuration values the cases measure against.
    pub settings: Settings,
    /// The webhook receiver the gateway delivers to, when the suite runs one.
    pub webhooks: Option<crate::webhooks::Receiver>,
    /// The gateway process, when the suite started it (mode 1).
    pub process: tokio::sync::Mutex<Option<GatewayProcess>>,
    /// Mode 2 under a supervisor: what the suite may kill and start again.
    pub supervised: Option<Supervised>,
    /// A scratch directory for the suite's own files.
    pub work_dir: PathBuf,
    /// The conformance backend.
    pub backend: Backend,
    /// What is certified: binary, version, commit, digest, configuration (secrets removed).
    pub subject: crate::subject::Subject,
}

/// A deployment restarted by its supervisor (mode 2 with `--supervised`).
#[derive(Clone, Debug)]
pub struct Supervised {
    /// The running binary (from `/proc/PID/exe`).
    pub bin: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
}

impl Supervised {
    /// A second instance of the deployment's binary and configuration, logging to `log`, for
    /// cases that must start a gateway of their own beside the deployment (never touching it).
    pub fn second_instance(&self, log: PathBuf) -> GatewayProcess {
        GatewayProcess::new(
            self.bin.clone(),
            self.config.clone(),
            Vec::new(),
            log,
            String::new(),
        )
    }
}

impl Target {
    /// SIGKILLs the supervised gateway and waits until the process is gone.
    pub async fn kill_supervised(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .await
            .context("the gateway's process is not visible")?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
        let gone = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            anyhow::ensure!(
                gone.elapsed() < Duration::from_secs(10),
                "process {pid} did not die"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until the (restarted) gateway's `/readyz` answers 200.
    pub async fn wait_ready(&self, http: &Http) -> anyhow::Result<()> {
        let admin = self
            .admin_url
            .clone()
            .context("an admin listener is needed to see the restart")?;
        wait_until(
            http,
            &format!("{admin}/readyz"),
            Duration::from_secs(60),
            &mut None,
        )
        .await
    }

    /// The gateway's process id: the one the suite started, else the process listening on the
    /// operator API's port (found through `/proc`), when visible.
    pub async fn pid(&self) -> Option<u32> {
        if let Some(p) = self.process.lock().await.as_ref() {
            return p.pid();
        }
        let port = self
            .gateway_url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())?;
        crate::procfs::listener_pid(port)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_configuration_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ikkuna.toml");
        std::fs::write(
            &config,
            "[server]\nheader_read_timeout_ms = 1500\nclient_ca = \"/ca.pem\"\n\
             [assertions]\nmax_lifetime_secs = 300\naccepted_acr = [\"http://ftn.ficora.fi/2017/loa3\"]\n\
             [admin]\nmax_connections = 4\n[consent]\nrevocation_bound_secs = 7\n",
        )
        .unwrap();
        let env = vec![(
            "IKKUNA_SERVER_WRITE_IDLE_TIMEOUT_MS".to_owned(),
            "2500".to_owned(),
        )];
        let s = Settings::defaults(Duration::from_secs(30)).read(Some(&config), &env);
        assert_eq!(s.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(s.write_idle_timeout, Duration::from_millis(2500));
        assert_eq!(s.max_lifetime_secs, 300);
        assert_eq!(s.accepted_acr, vec!["http://ftn.ficora.fi/2017/loa3"]);
        assert_eq!(s.admin_max_connections, 4);
        assert_eq!(s.revocation_bound, Duration::from_secs(7));
        assert!(s.client_cert_required);
        assert_eq!(s.provenance.len(), 7);
        assert_eq!(s.reminder_wait, Duration::from_secs(168 * 3_600));
        // A reminder clock run ahead: the first reminder falls due that much sooner.
        let env = vec![
            ("IKKUNA_REMINDERS_DELAY_HOURS".to_owned(), "1".to_owned()),
            (
                "IKKUNA_REMINDERS_CLOCK_OFFSET_SECS".to_owned(),
                "3590".to_owned(),
            ),
            ("IKKUNA_REMINDERS_MAX_COUNT".to_owned(), "2".to_owned()),
        ];
        let r = Settings::defaults(Duration::from_secs(30)).read(None, &env);
        assert_eq!(r.reminder_wait, Duration::from_secs(10));
        assert_eq!(r.reminder_max_count, 2);
        // Without a configuration: the documented defaults.
        let d = Settings::defaults(Duration::from_secs(30)).read(None, &[]);
        assert_eq!(d.max_lifetime_secs, 600);
        assert_eq!(d.header_read_timeout, Duration::from_millis(10_000));
        assert_eq!(d.write_idle_timeout, Duration::from_millis(30_000));
        assert_eq!(d.admin_max_connections, 64);
        assert!(!d.client_cert_required);
        assert_eq!(d.accepted_acr.len(), 4);
    }
}
