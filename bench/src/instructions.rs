//! CPU per request as a count of instructions, which does not depend on what else the machine is
//! doing: the gateway and nginx each run under valgrind's callgrind, and each serves the same
//! fixed number of requests of W1 and W2 after a warm-up; the counters are zeroed before and
//! dumped after (`callgrind_control`), so start-up and warm-up are not counted.
//!
//! The dumps stay in the profile directory: `callgrind_annotate <dump>` shows where the
//! instructions went, function by function.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::HeaderValue;

use crate::client::Endpoint;
use crate::gateway::{self, Gateway};
use crate::load::{self, Paths, Spec};
use crate::nginx::{self, Nginx};
use crate::report::Target;
use crate::run::{free_port, prime_openings, TOKEN_TTL};
use crate::setup::{self, Mail};

/// Citizen assertions in the pool (each is seen first in the warm-up, as in a session).
const ASSERTIONS: usize = 64;
/// How long a process under valgrind may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// How much to count.
#[derive(Debug, Clone)]
pub struct CountPlan {
    /// Requests counted per workload and target.
    pub requests: usize,
    /// Requests served first, not counted (every assertion of the pool at least once).
    pub warmup: usize,
    /// Concurrent connections (closed loop).
    pub connections: usize,
    /// The gateway binary (the workspace's, built in this profile, when `None`).
    pub gateway_bin: Option<PathBuf>,
    /// Where the callgrind dumps are kept.
    pub profile_dir: PathBuf,
}

/// The count for one workload on one target.
#[derive(Debug, Clone)]
pub struct Counted {
    /// Workload name (as in the other tables).
    pub workload: &'static str,
    /// nginx or the gateway.
    pub target: Target,
    /// Requests answered while counting (all 2xx).
    pub requests: u64,
    /// Instructions the process executed meanwhile, all threads.
    pub instructions: u64,
    /// The callgrind dump of exactly those requests.
    pub profile: PathBuf,
}

impl Counted {
    /// Instructions per request.
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }
}

/// Whether valgrind can be run.
pub fn available() -> bool {
    std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn callgrind(profile_dir: &Path, name: &str) -> Vec<OsString> {
    let mut out = OsString::from("--callgrind-out-file=");
    out.push(profile_dir.join(format!("{name}.%p")));
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        out,
    ]
}

/// Counts W1 and W2 on nginx and on the gateway.
pub async fn run(
    plan: &CountPlan,
    nginx_bin: Option<&Path>,
    sandbox_rt: &tokio::runtime::Handle,
) -> anyhow::Result<Vec<Counted>> {
    anyhow::ensure!(available(), "valgrind is not installed");
    std::fs::create_dir_all(&plan.profile_dir)?;
    let bin = match &plan.gateway_bin {
        Some(bin) => bin.clone(),
        None => tokio::task::spawn_blocking(gateway::binary).await??,
    };
    let dir = tempfile::Builder::new()
        .prefix("ikkuna-bench-instr-")
        .tempdir()?;
    let mut options = ikkuna_sandbox::SandboxOptions::new(dir.path().join("sandbox"));
    options.token_ttl = TOKEN_TTL;
    let sandbox = sandbox_rt
        .spawn(ikkuna_sandbox::start(options))
        .await?
        .context("starting the sandbox")?;
    let info = sandbox.info();
    let provider = info
        .providers
        .first()
        .context("the sandbox has no provider")?;
    let admin = Endpoint::plain(sandbox.admin_addr())?;
    let dvv = Endpoint::tls(
        sandbox.dvv_addr(),
        &info.ca_cert,
        Some((&provider.client_cert, &provider.client_key)),
    )?;
    let mail = setup::mail(&admin).await?;
    let token = setup::dvv_token(
        &dvv,
        &sandbox.token_url(),
        &provider.id,
        &provider.assertion_key,
    )
    .await?;

    eprintln!("instructions: starting the gateway under callgrind…");
    let config = info.gateway_config.clone();
    let gw = Gateway::start_under(
        &callgrind(&plan.profile_dir, "ikkuna"),
        &bin,
        &config,
        &dir.path().join("gateway.log"),
        START_TIMEOUT,
    )
    .await?;
    let gw_endpoint = Endpoint::tls(gateway::listen_addr(&config)?, &info.ca_cert, None)?;
    prime_openings(&gw_endpoint, sandbox.data_dir(), &mail).await?;

    let mut proxy = None;
    if let Some(bin) = nginx_bin {
        eprintln!("instructions: starting nginx (one process) under callgrind…");
        let listen = free_port()?;
        let settings = nginx::Settings {
            listen,
            cert: &info.gateway_cert,
            key: &info.gateway_key,
            upstream: sandbox.dvv_addr(),
            ca: &info.ca_cert,
            client_cert: &provider.client_cert,
            client_key: &provider.client_key,
            token: &token,
            consent_id: &mail.reader.consent_id,
            workers: 1,
            single_process: true,
        };
        let started = Nginx::start_under(
            &callgrind(&plan.profile_dir, "nginx"),
            bin,
            &dir.path().join("nginx"),
            &settings,
            START_TIMEOUT,
        )
        .await?;
        proxy = Some((started, Endpoint::tls(listen, &info.ca_cert, None)?));
    }

    let auth = Arc::new(setup::assertions(
        sandbox.data_dir(),
        &mail.reader.id,
        ASSERTIONS,
    )?);
    let mut counted = Vec::new();
    for (workload, path) in workloads(&mail) {
        let mut targets = Vec::new();
        if let Some((n, e)) = &proxy {
            targets.push((Target::Nginx, n.pid, e.clone(), "nginx"));
        }
        targets.push((Target::Ikkuna, gw.pid, gw_endpoint.clone(), "ikkuna"));
        for (target, pid, endpoint, name) in targets {
            let c = count(plan, &endpoint, pid, &path, &auth).await;
            let c = c.with_context(|| format!("{workload} on {}", target.name()))?;
            let profile = plan.profile_dir.join(format!(
                "{name}-{}.callgrind",
                workload.split(' ').next().unwrap_or("w")
            ));
            std::fs::rename(&c.1, &profile)?;
            let result = Counted {
                workload,
                target,
                requests: c.0,
                instructions: c.2,
                profile,
            };
            eprintln!(
                "  {:<18} {:<7} {:>10.0} instructions/request ({} requests; {})",
                workload,
                target.name(),
                result.per_request(),
                result.requests,
                result.profile.display()
            );
            counted.push(result);
        }
    }
    if let Some((n, _)) = proxy {
        n.stop().await;
    }
    gw.stop().await;
    drop(sandbox);
    Ok(counted)
}

fn workloads(mail: &Mail) -> [(&'static str, String); 2] {
    [
        ("W1 inbox page", "/v1/messages?limit=20".to_owned()),
        (
            "W2 message 10 KB",
            format!("/v1/messages/{}", mail.message_10k),
        ),
    ]
}

/// Warm-up, zero, the counted requests, dump: (requests, dump file, instructions).
async fn count(
    plan: &CountPlan,
    endpoint: &Endpoint,
    pid: u32,
    path: &str,
    auth: &Arc<Vec<HeaderValue>>,
) -> anyhow::Result<(u64, PathBuf, u64)> {
    let spec = |n: usize| Spec {
        paths: Paths::Distinct(
            Arc::new(vec![path.to_owned(); n]),
            Arc::new(AtomicUsize::new(0)),
        ),
        auth: Arc::clone(auth),
        connections: plan.connections,
        duration: Duration::from_secs(3600),
        rate: None,
        request_timeout: Duration::from_secs(120),
    };
    let warm = load::run(endpoint, &spec(plan.warmup.max(ASSERTIONS))).await?;
    anyhow::ensure!(warm.errors == 0, "warm-up failed: {:?}", warm.first_error);
    control(pid, &["-z"]).await?;
    let before = dumps(&plan.profile_dir, pid);
    let outcome = load::run(endpoint, &spec(plan.requests)).await?;
    control(pid, &["-d"]).await?;
    anyhow::ensure!(
        outcome.errors == 0,
        "{} requests failed: {:?}",
        outcome.errors,
        outcome.first_error
    );
    let dump = dumps(&plan.profile_dir, pid)
        .into_iter()
        .find(|d| !before.contains(d))
        .context("callgrind wrote no dump")?;
    let instructions = total_of(&dump)?;
    Ok((outcome.ok, dump, instructions))
}

/// `callgrind_control ARGS PID`.
async fn control(pid: u32, args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .await
        .context("running callgrind_control")?;
    anyhow::ensure!(
        out.status.success(),
        "callgrind_control {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The numbered dumps (`NAME.PID.N`) of process `pid` in `dir`.
fn dumps(dir: &Path, pid: u32) -> Vec<PathBuf> {
    let infix = format!(".{pid}.");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().contains(&infix))
                .unwrap_or(false)
        })
        .collect()
}

/// The instruction total of a callgrind dump (its `totals:` line, else `summary:`).
fn total_of(dump: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dump)?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    field("totals:")
        .or_else(|| field("summary:"))
        .with_context(|| format!("no instruction total in {}", dump.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_dump() {
        let dir = tempfile::tempdir().expect("dir");
        let dump = dir.path().join("ikkuna.42.1");
        std::fs::write(
            &dump,
            "version: 1\nevents: Ir\nsummary: 0\nfn=main\n1 5\ntotals: 1234567\n",
        )
        .expect("write");
        assert_eq!(total_of(&dump).expect("total"), 1234567);
        assert_eq!(dumps(dir.path(), 42), vec![dump.clone()]);
        assert!(dumps(dir.path(), 4).is_empty());
    }
}
