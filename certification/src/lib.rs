//! `ikkuna-certify`: the auditors' certification suite for Ikkuna deployments.
//!
//! A black box: it drives a gateway only through its operator API, its admin listener, its files
//! and its process, and watches DVV's side through a conformance backend (the sandbox in
//! recording mode, whose titles, bodies and attachments carry canaries). Each case proves part of
//! a requirement in `catalogue.toml`; the report (JSON and one self-contained HTML page) gives
//! every requirement a verdict with its evidence. It never depends on the gateway crate.

pub mod audit;
pub mod cases;
pub mod catalogue;
pub mod ctx;
pub mod forge;
pub mod http;
pub mod outcome;
pub mod report;
pub mod scan;
pub mod target;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::catalogue::Catalogue;
use crate::ctx::Ctx;
use crate::http::Http;
use crate::outcome::{Outcome, Verdict};
use crate::report::{CaseResult, Report, RequirementResult};
use crate::target::{Backend, GatewayProcess, Target};

/// Longest one case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);
/// The revocation bound the suite configures when it launches the gateway itself.
pub const LAUNCH_REVOCATION_BOUND_SECS: u64 = 2;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Requirement or case ids to run; empty: all.
    pub only: Vec<String>,
    /// Requirement ids expected to fail (an honest, visible exception list).
    pub expected_failures: Vec<String>,
}

/// Mode 1: a gateway binary to launch against a fresh backend.
pub struct Launch {
    /// The gateway binary.
    pub gateway_bin: PathBuf,
    /// Scratch directory (backend data, gateway data and log); emptied first.
    pub work_dir: PathBuf,
    /// Extra `IKKUNA_…` overrides.
    pub env: Vec<(String, String)>,
    /// The gateway's audit file, if its configuration writes one.
    pub audit_file: Option<PathBuf>,
}

/// Starts the backend (recording mode) and the gateway; the backend lives as long as the guard.
pub async fn launch(l: Launch) -> anyhow::Result<(ikkuna_sandbox::RunningSandbox, Target, Http)> {
    if l.work_dir.exists() {
        std::fs::remove_dir_all(&l.work_dir)
            .with_context(|| format!("emptying {}", l.work_dir.display()))?;
    }
    std::fs::create_dir_all(&l.work_dir)?;
    let work_dir = l.work_dir.canonicalize()?;
    let mut opts = ikkuna_sandbox::SandboxOptions::new(work_dir.join("backend"));
    opts.canaries = true;
    let sandbox = ikkuna_sandbox::start(opts).await?;
    let backend = Backend::open(sandbox.data_dir())?;
    let config = backend.path("gatewayConfig")?;
    let (config_admin, data_dir) = target::read_gateway_config(&config)?;
    let admin_url = backend.info["gatewayAdminUrl"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or(config_admin);
    let (config_audit, config_key) = target::read_audit_config(&config);
    let from_env = |key: &str| {
        l.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| PathBuf::from(v))
    };
    let audit_key = from_env("IKKUNA_AUDIT_PSEUDONYM_KEY_FILE").or(config_key);
    let audit_file = l
        .audit_file
        .or_else(|| from_env("IKKUNA_AUDIT_FILE"))
        .or_else(|| backend.info["auditLog"].as_str().map(PathBuf::from))
        .or(config_audit);
    let log_file = work_dir.join("gateway.log");
    let mut env = vec![
        ("IKKUNA_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
        (
            "IKKUNA_CONSENT_REVOCATION_BOUND_SECS".to_owned(),
            LAUNCH_REVOCATION_BOUND_SECS.to_string(),
        ),
        (
            "IKKUNA_CONSENT_NEGATIVE_TTL_SECS".to_owned(),
            "1".to_owned(),
        ),
    ];
    if std::fs::read_to_string(&config)
        .map(|t| t.contains("[limits]"))
        .unwrap_or(false)
    {
        // A per-citizen burst the limits case exceeds (its burst is 150 requests at once).
        env.push(("IKKUNA_LIMITS_CITIZEN_BURST".to_owned(), "60".to_owned()));
    }
    env.extend(l.env);
    let http = Http::new(&backend.path("caCert")?)?;
    let mut process = GatewayProcess::new(
        l.gateway_bin,
        config,
        env,
        log_file.clone(),
        admin_url.clone(),
    );
    process.start(&http).await?;
    let target = Target {
        gateway_url: backend.info["gatewayUrl"]
            .as_str()
            .context("gatewayUrl")?
            .to_owned(),
        admin_url: Some(admin_url),
        data_dir,
        log_file: Some(log_file),
        audit_file,
        audit_key,
        revocation_bound: Duration::from_secs(LAUNCH_REVOCATION_BOUND_SECS),
        process: tokio::sync::Mutex::new(Some(process)),
        work_dir,
        backend,
    };
    Ok((sandbox, target, http))
}

/// Mode 2: a running deployment.
pub struct Attach {
    /// The operator API.
    pub gateway_url: String,
    /// The admin listener.
    pub admin_url: Option<String>,
    /// The gateway's data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log_file: Option<PathBuf>,
    /// Its audit file.
    pub audit_file: Option<PathBuf>,
    /// The audit trail's pseudonym key file, when the auditor holds it.
    pub audit_key: Option<PathBuf>,
    /// The running conformance backend's data directory.
    pub backend_dir: PathBuf,
    /// The CA of the gateway's server certificate (default: the backend's CA).
    pub gateway_ca: Option<PathBuf>,
    /// The deployment's configured revocation bound.
    pub revocation_bound: Duration,
    /// Scratch directory.
    pub work_dir: PathBuf,
}

/// Describes a running deployment.
pub fn attach(a: Attach) -> anyhow::Result<(Target, Http)> {
    let backend = Backend::open(&a.backend_dir)?;
    let ca = match a.gateway_ca {
        Some(ca) => ca,
        None => backend.path("caCert")?,
    };
    let http = Http::new(&ca)?;
    std::fs::create_dir_all(&a.work_dir)?;
    let audit_file = a
        .audit_file
        .or_else(|| backend.info["auditLog"].as_str().map(PathBuf::from));
    Ok((
        Target {
            gateway_url: a.gateway_url.trim_end_matches('/').to_owned(),
            admin_url: a.admin_url.map(|u| u.trim_end_matches('/').to_owned()),
            data_dir: a.data_dir,
            log_file: a.log_file,
            audit_file,
            audit_key: a.audit_key,
            revocation_bound: a.revocation_bound,
            process: tokio::sync::Mutex::new(None),
            work_dir: a.work_dir,
            backend,
        },
        http,
    ))
}

/// Runs the catalogue against a target and builds the report.
pub async fn certify(
    target: Target,
    http: Http,
    mode: &str,
    opts: &RunOptions,
) -> anyhow::Result<Report> {
    let catalogue = Catalogue::builtin()?;
    let started = Instant::now();
    let started_at = now();
    let gateway_url = target.gateway_url.clone();
    let ctx = Ctx::setup(target, http)
        .await
        .context("setting up the fixture")?;
    let selected = |case: &str| {
        opts.only.is_empty()
            || opts.only.iter().any(|o| o == case)
            || catalogue
                .requirements
                .iter()
                .any(|r| opts.only.contains(&r.id) && r.cases.iter().any(|c| c == case))
    };
    let mut results: Vec<(String, CaseResult)> = Vec::new();
    for case in cases::ALL {
        let case_started = Instant::now();
        let outcome = if selected(case) {
            match tokio::time::timeout(CASE_TIMEOUT, cases::run(case, &ctx)).await {
                Ok(o) => o,
                Err(_) => Outcome::new().error(format!("did not finish within {CASE_TIMEOUT:?}")),
            }
        } else {
            Outcome::new().conclude(Verdict::NotChecked, "not selected in this run")
        };
        eprintln!("  {case:<32} {:?}", outcome.verdict);
        results.push((
            case.to_string(),
            CaseResult {
                id: case.to_string(),
                outcome,
                duration_ms: case_started.elapsed().as_millis(),
            },
        ));
    }
    if let Some(p) = ctx.target.process.lock().await.as_mut() {
        p.kill().await;
    }
    let requirements: Vec<RequirementResult> = catalogue
        .requirements
        .into_iter()
        .map(|r| {
            let rs: Vec<CaseResult> = r
                .cases
                .iter()
                .filter_map(|c| {
                    results
                        .iter()
                        .find(|(id, _)| id == c)
                        .map(|(_, x)| x.clone())
                })
                .collect();
            RequirementResult {
                verdict: report::aggregate(&rs),
                expected_failure: opts.expected_failures.contains(&r.id),
                requirement: r,
                results: rs,
            }
        })
        .collect();
    Ok(Report {
        suite: "ikkuna-certify".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: mode.to_owned(),
        gateway_url,
        started_at,
        finished_at: now(),
        duration_ms: started.elapsed().as_millis(),
        summary: report::summarise(&requirements, !opts.only.is_empty()),
        requirements,
    })
}

/// Reads an expected-failures file: TOML `requirements = ["ID", …]`.
pub fn read_expected_failures(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        requirements: Vec<String>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(toml::from_str::<File>(&text)?.requirements)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
