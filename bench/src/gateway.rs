//! The gateway under test: the real `ikkuna` binary of the same profile as this benchmark, run
//! with the configuration the sandbox wrote, as a child process so its CPU and memory are its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Method;

use crate::client::Endpoint;

/// The benchmark is one citizen and one client at thousands of requests per second, which the
/// default rate limits rightly refuse: they are raised out of reach (still checked per request).
const LIMITS: [(&str, &str); 6] = [
    ("IKKUNA_LIMITS_CITIZEN_PER_MINUTE", "1000000"),
    ("IKKUNA_LIMITS_CITIZEN_BURST", "1000000"),
    ("IKKUNA_LIMITS_CLIENT_PER_SECOND", "1000000"),
    ("IKKUNA_LIMITS_CLIENT_BURST", "1000000"),
    ("IKKUNA_LIMITS_DVV_PER_SECOND", "1000000"),
    ("IKKUNA_LIMITS_DVV_BURST", "1000000"),
];

/// How long the gateway may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds (if needed) and finds the `ikkuna` binary next to this one: `cargo build -p ikkuna
/// --bin ikkuna` in the same profile, so `cargo run --release -p ikkuna-bench` measures a release
/// gateway.
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the benchmark binary has no directory")?;
    let bin = dir.join("ikkuna");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "ikkuna", "--bin", "ikkuna"])
        .current_dir(&workspace)
        .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) if !bin.exists() => anyhow::bail!("cargo build of the gateway failed: {status}"),
        Err(e) if !bin.exists() => return Err(e).context("running cargo to build the gateway"),
        _ => eprintln!(
            "note: could not rebuild the gateway; using {}",
            bin.display()
        ),
    }
    anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    Ok(bin)
}

/// A running gateway.
pub struct Gateway {
    child: tokio::process::Child,
    /// Its process id.
    pub pid: u32,
}

impl Gateway {
    /// Starts `bin run --config config`, logging to `log`, and waits until `/readyz` answers 200.
    pub async fn start(bin: &Path, config: &Path, log_path: &Path) -> anyhow::Result<Self> {
        Self::start_under(&[], bin, config, log_path, READY_TIMEOUT).await
    }

    /// As [`Self::start`], with the command run under `wrapper` (e.g. `valgrind
    /// --tool=callgrind`), waiting at most `ready_timeout` for `/readyz`.
    pub async fn start_under(
        wrapper: &[std::ffi::OsString],
        bin: &Path,
        config: &Path,
        log_path: &Path,
        ready_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_path)?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => tokio::process::Command::new(bin),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("IKKUNA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(LIMITS)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting the gateway")?;
        let pid = child.id().context("gateway pid")?;
        let gateway = Self { child, pid };
        let admin = admin_addr(config)?;
        let endpoint = Endpoint::plain(admin)?;
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Ok((status, _)) = endpoint.call(Method::GET, "/readyz", &[], None).await {
                if status.is_success() {
                    return Ok(gateway);
                }
            }
            if Instant::now() >= deadline {
                let text = std::fs::read_to_string(log_path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                anyhow::bail!(
                    "the gateway did not become ready; the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after a grace period).
    pub async fn stop(mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The gateway's operator API address, from its configuration.
pub fn listen_addr(config: &Path) -> anyhow::Result<std::net::SocketAddr> {
    config_addr(config, "server")
}

fn admin_addr(config: &Path) -> anyhow::Result<std::net::SocketAddr> {
    config_addr(config, "admin")
}

fn config_addr(config: &Path, section: &str) -> anyhow::Result<std::net::SocketAddr> {
    let text = std::fs::read_to_string(config)?;
    let table: toml::Table = text.parse()?;
    let listen = table
        .get(section)
        .and_then(|s| s.get("listen"))
        .and_then(|v| v.as_str())
        .with_context(|| format!("{section}.listen missing"))?;
    Ok(listen.parse()?)
}
