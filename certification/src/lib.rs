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
pub mod pki;
pub mod procfs;
pub mod report;
pub mod scan;
pub mod subject;
pub mod target;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::catalogue::Catalogue;
use crate::ctx::Ctx;
use crate::http::Http;
use crate::outcome::{Outcome, Verdict};
use crate::report::{CaseResult, Report, RequirementResult};
use crate::subject::Subject;
use crate::target::{Backend, GatewayProcess, Settings, Target};

/// Longest one case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);
/// The revocation bound the suite configures when it launches the gateway itself.
pub const LAUNCH_REVOCATION_BOUND_SECS: u64 = 2;

/// Mode 1: seconds from a message's arrival to its first unread-message reminder.
pub const LAUNCH_REMINDER_WAIT_SECS: u64 = 6;

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
    /// Launch settings to leave out (`IKKUNA_…` names), for a gateway that does not know them.
    pub omit_env: Vec<String>,
}

/// The production-like settings of a launch, each one a value the cases measure against:
/// short deadlines so the run stays in minutes, webhooks and a client CA on.
fn launch_env(work_dir: &Path) -> Vec<(String, String)> {
    let tmp = work_dir.join("gateway-tmp");
    let _ = std::fs::create_dir_all(&tmp);
    [
        ("IKKUNA_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        (
            "IKKUNA_CONSENT_REVOCATION_BOUND_SECS",
            LAUNCH_REVOCATION_BOUND_SECS.to_string(),
        ),
        ("IKKUNA_CONSENT_NEGATIVE_TTL_SECS", "1".to_owned()),
        ("IKKUNA_ASSERTIONS_MAX_LIFETIME_SECS", "600".to_owned()),
        ("IKKUNA_ASSERTIONS_LEEWAY_SECS", "30".to_owned()),
        ("IKKUNA_SERVER_HEADER_READ_TIMEOUT_MS", "2000".to_owned()),
        ("IKKUNA_SERVER_TLS_HANDSHAKE_TIMEOUT_MS", "2000".to_owned()),
        ("IKKUNA_SERVER_WRITE_IDLE_TIMEOUT_MS", "8000".to_owned()),
        ("IKKUNA_SERVER_IDLE_TIMEOUT_MS", "10000".to_owned()),
        ("IKKUNA_ADMIN_MAX_CONNECTIONS", "8".to_owned()),
        ("IKKUNA_EVENTS_POLL_INTERVAL_MS", "250".to_owned()),
        ("IKKUNA_WEBHOOKS_INITIAL_BACKOFF_MS", "200".to_owned()),
        // Reminders of unread mail fall due LAUNCH_REMINDER_WAIT_SECS after a message arrives:
        // the shortest delay (an hour) with the gateway's reminder clock run that much less ahead
        // (a setting the gateway accepts only towards a DVV on this machine).
        ("IKKUNA_REMINDERS_DELAY_HOURS", "1".to_owned()),
        (
            "IKKUNA_REMINDERS_CLOCK_OFFSET_SECS",
            (3_600 - LAUNCH_REMINDER_WAIT_SECS).to_string(),
        ),
        ("IKKUNA_REMINDERS_POLL_INTERVAL_MS", "200".to_owned()),
        // Anything the gateway spills to a temporary file lands where the scans look.
        ("TMPDIR", tmp.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
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
    let mut env = launch_env(&work_dir);
    if std::fs::read_to_string(&config)
        .map(|t| t.contains("[limits]"))
        .unwrap_or(false)
    {
        // A per-citizen burst the limits case exceeds (its burst is 150 requests at once) and the
        // refusal probes (a hundred requests of one citizen in quick succession) do not.
        env.push(("IKKUNA_LIMITS_CITIZEN_BURST".to_owned(), "100".to_owned()));
    }
    // As production runs: operator backends authenticated by a client certificate, webhooks on.
    let (client_ca, client_cert) = pki::operator_client_ca(&work_dir.join("operator-pki"))?;
    env.push((
        "IKKUNA_SERVER_CLIENT_CA".to_owned(),
        client_ca.display().to_string(),
    ));
    let receiver = webhooks::Receiver::start(
        "127.0.0.1:0",
        &backend.path("gatewayCert")?,
        &backend.path("gatewayKey")?,
        &work_dir.join("webhook-secret"),
        false,
    )
    .await?;
    env.push(("IKKUNA_WEBHOOKS_ENDPOINTS".to_owned(), receiver.url.clone()));
    env.push((
        "IKKUNA_WEBHOOKS_SECRET_FILE".to_owned(),
        receiver.secret_file.display().to_string(),
    ));
    env.push((
        "IKKUNA_WEBHOOKS_CA_CERT".to_owned(),
        backend.path("caCert")?.display().to_string(),
    ));
    for (k, v) in l.env {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    }
    env.retain(|(k, _)| !l.omit_env.contains(k));
    let mut settings = Settings::defaults(Duration::from_secs(LAUNCH_REVOCATION_BOUND_SECS))
        .read(Some(config.as_path()), &env);
    settings
        .provenance
        .push("launched by the suite with the overrides listed".to_owned());
    let http = Http::with_client_cert(&backend.path("caCert")?, Some(client_cert))?;
    let subject = Subject::describe(Some(l.gateway_bin.as_path()), Some(config.as_path()), &env);
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
        revocation_bound: settings.revocation_bound,
        settings,
        webhooks: Some(receiver),
        process: tokio::sync::Mutex::new(Some(process)),
        supervised: None,
        work_dir,
        backend,
        subject,
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
    /// The deployment's configuration file (read, never changed).
    pub gateway_config: Option<PathBuf>,
    /// The client certificate to present when the operator listener requires one.
    pub client_cert: Option<crate::http::ClientCert>,
    /// Where to receive the deployment's webhooks (the address its endpoint names).
    pub webhook_listen: Option<String>,
    /// The deployment is restarted by a supervisor: the suite may kill it and start a second
    /// instance of its binary.
    pub supervised: bool,
}

/// Describes a running deployment.
pub async fn attach(a: Attach) -> anyhow::Result<(Target, Http)> {
    let backend = Backend::open(&a.backend_dir)?;
    let ca = match a.gateway_ca {
        Some(ca) => ca,
        None => backend.path("caCert")?,
    };
    let http = Http::with_client_cert(&ca, a.client_cert)?;
    std::fs::create_dir_all(&a.work_dir)?;
    let audit_file = a
        .audit_file
        .or_else(|| backend.info["auditLog"].as_str().map(PathBuf::from));
    let mut settings = Settings::defaults(a.revocation_bound);
    settings.provenance.push(format!(
        "consent.revocation_bound_secs = {} (given with --revocation-bound-secs)",
        a.revocation_bound.as_secs()
    ));
    let settings = settings.read(a.gateway_config.as_deref(), &[]);
    // The configuration's webhooks: received here when the auditor says where they go.
    let webhooks = match (
        &a.webhook_listen,
        webhook_secret_file(a.gateway_config.as_deref()),
    ) {
        (Some(listen), Some(secret)) => Some(
            webhooks::Receiver::start(
                listen,
                &backend.path("gatewayCert")?,
                &backend.path("gatewayKey")?,
                &secret,
                true,
            )
            .await?,
        ),
        _ => None,
    };
    let gateway_url = a.gateway_url.trim_end_matches('/').to_owned();
    let admin_url = a.admin_url.map(|u| u.trim_end_matches('/').to_owned());
    if let Some(admin) = &admin_url {
        // A deployment started just before the suite: wait until it is ready.
        target::wait_until(
            &http,
            &format!("{admin}/readyz"),
            Duration::from_secs(60),
            &mut None,
        )
        .await
        .context("the deployment did not become ready")?;
    }
    let exe = gateway_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .and_then(procfs::listener_pid)
        .and_then(procfs::exe);
    let subject = Subject::describe(exe.as_deref(), a.gateway_config.as_deref(), &[]);
    let supervised = match (a.supervised, &exe, &a.gateway_config) {
        (true, Some(exe), Some(config)) => Some(target::Supervised {
            bin: exe.clone(),
            config: config.clone(),
        }),
        _ => None,
    };
    Ok((
        Target {
            gateway_url,
            admin_url,
            data_dir: a.data_dir,
            log_file: a.log_file,
            audit_file,
            audit_key: a.audit_key,
            revocation_bound: settings.revocation_bound,
            settings,
            webhooks,
            process: tokio::sync::Mutex::new(None),
            supervised,
            work_dir: a.work_dir,
            backend,
            subject,
        },
        http,
    ))
}

/// `[webhooks] secret_file` of a configuration, resolved against its directory.
pub fn webhook_secret_file(config: Option<&Path>) -> Option<PathBuf> {
    let config = config?;
    let table = std::fs::read_to_string(config)
        .ok()?
        .parse::<toml::Table>()
        .ok()?;
    let file = table.get("webhooks")?.get("secret_file")?.as_str()?;
    Some(config.parent().unwrap_or(Path::new(".")).join(file))
}

/// Whether a configuration sends webhooks at all.
pub fn webhooks_configured(config: Option<&Path>) -> Option<bool> {
    let table = std::fs::read_to_string(config?)
        .ok()?
        .parse::<toml::Table>()
        .ok()?;
    Some(
        table
            .get("webhooks")
            .and_then(|w| w.get("endpoints"))
            .and_then(|e| e.as_array())
            .is_some_and(|e| !e.is_empty()),
    )
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
    let subject = target.subject.clone();
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
        subject,
        cases: cases::ALL.len(),
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
