//! `ikkuna-certify`: certify an Ikkuna deployment and write `report.json` and `report.html`.
//!
//! Exit status: 0 certified, 1 a mandatory requirement failed, 2 the run itself could not start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ikkuna_certify::{attach, certify, launch, read_expected_failures, Attach, Launch, RunOptions};

/// The auditors' certification suite for Ikkuna gateways.
#[derive(Parser)]
#[command(name = "ikkuna-certify", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the catalogue and write DIR/report.json and DIR/report.html.
    Run {
        /// Where the report goes.
        #[arg(long)]
        report_dir: PathBuf,
        /// Mode 1: the gateway binary; the suite starts a recording backend and the gateway.
        #[arg(long, conflicts_with = "gateway_url")]
        gateway_bin: Option<PathBuf>,
        /// Mode 1: extra environment overrides for the gateway, KEY=VALUE (repeatable).
        #[arg(long = "gateway-env", value_parser = parse_env)]
        gateway_env: Vec<(String, String)>,
        /// Mode 2: the running gateway's operator API (https://HOST:PORT).
        #[arg(long, requires_all = ["data_dir", "backend_dir"])]
        gateway_url: Option<String>,
        /// Mode 2: its admin listener (http://HOST:PORT).
        #[arg(long)]
        admin_url: Option<String>,
        /// Mode 2: its data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Mode 2: its log file.
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// Its audit file (both modes; default: auditLog from the backend's sandbox.json).
        #[arg(long)]
        audit_file: Option<PathBuf>,
        /// Mode 2: the gateway's configuration file, read (never changed) for its `[audit]` file
        /// and pseudonym key when --audit-file / --audit-key are not given.
        #[arg(long)]
        gateway_config: Option<PathBuf>,
        /// Mode 2: the audit trail's pseudonym key file, to reconstruct one citizen's accesses.
        #[arg(long)]
        audit_key: Option<PathBuf>,
        /// Mode 2: the running conformance backend's data directory (with sandbox.json).
        #[arg(long)]
        backend_dir: Option<PathBuf>,
        /// Mode 2: CA of the gateway's server certificate (default: the backend's CA).
        #[arg(long)]
        gateway_ca: Option<PathBuf>,
        /// Mode 2: the deployment's consent revocation bound in seconds.
        #[arg(long, default_value_t = 30)]
        revocation_bound_secs: u64,
        /// Run only these requirement or case ids (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// TOML file `requirements = [...]` of requirements expected to fail.
        #[arg(long)]
        expected_failures: Option<PathBuf>,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected KEY=VALUE".to_owned())
}

fn main() -> ExitCode {
    let Command::Run {
        report_dir,
        gateway_bin,
        gateway_env,
        gateway_url,
        admin_url,
        data_dir,
        log_file,
        audit_file,
        audit_key,
        gateway_config,
        backend_dir,
        gateway_ca,
        revocation_bound_secs,
        only,
        expected_failures,
    } = Cli::parse().command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ikkuna-certify: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let expected = match &expected_failures {
            Some(p) => read_expected_failures(p)?,
            None => Vec::new(),
        };
        let opts = RunOptions {
            only,
            expected_failures: expected,
        };
        let work_dir = report_dir.join("work");
        let report = if let Some(bin) = gateway_bin {
            let (_backend, target, http) = launch(Launch {
                gateway_bin: bin,
                work_dir,
                env: gateway_env,
                audit_file,
            })
            .await?;
            certify(target, http, "launched", &opts).await?
        } else {
            let (Some(url), Some(data_dir), Some(backend_dir)) = (gateway_url, data_dir, backend_dir)
            else {
                anyhow::bail!("give --gateway-bin (mode 1) or --gateway-url, --data-dir and --backend-dir (mode 2)");
            };
            let (config_audit, config_key) = gateway_config
                .as_deref()
                .map(ikkuna_certify::target::read_audit_config)
                .unwrap_or((None, None));
            let audit_file = audit_file.or(config_audit);
            let audit_key = audit_key.or(config_key);
            let (target, http) = attach(Attach {
                gateway_url: url,
                admin_url,
                data_dir,
                log_file,
                audit_file,
                audit_key,
                backend_dir,
                gateway_ca,
                revocation_bound: Duration::from_secs(revocation_bound_secs),
                work_dir,
            })?;
            certify(target, http, "attached", &opts).await?
        };
        report.write(&report_dir)?;
        Ok::<_, anyhow::Error>(report)
    });
    match result {
        Ok(report) => {
            let s = &report.summary;
            println!(
                "{}: {} pass, {} fail, {} error, {} not applicable, {} not checked, {} gaps ({})",
                s.decision,
                s.pass,
                s.fail,
                s.error,
                s.not_applicable,
                s.not_checked,
                s.gaps,
                report_dir.join("report.html").display()
            );
            if report.certified() {
                ExitCode::SUCCESS
            } else {
                println!("mandatory failures: {}", s.mandatory_failures.join(", "));
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ikkuna-certify: {e:#}");
            ExitCode::from(2)
        }
    }
}
